use super::*;
use crate::testutil::{Rng, python3, run_python};

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn call_of(body: &str) -> MethodCall {
    parse_call(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn params_of(body: &str) -> Vec<Value> {
    call_of(body).params
}

fn one_param(inner: &str) -> Value {
    let body = format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>m.x</methodName>\n<params>\n<param>\n{inner}\n</param>\n</params>\n</methodCall>\n"
    );
    let mut p = params_of(&body);
    assert_eq!(p.len(), 1, "{body}");
    p.remove(0)
}

fn parse_err(body: &str) -> ParseError {
    match parse_call(body.as_bytes()) {
        Ok(c) => panic!("accepted {body:?} as {c:?}"),
        Err(e) => e,
    }
}

// --- parsing ---------------------------------------------------------------------------

#[test]
fn parses_what_python_sends_for_supervisorctl_calls() {
    // Verbatim shape of `xmlrpc.client.dumps(('web:*', True), 'supervisor.startProcessGroup')`.
    let body = "<?xml version='1.0'?>\n<methodCall>\n<methodName>supervisor.startProcessGroup</methodName>\n<params>\n<param>\n<value><string>web:*</string></value>\n</param>\n<param>\n<value><boolean>1</boolean></value>\n</param>\n</params>\n</methodCall>\n";
    let c = call_of(body);
    assert_eq!(c.method, "supervisor.startProcessGroup");
    assert_eq!(c.params, vec![s("web:*"), Value::Bool(true)]);
}

#[test]
fn params_may_be_empty_self_closing_or_missing() {
    for body in [
        "<methodCall><methodName>system.listMethods</methodName><params>\n</params></methodCall>",
        "<methodCall><methodName>system.listMethods</methodName><params/></methodCall>",
        "<methodCall><methodName>system.listMethods</methodName></methodCall>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodCall>\n  <methodName>system.listMethods</methodName>\n</methodCall>\n\n",
    ] {
        assert_eq!(
            call_of(body),
            MethodCall {
                method: "system.listMethods".into(),
                params: vec![]
            },
            "{body}"
        );
    }
}

#[test]
fn scalar_types() {
    assert_eq!(one_param("<value><int>42</int></value>"), Value::Int(42));
    assert_eq!(one_param("<value><i4>-7</i4></value>"), Value::Int(-7));
    assert_eq!(one_param("<value><int> +5 </int></value>"), Value::Int(5));
    assert_eq!(
        one_param("<value><int>2147483647</int></value>"),
        Value::Int(i32::MAX)
    );
    assert_eq!(
        one_param("<value><int>-2147483648</int></value>"),
        Value::Int(i32::MIN)
    );
    assert_eq!(
        one_param("<value><boolean>1</boolean></value>"),
        Value::Bool(true)
    );
    assert_eq!(
        one_param("<value><boolean>0</boolean></value>"),
        Value::Bool(false)
    );
    assert_eq!(
        one_param("<value><boolean>true</boolean></value>"),
        Value::Bool(true)
    );
    assert_eq!(
        one_param("<value><double>1.5</double></value>"),
        Value::Double(1.5)
    );
    assert_eq!(
        one_param("<value><double>-1e+100</double></value>"),
        Value::Double(-1e100)
    );
    assert_eq!(
        one_param("<value><double>inf</double></value>"),
        Value::Double(f64::INFINITY)
    );
    assert_eq!(
        one_param("<value><dateTime.iso8601>20250102T03:04:05</dateTime.iso8601></value>"),
        Value::DateTime("20250102T03:04:05".into())
    );
    assert_eq!(
        one_param("<value><base64>\naGk=\n</base64></value>"),
        Value::Base64(b"hi".to_vec())
    );
    assert_eq!(
        one_param("<value><base64>aGk</base64></value>"),
        Value::Base64(b"hi".to_vec())
    );
    assert_eq!(
        one_param("<value><base64>\n</base64></value>"),
        Value::Base64(vec![])
    );
    assert_eq!(one_param("<value><base64/></value>"), Value::Base64(vec![]));
}

#[test]
fn untyped_and_empty_values_are_strings() {
    assert_eq!(one_param("<value>plain</value>"), s("plain"));
    assert_eq!(one_param("<value>  spaced  </value>"), s("  spaced  "));
    assert_eq!(one_param("<value></value>"), s(""));
    assert_eq!(one_param("<value/>"), s(""));
    assert_eq!(one_param("<value><string/></value>"), s(""));
    assert_eq!(one_param("<value><string></string></value>"), s(""));
    assert_eq!(one_param("<value>\n  <string>x</string>\n</value>"), s("x"));
    assert_eq!(
        one_param("<value><string> keep </string></value>"),
        s(" keep ")
    );
}

#[test]
fn entities_character_references_cdata_and_comments() {
    assert_eq!(
        one_param("<value><string>&amp;&lt;&gt;&quot;&apos;</string></value>"),
        s("&<>\"'")
    );
    assert_eq!(
        one_param("<value><string>&#65;&#x42;&#x1F600;</string></value>"),
        s("AB😀")
    );
    assert_eq!(one_param("<value>a&#13;b</value>"), s("a\rb"));
    assert_eq!(
        one_param("<value><string><![CDATA[<a&b>]]></string></value>"),
        s("<a&b>")
    );
    assert_eq!(
        one_param("<value>x<!-- note -->y<![CDATA[z]]></value>"),
        s("xyz")
    );
    assert_eq!(
        one_param("<value><string>a > b</string></value>"),
        s("a > b")
    );
    assert_eq!(
        one_param("<value><string>wörld ☃ 𝄞</string></value>"),
        s("wörld ☃ 𝄞")
    );
}

#[test]
fn raw_carriage_returns_are_normalized_like_expat() {
    assert_eq!(
        one_param("<value><string>a\r\nb\rc</string></value>"),
        s("a\nb\nc")
    );
}

#[test]
fn arrays_and_structs_nest_and_keep_order() {
    let v = one_param(
        "<value><struct>
           <member><name>z</name><value><int>1</int></value></member>
           <member><name>a</name><value><array><data>
               <value><string>x</string></value>
               <value><array><data/></array></value>
               <value><struct></struct></value>
               <value><array/></value>
           </data></array></value></member>
           <member><name>z</name><value>dup</value></member>
           <member><name/><value/></member>
         </struct></value>",
    );
    assert_eq!(
        v,
        Value::Struct(vec![
            ("z".into(), Value::Int(1)),
            (
                "a".into(),
                Value::Array(vec![
                    s("x"),
                    Value::Array(vec![]),
                    Value::Struct(vec![]),
                    Value::Array(vec![])
                ])
            ),
            ("z".into(), s("dup")),
            (String::new(), s("")),
        ])
    );
    assert_eq!(v.get("z"), Some(&Value::Int(1)));
    assert_eq!(one_param("<value><struct/></value>"), Value::Struct(vec![]));
}

#[test]
fn multicall_shape() {
    let body = call(
        "system.multicall",
        &[Value::Array(vec![
            Value::Struct(vec![
                ("methodName".into(), s("supervisor.getState")),
                ("params".into(), Value::Array(vec![])),
            ]),
            Value::Struct(vec![
                ("methodName".into(), s("supervisor.readLog")),
                (
                    "params".into(),
                    Value::Array(vec![Value::Int(-100), Value::Int(0)]),
                ),
            ]),
        ])],
    );
    let c = call_of(&body);
    assert_eq!(c.method, "system.multicall");
    let calls = c.params[0].as_array().unwrap();
    assert_eq!(
        calls[1].get("methodName").and_then(Value::as_str),
        Some("supervisor.readLog")
    );
    assert_eq!(
        calls[1].get("params").and_then(Value::as_array).unwrap()[0].as_int(),
        Some(-100)
    );
}

#[test]
fn declared_encodings_and_bom() {
    let c =
        parse_call(b"\xEF\xBB\xBF<methodCall><methodName>a.b</methodName></methodCall>").unwrap();
    assert_eq!(c.method, "a.b");
    // ISO-8859-1: byte 0xE9 is U+00E9.
    let c = parse_call(
        b"<?xml version='1.0' encoding='iso-8859-1'?><methodCall><methodName>a.b</methodName><params><param><value>caf\xE9</value></param></params></methodCall>",
    )
    .unwrap();
    assert_eq!(c.params, vec![s("café")]);
    let e = parse_err("<?xml version='1.0' encoding='utf-16'?><methodCall/>");
    assert!(e.message.contains("encoding"), "{e}");
    let e = parse_call(b"<methodCall><methodName>a\xFF</methodName></methodCall>").unwrap_err();
    assert!(e.message.contains("UTF-8"), "{e}");
}

#[test]
fn attributes_are_ignored() {
    let c = call_of(
        "<methodCall xmlns:ex='http://example'><methodName a=\"1\" >a.b</methodName ><params><param><value  k = 'v' ><int>1</int></value></param></params></methodCall>",
    );
    assert_eq!(c.params, vec![Value::Int(1)]);
}

#[test]
fn rejects_doctype_and_entity_declarations() {
    let bomb = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><methodCall><methodName>&lol2;</methodName></methodCall>";
    assert!(parse_err(bomb).message.contains("DOCTYPE"));
    assert!(
        parse_err("<!ENTITY x 'y'><methodCall/>")
            .message
            .contains("not allowed")
    );
    // An undeclared entity reference is an error, not an expansion.
    assert!(
        parse_err("<methodCall><methodName>&lol;</methodName></methodCall>")
            .message
            .contains("lol")
    );
}

#[test]
fn nesting_is_capped() {
    let nest = |n: usize| {
        format!(
            "<methodCall><methodName>a.b</methodName><params><param>{}<value><int>1</int></value>{}</param></params></methodCall>",
            "<value><array><data>".repeat(n),
            "</data></array></value>".repeat(n)
        )
    };
    let mut v = params_of(&nest(MAX_DEPTH)).remove(0);
    let mut depth = 0;
    while let Value::Array(mut a) = v {
        depth += 1;
        v = a.remove(0);
    }
    assert_eq!(depth, MAX_DEPTH);
    assert!(parse_err(&nest(MAX_DEPTH + 1)).message.contains("nested"));
    // Far deeper than the cap: refused without exhausting the stack.
    assert!(parse_call(nest(100_000).as_bytes()).is_err());
    let structs = |n: usize| {
        format!(
            "<methodCall><methodName>a.b</methodName><params><param>{}<value/>{}</param></params></methodCall>",
            "<value><struct><member><name>k</name>".repeat(n),
            "</member></struct></value>".repeat(n)
        )
    };
    assert!(parse_call(structs(MAX_DEPTH).as_bytes()).is_ok());
    assert!(parse_call(structs(MAX_DEPTH + 1).as_bytes()).is_err());
}

#[test]
fn rejects_what_it_should() {
    let wrap = |inner: &str| {
        format!(
            "<methodCall><methodName>a.b</methodName><params><param>{inner}</param></params></methodCall>"
        )
    };
    for bad in [
        wrap("<value><int>2147483648</int></value>"),
        wrap("<value><int>-2147483649</int></value>"),
        wrap("<value><int>1.5</int></value>"),
        wrap("<value><int/></value>"),
        wrap("<value><i8>1</i8></value>"),
        wrap("<value><nil/></value>"),
        wrap("<value><boolean>2</boolean></value>"),
        wrap("<value><double>x</double></value>"),
        wrap("<value><base64>a!==</base64></value>"),
        wrap("<value><base64>a</base64></value>"),
        wrap("<value>text<int>1</int></value>"),
        wrap("<value><int>1</int><int>2</int></value>"),
        wrap("<value><string>a<b/></string></value>"),
        wrap("<value><string>&bogus;</string></value>"),
        wrap("<value><string>&#0;</string></value>"),
        wrap("<value><string>&#xD800;</string></value>"),
        wrap("<value><string>a & b</string></value>"),
        wrap("<value><string>x</str></value>"),
        wrap("<value><array><value/></array></value>"),
        wrap("<value><struct><member><value/><name>k</name></member></struct></value>"),
        wrap("<value><struct>junk</struct></value>"),
        wrap("<value>"),
        wrap(""),
        "<methodCall><methodName></methodName></methodCall>".into(),
        "<methodCall><methodName/></methodCall>".into(),
        "<methodCall/>".into(),
        "<methodResponse><params/></methodResponse>".into(),
        "<methodCall><methodName>a.b</methodName></methodCall><methodCall/>".into(),
        "<methodCall><methodName>a.b</methodName></methodCall>trailing".into(),
        "<methodCall><methodName>a.b</methodName>".into(),
        "<methodCall><methodName>a.b</methodName><params><param><value/></param></params>".into(),
        "<methodCall><methodName>a.b</methodName><!-- unterminated</methodCall>".into(),
        "<methodCall><methodName>a.b</methodName><params x=1/></methodCall>".into(),
        "<?xml version='1.0'".into(),
        "".into(),
        "   ".into(),
    ] {
        parse_err(&bad);
    }
}

// --- writing -----------------------------------------------------------------------------

#[test]
fn response_matches_python_dumps_byte_for_byte() {
    // Captured from CPython 3.11:
    // xmlrpc.client.dumps(({'a': 1, 'b': [True, 's<&>"\'', 1.5, b'hi'], 'c': {}},), methodresponse=True)
    let v = Value::Struct(vec![
        ("a".into(), Value::Int(1)),
        (
            "b".into(),
            Value::Array(vec![
                Value::Bool(true),
                s("s<&>\"'"),
                Value::Double(1.5),
                Value::Base64(b"hi".to_vec()),
            ]),
        ),
        ("c".into(), Value::Struct(vec![])),
    ]);
    assert_eq!(
        response(&v),
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n<member>\n<name>a</name>\n<value><int>1</int></value>\n</member>\n<member>\n<name>b</name>\n<value><array><data>\n<value><boolean>1</boolean></value>\n<value><string>s&lt;&amp;&gt;\"'</string></value>\n<value><double>1.5</double></value>\n<value><base64>\naGk=\n</base64></value>\n</data></array></value>\n</member>\n<member>\n<name>c</name>\n<value><struct>\n</struct></value>\n</member>\n</struct></value>\n</param>\n</params>\n</methodResponse>\n"
    );
    assert_eq!(
        response(&s("")),
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string></string></value>\n</param>\n</params>\n</methodResponse>\n"
    );
}

#[test]
fn fault_matches_python_dumps_byte_for_byte() {
    // xmlrpc.client.dumps(xmlrpc.client.Fault(10, 'BAD_NAME: x'))
    assert_eq!(
        fault(10, "BAD_NAME: x"),
        "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>10</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>BAD_NAME: x</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n"
    );
}

#[test]
fn call_matches_python_dumps_byte_for_byte() {
    // xmlrpc.client.dumps(('a', [], {}, DateTime('20250101T01:02:03'), Binary(b'')), methodname='sup.x')
    assert_eq!(
        call(
            "sup.x",
            &[
                s("a"),
                Value::Array(vec![]),
                Value::Struct(vec![]),
                Value::DateTime("20250101T01:02:03".into()),
                Value::Base64(vec![]),
            ]
        ),
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>sup.x</methodName>\n<params>\n<param>\n<value><string>a</string></value>\n</param>\n<param>\n<value><array><data>\n</data></array></value>\n</param>\n<param>\n<value><struct>\n</struct></value>\n</param>\n<param>\n<value><dateTime.iso8601>20250101T01:02:03</dateTime.iso8601></value>\n</param>\n<param>\n<value><base64>\n</base64></value>\n</param>\n</params>\n</methodCall>\n"
    );
}

#[test]
fn xml_safe_drops_only_forbidden_characters() {
    assert!(matches!(xml_safe("plain\ttext\r\n☃"), Cow::Borrowed(_)));
    assert_eq!(
        xml_safe("\x1b[31mred\x1b[0m\x00\x07\x08\x0b\x0c\x7f\u{85}"),
        "[31mred[0m\x7f\u{85}"
    );
    assert_eq!(
        xml_safe("a\u{FFFE}b\u{FFFF}c\u{FFFD}\u{10FFFF}"),
        "abc\u{FFFD}\u{10FFFF}"
    );
    let r = response(&Value::Struct(vec![("k\x01ey".into(), s("v\x1b&"))]));
    assert!(
        r.contains("<name>key</name>") && r.contains("<string>v&amp;</string>"),
        "{r}"
    );
    assert!(fault(1, "bad\x00").contains("<string>bad</string>"));
}

#[test]
fn python_float_repr() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (100.0, "100.0"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (123456789012345680.0, "1.2345678901234568e+17"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e100, "1e+100"),
        (5e-324, "5e-324"),
        // Exactly ...916.25, a tie between two 17-digit strings: CPython rounds half to even.
        (1370894162916916.2, "1370894162916916.2"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN, "nan"),
    ];
    for &(d, want) in cases {
        let mut out = String::new();
        push_python_float(&mut out, d);
        assert_eq!(out, want, "{d:e}");
    }
}

