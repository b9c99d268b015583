//! The JSON bodies of the control API's actions (`/api/v1/actions/{action}`, `signal`,
//! `scale`, `/api/v1/services/{target}/...`), read into the protocol types as the
//! handlers read them. Whatever is accepted serializes back to the same request, and a
//! signal that passes the body reaches the same parser the handler calls.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tend::api::control::TargetAction;
use tend::config::signal::Signal;
use tend::protocol::{ActionRequest, ScaleRequest, SignalRequest, TargetSignal};

fuzz_target!(|data: &[u8]| {
    if let Some(request) = round_trip::<ActionRequest>(data)
        && let Some(signal) = &request.signal
    {
        let _ = signal.parse::<Signal>();
    }
    if let Some(request) = round_trip::<SignalRequest>(data) {
        let _ = request.signal.parse::<Signal>();
    }
    if let Some(request) = round_trip::<TargetSignal>(data) {
        let _ = request.signal.parse::<Signal>();
    }
    let _ = round_trip::<ScaleRequest>(data);
    let _ = serde_json::from_slice::<TargetAction>(data);
});

fn round_trip<T>(data: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let request: T = serde_json::from_slice(data).ok()?;
    let written = serde_json::to_vec(&request).expect("a request serializes");
    let again: T = serde_json::from_slice(&written).unwrap_or_else(|e| {
        panic!(
            "{request:?} written as {} does not read back: {e}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(request, again);
    Some(request)
}
