//! supervisorctl's side of `/RPC2`: the XML-RPC request decoder. Whatever it accepts,
//! written back out by the encoder, decodes to the same call, and a response carrying
//! those values can be written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend::api::xmlrpc::codec::{self, Value, xml_safe};

fuzz_target!(|data: &[u8]| {
    let Ok(call) = codec::parse_call(data) else {
        return;
    };
    let _ = codec::response(&Value::Array(call.params.clone()));
    // The encoder drops characters XML 1.0 cannot carry (a `&#1;` the decoder let in);
    // a method name made only of those cannot be sent at all.
    if carried(&call.method).is_empty() {
        return;
    }
    let written = codec::call(&call.method, &call.params);
    let again = codec::parse_call(written.as_bytes())
        .unwrap_or_else(|e| panic!("the encoder wrote what the decoder refuses: {e}\n{written}"));
    assert_eq!(
        carried(&call.method),
        again.method,
        "method name in\n{written}"
    );
    assert_eq!(
        call.params.len(),
        again.params.len(),
        "params in\n{written}"
    );
    for (sent, read) in call.params.iter().zip(&again.params) {
        assert!(
            same(sent, read),
            "{sent:?} came back as {read:?} from\n{written}"
        );
    }
});

/// What a string becomes through the encoder and an XML parser: characters XML 1.0
/// forbids dropped, and a CR (a `&#13;` the decoder let in) written raw, as CPython's
/// `xmlrpc.client` writes it, so read back as LF (codec/tests.rs, `expected_after_xml`).
fn carried(s: &str) -> String {
    xml_safe(s).replace("\r\n", "\n").replace('\r', "\n")
}

/// Equal as the encoder can carry them, NaN as NaN.
fn same(sent: &Value, read: &Value) -> bool {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    match (sent, read) {
        (Value::String(a), Value::String(b)) => carried(a) == *b,
        (Value::DateTime(a), Value::DateTime(b)) => carried(a).trim_matches(ws) == b,
        (Value::Double(a), Value::Double(b)) => a == b || (a.is_nan() && b.is_nan()),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Struct(a), Value::Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| carried(ka) == *kb && same(va, vb))
        }
        (a, b) => a == b,
    }
}