#[test]
fn base64_round_trip_and_line_wrapping() {
    let mut rng = Rng::new(7);
    for len in (0..200).chain([1000, 4096]) {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut enc = String::new();
        push_base64_lines(&mut enc, &bytes);
        assert!(enc.lines().all(|l| l.len() <= 76));
        assert!(enc.is_empty() || enc.ends_with('\n'));
        assert_eq!(
            base64_decode(&enc).as_deref(),
            Some(&bytes[..]),
            "len {len}"
        );
    }
}

#[test]
fn own_writer_round_trips_through_own_parser() {
    let v = sample_values();
    let got = parse_call(call("m.x", &v).as_bytes()).unwrap();
    assert_eq!(got.params.len(), v.len());
    for (a, b) in got.params.iter().zip(&v) {
        assert_eq!(canon(a), canon(&expected_after_xml(b)));
    }
}

// --- fuzzing -----------------------------------------------------------------------------

#[test]
fn malformed_input_is_an_error_never_a_panic() {
    let mut seeds: Vec<Vec<u8>> = vec![
        call("m.x", &sample_values()).into_bytes(),
        response(&Value::Array(sample_values())).into_bytes(),
        b"<?xml version='1.0' encoding='latin-1'?><!-- c --><methodCall><methodName>a</methodName><params><param><value><![CDATA[x]]>&#x41;&amp;</value></param></params></methodCall>".to_vec(),
    ];
    seeds.push(seeds[0].repeat(2));
    const ALPHABET: &[u8] = b"<>/&;#x![]CDATA-?='\" \n\r\tvalue0123456789abcdef\xC3\xA9\xFF\x00";
    let mut rng = Rng::new(0x5EED);
    let mut accepted = 0;
    for i in 0..60_000 {
        let mut doc = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(doc.len() + 1);
            match rng.below(6) {
                0 => doc.truncate(at),
                1 => {
                    if at < doc.len() {
                        doc[at] = ALPHABET[rng.below(ALPHABET.len())];
                    }
                }
                2 => doc.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                3 => {
                    let end = (at + rng.below(40)).min(doc.len());
                    doc.drain(at..end);
                }
                4 => {
                    let end = (at + rng.below(80)).min(doc.len());
                    let piece = doc[at..end].to_vec();
                    let to = rng.below(doc.len() + 1);
                    doc.splice(to..to, piece);
                }
                _ => {
                    if at < doc.len() {
                        doc[at] ^= 1 << rng.below(8);
                    }
                }
            }
        }
        if parse_call(&doc).is_ok() {
            accepted += 1;
        }
    }
    // Some mutations are harmless (inside text); most are not.
    assert!(accepted > 0 && accepted < 60_000, "accepted {accepted}");
}

