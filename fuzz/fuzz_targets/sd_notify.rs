//! The body of an sd_notify datagram, which any child may send to tend's notify socket.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tend::engine::notify::parse(data);
});
