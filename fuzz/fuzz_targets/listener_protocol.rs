//! What a supervisord event listener writes on its stdout (`READY\n`, `RESULT n\n…`), read
//! by the listener state machine in chunks of fuzzed sizes, with an event dispatched
//! whenever the listener is READY. Checks that a result hands back the event it answers.
//!
//! Input: the first byte picks the result size limit; then, repeatedly, a length byte and
//! that many bytes of output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend::listeners::protocol::{ListenerChannel, ListenerOutput, ListenerState};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, mut rest)) = data.split_first() else {
        return;
    };
    let mut channel: ListenerChannel<u32> =
        ListenerChannel::with_max_result_len(usize::from(limit));
    let mut next_event = 0u32;
    while let Some((&len, after)) = rest.split_first() {
        let take = usize::from(len).min(after.len());
        let (chunk, after) = after.split_at(take);
        rest = after;
        if len == 0 {
            // A zero length stands for the process exiting.
            let busy = channel.state() == ListenerState::Busy;
            let event = channel.exited();
            assert_eq!(event.is_some(), busy);
            assert_eq!(channel.state(), ListenerState::Acknowledged);
            continue;
        }
        let in_flight = channel.event().copied();
        for output in channel.feed(chunk) {
            match output {
                ListenerOutput::Ready => {}
                ListenerOutput::Result { ok, body, event } => {
                    assert_eq!(ok, body == b"OK");
                    assert!(body.len() <= usize::from(limit));
                    assert_eq!(event, in_flight, "a result answers the event in flight");
                }
                ListenerOutput::ProtocolError { event, .. } => {
                    assert!(event.is_none() || event == in_flight);
                    assert_eq!(channel.state(), ListenerState::Unknown);
                }
            }
        }
        if channel.state() == ListenerState::Ready {
            next_event += 1;
            assert!(channel.dispatched(next_event).is_ok());
            assert_eq!(channel.state(), ListenerState::Busy);
        } else {
            assert!(channel.dispatched(u32::MAX).is_err());
        }
    }
});