// --- against CPython's xmlrpc.client -------------------------------------------------------

/// A canonical text form both sides can print: strings as hex of their UTF-8.
fn canon(v: &Value) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match v {
        Value::Int(i) => format!("i:{i}"),
        Value::Bool(b) => format!("b:{}", u8::from(*b)),
        Value::String(x) => format!("s:{}", hex(x.as_bytes())),
        Value::Double(d) => {
            let mut out = "d:".to_string();
            push_python_float(&mut out, *d);
            out
        }
        Value::DateTime(x) => format!("t:{}", hex(x.as_bytes())),
        Value::Base64(b) => format!("B:{}", hex(b)),
        Value::Array(a) => format!("[{}]", a.iter().map(canon).collect::<Vec<_>>().join(",")),
        Value::Struct(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}={}", hex(k.as_bytes()), canon(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

const PY_CANON: &str = r#"
import sys, base64, xmlrpc.client as xc
def canon(v):
    if isinstance(v, bool): return 'b:%d' % v
    if isinstance(v, int): return 'i:%d' % v
    if isinstance(v, str): return 's:' + v.encode('utf-8').hex()
    if isinstance(v, float): return 'd:' + repr(v)
    if isinstance(v, xc.DateTime): return 't:' + v.value.encode('utf-8').hex()
    if isinstance(v, xc.Binary): return 'B:' + v.data.hex()
    if isinstance(v, (list, tuple)): return '[' + ','.join(canon(x) for x in v) + ']'
    if isinstance(v, dict): return '{' + ','.join(k.encode('utf-8').hex() + '=' + canon(x) for k, x in v.items()) + '}'
    raise TypeError(type(v))
"#;

/// What a value looks like after a trip through an XML parser: forbidden characters
/// dropped (we never send them), raw CR and CRLF turned into LF (expat does that).
fn expected_after_xml(v: &Value) -> Value {
    let fix = |s: &str| xml_safe(s).replace("\r\n", "\n").replace('\r', "\n");
    match v {
        Value::String(x) => Value::String(fix(x)),
        Value::DateTime(x) => Value::DateTime(fix(x)),
        Value::Array(a) => Value::Array(a.iter().map(expected_after_xml).collect()),
        Value::Struct(m) => Value::Struct(
            m.iter()
                .map(|(k, v)| (fix(k), expected_after_xml(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn sample_values() -> Vec<Value> {
    let mut nested = Value::Int(0);
    for i in 0..10 {
        nested = if i % 2 == 0 {
            Value::Array(vec![nested, Value::Int(i)])
        } else {
            Value::Struct(vec![(format!("k{i}"), nested)])
        };
    }
    vec![
        s(""),
        s("hello"),
        s("wörld ☃ 𝄞 日本語"),
        s("a&b<c>d\"e'f &amp; ]]> <![CDATA[x]]>"),
        s("  lead and trail  "),
        s("tab\tnl\ncr\r\ncrlf\rend"),
        s("\x1b[31mred\x1b[0m bell\x07 nul\x00 \u{FFFE}\u{FFFF} kept\u{FFFD}"),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(i32::MAX),
        Value::Int(i32::MIN),
        Value::Bool(true),
        Value::Bool(false),
        Value::Double(0.1),
        Value::Double(-0.0),
        Value::Double(1e16),
        Value::Double(1.5e-7),
        Value::Double(f64::INFINITY),
        Value::DateTime("20250102T03:04:05".into()),
        Value::Base64(vec![]),
        Value::Base64((0..=255).collect()),
        Value::Array(vec![]),
        Value::Struct(vec![]),
        Value::Struct(vec![
            ("name".into(), s("web_00")),
            ("group".into(), s("web")),
            ("pid".into(), Value::Int(4242)),
            ("spawnerr".into(), s("")),
            (
                "κλειδί & <key>".into(),
                Value::Array(vec![s("x"), Value::Bool(false)]),
            ),
        ]),
        Value::Array(vec![Value::Array(vec![
            Value::Array(vec![s("added")]),
            Value::Array(vec![]),
            Value::Array(vec![]),
        ])]),
        nested,
    ]
}

/// Rust writes, CPython reads: `loads` must give the value back, and `dumps` of what it
/// read must give our bytes back exactly.
#[test]
fn python_reads_our_responses_and_faults() {
    let Some(py) = python3() else { return };
    let mut values = sample_values();
    let mut rng = Rng::new(99);
    // Random doubles check our repr(float) against CPython's.
    values.push(Value::Array(
        (0..5000)
            .map(|_| Value::Double(f64::from_bits(rng.next())))
            .collect(),
    ));
    // Large integers plus a few fraction bits: 17-digit ties, where rounding rules differ.
    values.push(Value::Array(
        (0..3000)
            .map(|_| Value::Double((rng.next() >> 11) as f64 / f64::from(1u32 << rng.below(12))))
            .collect(),
    ));
    values.push(Value::Array(
        (0..500)
            .map(|_| {
                Value::Double(
                    (rng.next() % 1_000_000_000) as f64 / 10f64.powi(rng.below(20) as i32),
                )
            })
            .collect(),
    ));
    let mut input = String::new();
    let mut want = Vec::new();
    for v in &values {
        input.push_str(&b64(response(v).as_bytes()));
        input.push('\n');
        let exp = expected_after_xml(v);
        want.push(format!(
            "{}\t{}",
            canon(&exp),
            b64(response(&exp).as_bytes())
        ));
    }
    for (code, msg) in [
        (10, "BAD_NAME: x"),
        (2, "INCORRECT_PARAMETERS"),
        (-1, "ünïcode <&> \x1b[0m"),
    ] {
        input.push_str(&b64(fault(code, msg).as_bytes()));
        input.push('\n');
        want.push(format!(
            "F:{code}:{}\t{}",
            hex(xml_safe(msg).as_bytes()),
            b64(fault(code, &xml_safe(msg)).as_bytes())
        ));
    }
    let script = format!(
        "{PY_CANON}
for line in sys.stdin:
    data = base64.b64decode(line).decode('utf-8')
    try:
        params, method = xc.loads(data)
        assert method is None and len(params) == 1
        again = xc.dumps(params, methodresponse=True)
        print(canon(params[0]) + '\\t' + base64.b64encode(again.encode('utf-8')).decode())
    except xc.Fault as f:
        again = xc.dumps(f)
        print('F:%d:%s\\t%s' % (f.faultCode, f.faultString.encode('utf-8').hex(), base64.b64encode(again.encode('utf-8')).decode()))
"
    );
    let out = run_python(&py, &script, &input);
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if *g != w {
            let (gc, gx) = g.split_once('\t').unwrap();
            let (wc, wx) = w.split_once('\t').unwrap();
            if gc != wc {
                let at = gc
                    .bytes()
                    .zip(wc.bytes())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                let lo = at.saturating_sub(60);
                panic!(
                    "value {i}: CPython read something else near byte {at}:\n python: {}\n    rust: {}",
                    &gc[lo..(at + 60).min(gc.len())],
                    &wc[lo..(at + 60).min(wc.len())]
                );
            }
            let gx = String::from_utf8(unb64(gx)).unwrap();
            let wx = String::from_utf8(unb64(wx)).unwrap();
            assert_eq!(gx, wx, "value {i}: CPython's dumps differs from ours");
        }
    }
}

/// CPython writes, Rust reads: for each call CPython's own `loads` is the reference.
#[test]
fn we_read_what_python_sends() {
    let Some(py) = python3() else { return };
    let script = format!(
        r#"{PY_CANON}
D = xc.DateTime('20250102T03:04:05')
B = xc.Binary
cases = [
    (),
    ('',),
    ('hello', 'wörld ☃ 𝄞 日本語', 'a&b<c>d"e\'f ]]>', '  lead and trail  ', 'tab\tnl\ncrlf\r\ncr\rend'),
    (0, 1, -1, 2**31 - 1, -2**31, True, False),
    (0.1, -0.0, 1e16, 1.5e-7, float('inf'), -1e300, 5e-324),
    (D, B(b''), B(bytes(range(256))), B(b'x' * 1000)),
    ([], {{}}, [[], [[]], {{}}], {{'a': 1, 'b': [True, 's'], 'c': {{'d': {{}}}}, 'κλειδί & <key>': ''}}),
    ([{{'methodName': 'supervisor.getState', 'params': []}}, {{'methodName': 'supervisor.readLog', 'params': [-100, 0]}}],),
    ('web:*', True),
]
for enc in ('utf-8', 'us-ascii', 'iso-8859-1'):
    for args in cases:
        # ServerProxy: dumps, then encode with xmlcharrefreplace.
        body = xc.dumps(args, methodname='supervisor.x', encoding=enc).encode(enc, 'xmlcharrefreplace')
        print(base64.b64encode(body).decode() + '\t' + canon(list(xc.loads(body)[0])))
hand = [
    '<methodCall><methodName>a.b</methodName><params><param><value>untyped  </value></param><param><value/></param><param><value><string/></value></param></params></methodCall>',
    '<methodCall><methodName>a.b</methodName><params><param><value><i4>7</i4></value></param><param><value><![CDATA[<x&y>]]></value></param><param><value>a&#13;b&#x263A;</value></param></params></methodCall>',
    '<?xml version="1.0" encoding="UTF-8"?>\n<!-- hi -->\n<methodCall>\n  <methodName>a.b</methodName>\n  <params>\n    <param>\n      <value>\n        <struct>\n          <member>\n            <name>k</name>\n            <value><double> 2.5 </double></value>\n          </member>\n        </struct>\n      </value>\n    </param>\n  </params>\n</methodCall>\n',
    '<methodCall><methodName>a.b</methodName><params><param><value><array><data></data></array></value></param><param><value><base64>aGVsbG8g\nd29ybGQ=</base64></value></param></params></methodCall>',
]
for body in hand:
    print(base64.b64encode(body.encode('utf-8')).decode() + '\t' + canon(list(xc.loads(body)[0])))
"#
    );
    let out = run_python(&py, &script, "");
    let mut n = 0;
    for line in out.lines() {
        let (body, want) = line.split_once('\t').unwrap();
        let body = unb64(body);
        let got =
            parse_call(&body).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&body)));
        assert_eq!(
            canon(&Value::Array(got.params)),
            want,
            "{}",
            String::from_utf8_lossy(&body)
        );
        n += 1;
    }
    assert_eq!(n, 3 * 9 + 4);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    push_base64_lines(&mut out, bytes);
    out.retain(|c| c != '\n');
    out
}

fn unb64(s: &str) -> Vec<u8> {
    base64_decode(s).expect("valid base64 from Python")
}
