use super::*;
use crate::testutil::{Rng, python3, run_python};

type Out = ListenerOutput<PendingEvent>;

fn state_event(to: ProcState, from: ProcState) -> Event {
    Event::ProcessState {
        to,
        from,
        process: "web_01".into(),
        group: "web".into(),
        tries: 2,
        expected: true,
        pid: 4242,
    }
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

fn pending(serial: u64) -> PendingEvent {
    PendingEvent {
        serial,
        pool_serial: serial,
        kind: EventKind::Tick5,
        payload: format!("when:{}", serial * 5).into_bytes().into(),
    }
}

// --- names and subscriptions ----------------------------------------------------------------

#[test]
fn names_are_supervisords() {
    // Every attribute of supervisord's events.EventTypes, in its order.
    let upstream = [
        "EVENT",
        "PROCESS_STATE",
        "PROCESS_STATE_STOPPED",
        "PROCESS_STATE_EXITED",
        "PROCESS_STATE_STARTING",
        "PROCESS_STATE_STOPPING",
        "PROCESS_STATE_BACKOFF",
        "PROCESS_STATE_FATAL",
        "PROCESS_STATE_RUNNING",
        "PROCESS_STATE_UNKNOWN",
        "PROCESS_COMMUNICATION",
        "PROCESS_COMMUNICATION_STDOUT",
        "PROCESS_COMMUNICATION_STDERR",
        "PROCESS_LOG",
        "PROCESS_LOG_STDOUT",
        "PROCESS_LOG_STDERR",
        "REMOTE_COMMUNICATION",
        "SUPERVISOR_STATE_CHANGE",
        "SUPERVISOR_STATE_CHANGE_RUNNING",
        "SUPERVISOR_STATE_CHANGE_STOPPING",
        "TICK",
        "TICK_5",
        "TICK_60",
        "TICK_3600",
        "PROCESS_GROUP",
        "PROCESS_GROUP_ADDED",
        "PROCESS_GROUP_REMOVED",
    ];
    for name in upstream {
        let t = EventType::from_name(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(t.name(), name);
    }
    assert_eq!(
        EventKind::ALL.len() + EventType::ABSTRACT.len(),
        upstream.len()
    );
    for k in EventKind::ALL {
        assert_eq!(EventKind::from_name(k.name()), Some(k));
        assert!(upstream.contains(&k.name()));
    }
    for s in ProcState::ALL {
        assert_eq!(
            EventKind::ProcessState { state: s }.name(),
            format!("PROCESS_STATE_{}", s.name())
        );
    }
}

#[test]
fn abstract_types_cover_their_children_only() {
    let children = |t: EventType| -> Vec<&str> {
        EventKind::ALL
            .into_iter()
            .filter(|k| t.covers(*k))
            .map(EventKind::name)
            .collect()
    };
    assert_eq!(children(EventType::Event).len(), 20);
    assert_eq!(children(EventType::ProcessState).len(), 8);
    assert_eq!(
        children(EventType::Tick),
        ["TICK_5", "TICK_60", "TICK_3600"]
    );
    assert_eq!(
        children(EventType::ProcessLog),
        ["PROCESS_LOG_STDOUT", "PROCESS_LOG_STDERR"]
    );
    assert_eq!(
        children(EventType::ProcessCommunication),
        [
            "PROCESS_COMMUNICATION_STDOUT",
            "PROCESS_COMMUNICATION_STDERR"
        ]
    );
    assert_eq!(
        children(EventType::SupervisorStateChange),
        [
            "SUPERVISOR_STATE_CHANGE_RUNNING",
            "SUPERVISOR_STATE_CHANGE_STOPPING"
        ]
    );
    assert_eq!(
        children(EventType::ProcessGroup),
        ["PROCESS_GROUP_ADDED", "PROCESS_GROUP_REMOVED"]
    );
    assert_eq!(
        children(EventType::Kind(EventKind::RemoteCommunication)),
        ["REMOTE_COMMUNICATION"]
    );
}

#[test]
fn parse_subscription_like_supervisord() {
    let sub = parse_subscription("PROCESS_STATE,TICK_60").unwrap();
    assert!(sub.matches(&EventKind::ProcessState {
        state: ProcState::Exited
    }));
    assert!(sub.matches(&EventKind::Tick60));
    assert!(!sub.matches(&EventKind::Tick5));
    assert!(!sub.matches(&EventKind::ProcessLogStdout));

    // Items are trimmed and upper-cased; duplicates collapse.
    let sub = parse_subscription(" tick , process_state_running,TICK ").unwrap();
    assert_eq!(
        sub.types(),
        [
            EventType::Tick,
            EventType::Kind(EventKind::ProcessState {
                state: ProcState::Running
            })
        ]
    );
    assert!(sub.matches(&EventKind::Tick3600));
    assert!(!sub.matches(&EventKind::ProcessState {
        state: ProcState::Stopped
    }));

    let all = parse_subscription("EVENT").unwrap();
    assert!(EventKind::ALL.iter().all(|k| all.matches(k)));

    for bad in [
        "",
        "  ",
        "BOGUS",
        "TICK,,PROCESS_STATE",
        "TICK,",
        "TICK_5 TICK_60",
        "EVENTS",
    ] {
        assert!(parse_subscription(bad).is_err(), "{bad:?}");
    }
    assert!(
        parse_subscription("TICK_6")
            .unwrap_err()
            .contains("\"TICK_6\"")
    );
}

// --- payloads and envelopes -----------------------------------------------------------------

#[test]
fn process_state_payloads() {
    use ProcState::*;
    let cases = [
        (
            Starting,
            Stopped,
            "processname:web_01 groupname:web from_state:STOPPED tries:2",
        ),
        (
            Backoff,
            Starting,
            "processname:web_01 groupname:web from_state:STARTING tries:2",
        ),
        (
            Running,
            Starting,
            "processname:web_01 groupname:web from_state:STARTING pid:4242",
        ),
        (
            Stopping,
            Running,
            "processname:web_01 groupname:web from_state:RUNNING pid:4242",
        ),
        (
            Stopped,
            Stopping,
            "processname:web_01 groupname:web from_state:STOPPING pid:4242",
        ),
        (
            Exited,
            Running,
            "processname:web_01 groupname:web from_state:RUNNING expected:1 pid:4242",
        ),
        (
            Fatal,
            Backoff,
            "processname:web_01 groupname:web from_state:BACKOFF",
        ),
        (
            Unknown,
            Running,
            "processname:web_01 groupname:web from_state:RUNNING",
        ),
    ];
    for (to, from, want) in cases {
        let e = state_event(to, from);
        assert_eq!(e.kind(), EventKind::ProcessState { state: to });
        assert_eq!(text(&e.payload()), want);
    }
    let e = Event::ProcessState {
        to: Exited,
        from: Running,
        process: "cat".into(),
        group: "cat".into(),
        tries: 0,
        expected: false,
        pid: 7,
    };
    assert_eq!(
        text(&e.payload()),
        "processname:cat groupname:cat from_state:RUNNING expected:0 pid:7"
    );
}

#[test]
fn other_payloads() {
    let log = Event::ProcessLog {
        channel: Channel::Stderr,
        process: "web_01".into(),
        group: "web".into(),
        pid: 9,
        data: b"line one\nline two\n\xff".to_vec(),
    };
    assert_eq!(log.kind(), EventKind::ProcessLogStderr);
    assert_eq!(
        log.payload(),
        b"processname:web_01 groupname:web pid:9 channel:stderr\nline one\nline two\n\xff"
    );
    let comm = Event::ProcessCommunication {
        channel: Channel::Stdout,
        process: "foo".into(),
        group: "bar".into(),
        pid: 123,
        data: b"This is the data that was sent between the tags".to_vec(),
    };
    assert_eq!(comm.kind(), EventKind::ProcessCommunicationStdout);
    // The example of docs/events.rst.
    assert_eq!(
        text(&comm.payload()),
        "processname:foo groupname:bar pid:123\nThis is the data that was sent between the tags"
    );
    let remote = Event::RemoteCommunication {
        kind: "deploy".into(),
        data: "v1.2\nmore".into(),
    };
    assert_eq!(text(&remote.payload()), "type:deploy\nv1.2\nmore");
    assert_eq!(Event::SupervisorRunning.payload(), b"");
    assert_eq!(
        Event::SupervisorStopping.kind(),
        EventKind::SupervisorStateChangeStopping
    );
    assert_eq!(
        text(
            &Event::Tick {
                period: TickPeriod::S60,
                when: 1_700_000_040
            }
            .payload()
        ),
        "when:1700000040"
    );
    assert_eq!(
        text(
            &Event::ProcessGroupAdded {
                group: "web".into()
            }
            .payload()
        ),
        "groupname:web\n"
    );
    assert_eq!(
        Event::ProcessGroupRemoved {
            group: "web".into()
        }
        .kind(),
        EventKind::ProcessGroupRemoved
    );
}

#[test]
fn envelope_bytes() {
    // A real TICK_5 envelope from supervisord's debug log (upstream issue #663).
    let tick = Event::Tick {
        period: TickPeriod::S5,
        when: 1_483_574_065,
    };
    assert_eq!(
        envelope("supervisor", 0, "cat", 0, tick.kind().name(), &tick.payload()),
        b"ver:3.0 server:supervisor serial:0 pool:cat poolserial:0 eventname:TICK_5 len:15\nwhen:1483574065"
    );
    let payload = "type:x\né☃".as_bytes();
    assert_eq!(
        text(&envelope(
            "sv",
            21,
            "listener",
            10,
            "REMOTE_COMMUNICATION",
            payload
        )),
        "ver:3.0 server:sv serial:21 pool:listener poolserial:10 eventname:REMOTE_COMMUNICATION len:12\ntype:x\né☃"
    );
    assert_eq!(
        text(&envelope_in(
            LenUnit::Chars,
            "sv",
            21,
            "listener",
            10,
            "REMOTE_COMMUNICATION",
            payload
        )),
        "ver:3.0 server:sv serial:21 pool:listener poolserial:10 eventname:REMOTE_COMMUNICATION len:9\ntype:x\né☃"
    );
    assert_eq!(
        envelope("s", 1, "p", 2, "SUPERVISOR_STATE_CHANGE_RUNNING", b""),
        b"ver:3.0 server:s serial:1 pool:p poolserial:2 eventname:SUPERVISOR_STATE_CHANGE_RUNNING len:0\n"
    );
    let p = PendingEvent {
        serial: 5,
        pool_serial: 3,
        kind: EventKind::ProcessGroupAdded,
        payload: b"groupname:g\n".to_vec().into(),
    };
    assert_eq!(
        p.envelope("supervisor", "pool", LenUnit::Bytes),
        b"ver:3.0 server:supervisor serial:5 pool:pool poolserial:3 eventname:PROCESS_GROUP_ADDED len:12\ngroupname:g\n"
    );
}

#[test]
fn supervisor4_data_matches_python_repr() {
    assert!(matches!(
        supervisor4_data("ok ☃".as_bytes()),
        std::borrow::Cow::Borrowed(_)
    ));
    assert_eq!(
        &*supervisor4_data(b"a\xffb'"),
        b"Undecodable: b\"a\\xffb'\""
    );
    assert_eq!(
        &*supervisor4_data(b"\xff'\""),
        b"Undecodable: b'\\xff\\'\"'"
    );
    assert_eq!(
        &*supervisor4_data(b"\x80\t\n\r\\\x7f"),
        b"Undecodable: b'\\x80\\t\\n\\r\\\\\\x7f'"
    );

    let Some(py) = python3() else { return };
    let mut rng = Rng::new(3);
    let samples: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            let n = rng.below(40);
            let mut v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if i % 3 == 0 {
                v.push(b'\'');
            }
            if i % 5 == 0 {
                v.push(b'"');
            }
            v.push(0xff); // never valid UTF-8
            v
        })
        .collect();
    let input: String = samples.iter().map(|s| format!("{}\n", hex(s))).collect();
    let out = run_python(
        &py,
        "import sys\nfor line in sys.stdin:\n    sys.stdout.write(('Undecodable: %r' % bytes.fromhex(line.strip())).encode().hex() + '\\n')\n",
        &input,
    );
    for (s, line) in samples.iter().zip(out.lines()) {
        assert_eq!(hex(&supervisor4_data(s)), line, "{s:?}");
    }
}

#[test]
fn tick_clock_follows_supervisord() {
    let hour = 3600 * 278;
    let mut c = TickClock::new();
    assert!(c.tick(hour + 3).is_empty(), "the first call only records");
    assert!(c.tick(hour + 4).is_empty());
    assert_eq!(
        c.tick(hour + 5),
        [Event::Tick {
            period: TickPeriod::S5,
            when: hour + 5
        }]
    );
    assert!(c.tick(hour + 9).is_empty());
    // A jump emits one event per kind whose slice changed, for the current slice.
    assert_eq!(
        c.tick(hour + 601),
        [
            Event::Tick {
                period: TickPeriod::S5,
                when: hour + 600
            },
            Event::Tick {
                period: TickPeriod::S60,
                when: hour + 600
            }
        ]
    );
    assert_eq!(
        c.tick(hour + 3600)
            .iter()
            .map(Event::kind)
            .collect::<Vec<_>>(),
        [EventKind::Tick5, EventKind::Tick60, EventKind::Tick3600]
    );
}

// --- the listener's stdout --------------------------------------------------------------------

fn ready_channel() -> ListenerChannel<PendingEvent> {
    let mut ch = ListenerChannel::new();
    assert_eq!(ch.feed(b"READY\n"), [Out::Ready]);
    ch
}

fn busy_channel(serial: u64) -> ListenerChannel<PendingEvent> {
    let mut ch = ready_channel();
    ch.dispatched(pending(serial)).unwrap();
    assert_eq!(ch.state(), ListenerState::Busy);
    ch
}

fn feed_bytewise(ch: &mut ListenerChannel<PendingEvent>, bytes: &[u8]) -> Vec<Out> {
    bytes
        .iter()
        .flat_map(|b| ch.feed(std::slice::from_ref(b)))
        .collect()
}

#[test]
fn states_and_codes() {
    let ch: ListenerChannel<()> = ListenerChannel::default();
    assert_eq!(ch.state(), ListenerState::Acknowledged);
    assert_eq!(
        [
            ListenerState::Ready,
            ListenerState::Busy,
            ListenerState::Acknowledged,
            ListenerState::Unknown
        ]
        .map(|s| s.code()),
        [10, 20, 30, 40]
    );
    assert_eq!(ListenerState::Acknowledged.name(), "ACKNOWLEDGED");
}

#[test]
fn ready_token_only_in_acknowledged() {
    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::new();
    assert!(ch.feed(b"REA").is_empty());
    assert_eq!(ch.feed(b"DY\n"), [Out::Ready]);
    assert_eq!(ch.state(), ListenerState::Ready);

    // A second READY while READY is a violation.
    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::new();
    let out = ch.feed(b"READY\nREADY\n");
    assert_eq!(out[0], Out::Ready);
    assert!(matches!(
        &out[1],
        Out::ProtocolError {
            from: ListenerState::Ready,
            event: None,
            ..
        }
    ));
    assert_eq!(ch.state(), ListenerState::Unknown);

    // Anything but READY\n in ACKNOWLEDGED, once 6 bytes are there.
    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::new();
    assert!(
        ch.feed(b"hello").is_empty(),
        "5 bytes: not enough to decide"
    );
    assert!(matches!(
        &ch.feed(b"!")[..],
        [Out::ProtocolError {
            from: ListenerState::Acknowledged,
            ..
        }]
    ));
    assert_eq!(ch.state(), ListenerState::Unknown);
    assert!(ch.feed(b"READY\n").is_empty(), "UNKNOWN is final");
    assert_eq!(ch.state(), ListenerState::Unknown);

    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::new();
    assert!(matches!(
        &ch.feed(b"READY\r\n")[..],
        [Out::ProtocolError { .. }]
    ));
    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::new();
    assert!(matches!(
        &ch.feed(b"RESULT 2\nOK")[..],
        [Out::ProtocolError { .. }]
    ));
}

#[test]
fn dispatch_needs_ready() {
    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::new();
    assert_eq!(ch.dispatched(pending(1)), Err(pending(1)));
    let mut ch = busy_channel(1);
    assert_eq!(ch.event(), Some(&pending(1)));
    assert_eq!(ch.dispatched(pending(2)), Err(pending(2)));
}

#[test]
fn results() {
    let mut ch = busy_channel(1);
    assert_eq!(
        ch.feed(b"RESULT 2\nOK"),
        [Out::Result {
            ok: true,
            body: b"OK".to_vec(),
            event: Some(pending(1))
        }]
    );
    assert_eq!(ch.state(), ListenerState::Acknowledged);
    assert_eq!(ch.event(), None);

    let mut ch = busy_channel(2);
    assert_eq!(
        ch.feed(b"RESULT 4\nFAIL"),
        [Out::Result {
            ok: false,
            body: b"FAIL".to_vec(),
            event: Some(pending(2))
        }]
    );

    // Anything but exactly OK is a rejection with the default handler.
    for body in [&b"ok"[..], b"OK\n", b" OK", b"FAILED", b""] {
        let mut ch = busy_channel(3);
        let line = format!("RESULT {}\n", body.len());
        let out = ch.feed(&[line.as_bytes(), body].concat());
        assert_eq!(
            out,
            [Out::Result {
                ok: false,
                body: body.to_vec(),
                event: Some(pending(3))
            }],
            "{body:?}"
        );
    }

    // Bytes after the result are read in ACKNOWLEDGED, all in one chunk or one by one.
    let mut ch = busy_channel(4);
    let want = [
        Out::Result {
            ok: true,
            body: b"OK".to_vec(),
            event: Some(pending(4)),
        },
        Out::Ready,
    ];
    assert_eq!(ch.feed(b"RESULT 2\nOKREADY\n"), want);
    let mut ch = busy_channel(4);
    assert_eq!(feed_bytewise(&mut ch, b"RESULT 2\nOKREADY\n"), want);
    assert_eq!(ch.state(), ListenerState::Ready);

    // The body is opaque: newlines and tokens inside it are data.
    let mut ch = busy_channel(5);
    assert_eq!(
        ch.feed(b"RESULT 6\nREADY\n"),
        [Out::Result {
            ok: false,
            body: b"READY\n".to_vec(),
            event: Some(pending(5))
        }]
    );
    assert_eq!(ch.state(), ListenerState::Acknowledged);

    // Garbage after a result: UNKNOWN, but the result itself stands.
    let mut ch = busy_channel(6);
    let out = ch.feed(b"RESULT 2\nOKjunk!!");
    assert!(matches!(
        &out[..],
        [
            Out::Result { ok: true, .. },
            Out::ProtocolError {
                from: ListenerState::Acknowledged,
                event: None,
                ..
            }
        ]
    ));
}

#[test]
fn result_line_is_read_like_supervisord() {
    // supervisord skips 7 bytes without checking them and reads the rest with int().
    for (line, len) in [
        (&b"RESULT 2"[..], 2),
        (b"RESULT 2\r", 2),
        (b"RESULT  +2 ", 2),
        (b"RESULT\t2", 2),
        (b"XXXXXX 2", 2),
        (b"RESULT 0002", 2),
        (b"RESULT 1_0", 10),
        (b"RESULT -0", 0),
        (b"RESULT\x0c2\x0b", 2),
    ] {
        let mut ch = busy_channel(1);
        let body = vec![b'x'; len];
        let out = ch.feed(&[line, b"\n", &body].concat());
        assert!(
            matches!(&out[..], [Out::Result { event: Some(_), .. }]),
            "{line:?}: {out:?}"
        );
        assert_eq!(ch.state(), ListenerState::Acknowledged, "{line:?}");
    }
    for line in [
        &b"RESULT"[..],
        b"RESULT ",
        b"RESULT x",
        b"RESULT 2 2",
        b"RESULT -1",
        b"RESULT 0x2",
        b"RESULT _1",
        b"RESULT 1__0",
        b"RESULT \xc2\xa02",
        b"RESULT 99999999999999999999999999",
        b"OK",
    ] {
        let mut ch = busy_channel(7);
        let out = ch.feed(&[line, b"\n"].concat());
        match &out[..] {
            [
                Out::ProtocolError {
                    from: ListenerState::Busy,
                    message,
                    event: Some(e),
                },
            ] => {
                assert_eq!(e, &pending(7));
                assert!(message.starts_with("bad result line"), "{message}");
            }
            other => panic!("{line:?}: {other:?}"),
        }
        assert_eq!(ch.state(), ListenerState::Unknown);
        assert_eq!(ch.event(), None);
    }
}

#[test]
fn result_waits_for_all_its_bytes() {
    let mut ch = busy_channel(1);
    assert!(ch.feed(b"RESULT 3").is_empty(), "no newline yet");
    assert!(ch.feed(b"\nOK").is_empty(), "2 of 3 bytes");
    assert_eq!(
        ch.feed(b"!"),
        [Out::Result {
            ok: false,
            body: b"OK!".to_vec(),
            event: Some(pending(1))
        }]
    );
    // A zero-length result completes at once (supervisord only notices it when the next
    // byte arrives; see NOTES.md).
    let mut ch = busy_channel(2);
    assert_eq!(
        ch.feed(b"RESULT 0\n"),
        [Out::Result {
            ok: false,
            body: vec![],
            event: Some(pending(2))
        }]
    );
}

#[test]
fn memory_stays_bounded() {
    let mut ch = busy_channel(1);
    assert!(ch.feed(&[b'9'; 100]).is_empty());
    assert!(matches!(
        &ch.feed(&[b'9'; 100])[..],
        [Out::ProtocolError { event: Some(_), .. }]
    ));

    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::with_max_result_len(4);
    ch.feed(b"READY\n");
    ch.dispatched(pending(1)).unwrap();
    assert!(
        matches!(&ch.feed(b"RESULT 5\n")[..], [Out::ProtocolError { message, .. }] if message.contains("too long"))
    );
    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::with_max_result_len(4);
    ch.feed(b"READY\n");
    ch.dispatched(pending(1)).unwrap();
    assert!(matches!(
        &ch.feed(b"RESULT 4\nFAIL")[..],
        [Out::Result { .. }]
    ));
}

#[test]
fn exit_hands_back_the_event_in_flight() {
    let mut ch = busy_channel(9);
    assert!(ch.feed(b"RESULT 2\nO").is_empty());
    assert_eq!(ch.exited(), Some(pending(9)));
    assert_eq!(
        ch.state(),
        ListenerState::Acknowledged,
        "ready for the next process"
    );
    assert_eq!(ch.feed(b"READY\n"), [Out::Ready]);

    // Drained before the exit: the result counts and nothing is handed back.
    let mut ch = busy_channel(9);
    assert!(matches!(
        &ch.feed(b"RESULT 2\nOK")[..],
        [Out::Result { ok: true, .. }]
    ));
    assert_eq!(ch.exited(), None);

    let mut ch = ready_channel();
    assert_eq!(ch.exited(), None);
}

#[test]
fn fuzzed_output_never_panics() {
    let mut rng = Rng::new(11);
    let pieces: [&[u8]; 8] = [
        b"READY\n",
        b"RESULT ",
        b"2\n",
        b"OK",
        b"FAIL",
        b"\n",
        b"x",
        b"RESULT 4\nFAIL",
    ];
    for _ in 0..20_000 {
        let mut ch: ListenerChannel<u32> = ListenerChannel::with_max_result_len(64);
        for step in 0..20 {
            if ch.state() == ListenerState::Ready && rng.below(2) == 0 {
                ch.dispatched(step).unwrap();
            }
            let mut chunk = Vec::new();
            for _ in 0..rng.below(4) {
                chunk.extend_from_slice(pieces[rng.below(pieces.len())]);
            }
            if rng.below(4) == 0 {
                chunk.push(rng.next() as u8);
            }
            for o in ch.feed(&chunk) {
                if let ListenerOutput::Result { event, .. } = o {
                    assert!(event.is_some());
                }
            }
            if ch.state() != ListenerState::Busy {
                assert!(ch.event().is_none());
            }
        }
    }
}

// --- pools ----------------------------------------------------------------------------------

fn tick_pool(size: usize) -> EventPool {
    EventPool::new("listener", parse_subscription("TICK").unwrap(), size)
}

fn serials(pool: &EventPool) -> Vec<u64> {
    pool.events().map(|e| e.serial).collect()
}

#[test]
fn buffer_drops_the_oldest_when_full() {
    let mut pool = tick_pool(3);
    for s in 0..3 {
        assert_eq!(pool.accept(s, EventKind::Tick5, Arc::from(&b""[..])), None);
    }
    let dropped = pool
        .accept(3, EventKind::Tick5, Arc::from(&b""[..]))
        .unwrap();
    assert_eq!((dropped.serial, dropped.pool_serial), (0, 0));
    assert_eq!(serials(&pool), [1, 2, 3]);
    assert_eq!(
        pool.events().map(|e| e.pool_serial).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(pool.len(), 3);
    assert_eq!(
        EventPool::new("p", parse_subscription("TICK").unwrap(), 0).buffer_size(),
        1
    );
}

#[test]
fn rebuffer_goes_to_the_head_and_keeps_serials() {
    let mut pool = tick_pool(3);
    for s in 10..12 {
        pool.accept(s, EventKind::Tick5, Arc::from(&b""[..]));
    }
    let (_, first) = pool.next_dispatch([(true, ListenerState::Ready)]).unwrap();
    assert_eq!((first.serial, first.pool_serial), (10, 0));
    pool.accept(12, EventKind::Tick5, Arc::from(&b""[..]));
    assert_eq!(pool.rebuffer(first.clone()), None);
    assert_eq!(serials(&pool), [10, 11, 12]);
    assert_eq!(pool.events().next().unwrap().pool_serial, 0);

    // Full: the oldest waiting event makes room, the rebuffered one goes first.
    let (_, again) = pool.next_dispatch([(true, ListenerState::Ready)]).unwrap();
    pool.accept(13, EventKind::Tick5, Arc::from(&b""[..]));
    assert_eq!(serials(&pool), [11, 12, 13]);
    let dropped = pool.rebuffer(again).unwrap();
    assert_eq!(dropped.serial, 11);
    assert_eq!(serials(&pool), [10, 12, 13]);
}

#[test]
fn next_dispatch_picks_the_first_running_ready_listener() {
    use ListenerState::*;
    let mut pool = tick_pool(10);
    assert_eq!(
        pool.next_dispatch([(true, Ready)]),
        None,
        "nothing buffered"
    );
    pool.accept(0, EventKind::Tick5, Arc::from(&b""[..]));
    pool.accept(1, EventKind::Tick5, Arc::from(&b""[..]));
    // READY but still STARTING, BUSY, UNKNOWN, ACKNOWLEDGED: none qualifies.
    let none = [
        (false, Ready),
        (true, Busy),
        (true, Unknown),
        (true, Acknowledged),
    ];
    assert_eq!(pool.next_dispatch(none), None);
    assert_eq!(pool.len(), 2, "the event stays buffered");
    let (i, e) = pool
        .next_dispatch([(false, Ready), (true, Busy), (true, Ready), (true, Ready)])
        .unwrap();
    assert_eq!((i, e.serial), (2, 0));
    let (i, e) = pool.next_dispatch([(true, Ready), (true, Ready)]).unwrap();
    assert_eq!((i, e.serial), (0, 1));
}

#[test]
fn publish_numbers_and_fans_out() {
    let mut pools = vec![
        EventPool::new("a", parse_subscription("PROCESS_STATE").unwrap(), 10),
        EventPool::new("b", parse_subscription("TICK").unwrap(), 10),
        // Parent and child both named: supervisord would buffer the event twice.
        EventPool::new(
            "c",
            parse_subscription("PROCESS_STATE,PROCESS_STATE_RUNNING").unwrap(),
            10,
        ),
    ];
    let mut global = SerialCounter::new();
    let running = state_event(ProcState::Running, ProcState::Starting);
    assert!(publish(&mut pools, &mut global, &running).is_empty());
    assert!(publish(&mut pools, &mut global, &Event::SupervisorRunning).is_empty());
    assert!(
        publish(
            &mut pools,
            &mut global,
            &Event::Tick {
                period: TickPeriod::S5,
                when: 5
            }
        )
        .is_empty()
    );
    assert!(
        publish(
            &mut pools,
            &mut global,
            &state_event(ProcState::Stopping, ProcState::Running)
        )
        .is_empty()
    );

    let a: Vec<_> = pools[0]
        .events()
        .map(|e| (e.serial, e.pool_serial, e.kind.name()))
        .collect();
    assert_eq!(
        a,
        [
            (0, 0, "PROCESS_STATE_RUNNING"),
            (2, 1, "PROCESS_STATE_STOPPING")
        ]
    );
    let b: Vec<_> = pools[1]
        .events()
        .map(|e| (e.serial, e.pool_serial))
        .collect();
    assert_eq!(
        b,
        [(1, 0)],
        "nobody took SUPERVISOR_STATE_CHANGE_RUNNING, so it used no serial"
    );
    assert_eq!(serials(&pools[2]), [0, 2]);
    assert_eq!(
        &*pools[0].events().next().unwrap().payload,
        &running.payload()[..]
    );

    let mut small = vec![tick_pool(1)];
    publish(
        &mut small,
        &mut global,
        &Event::Tick {
            period: TickPeriod::S5,
            when: 10,
        },
    );
    let d = publish(
        &mut small,
        &mut global,
        &Event::Tick {
            period: TickPeriod::S5,
            when: 15,
        },
    );
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].pool, &*d[0].event.payload), (0, &b"when:10"[..]));
}

#[test]
fn serial_counter_wraps_like_python() {
    let mut c = SerialCounter {
        next: i64::MAX as u64 - 1,
    };
    assert_eq!(c.next_serial(), i64::MAX as u64 - 1);
    assert_eq!(c.next_serial(), i64::MAX as u64);
    assert_eq!(c.next_serial(), 0);
    assert_eq!(c.next_serial(), 1);
}

/// A pool of two listeners driven through the whole protocol: dispatch order, FAIL
/// requeues at the head, a crash while BUSY rebuffers, a protocol error rebuffers.
#[test]
fn pool_and_listeners_together() {
    struct L {
        running: bool,
        ch: ListenerChannel<PendingEvent>,
        got: Vec<u64>,
    }
    let mut pool = tick_pool(10);
    let mut global = SerialCounter::new();
    let mut ls: Vec<L> = (0..2)
        .map(|_| L {
            running: true,
            ch: ListenerChannel::new(),
            got: vec![],
        })
        .collect();
    let dispatch = |pool: &mut EventPool, ls: &mut Vec<L>| {
        while let Some((i, e)) = pool.next_dispatch(ls.iter().map(|l| (l.running, l.ch.state()))) {
            ls[i].got.push(e.serial);
            ls[i].ch.dispatched(e).unwrap();
        }
    };
    let handle = |pool: &mut EventPool, outs: Vec<Out>| {
        for o in outs {
            match o {
                Out::Result {
                    ok: false,
                    event: Some(e),
                    ..
                }
                | Out::ProtocolError { event: Some(e), .. } => {
                    assert_eq!(pool.rebuffer(e), None);
                }
                _ => {}
            }
        }
    };
    for t in 1..=4 {
        publish(
            std::slice::from_mut(&mut pool),
            &mut global,
            &Event::Tick {
                period: TickPeriod::S5,
                when: t * 5,
            },
        );
    }
    dispatch(&mut pool, &mut ls);
    assert_eq!(pool.len(), 4, "nobody is READY yet");

    ls[1].ch.feed(b"READY\n");
    dispatch(&mut pool, &mut ls);
    assert_eq!(
        (ls[1].got.clone(), serials(&pool)),
        (vec![0], vec![1, 2, 3])
    );

    ls[0].ch.feed(b"READY\n");
    dispatch(&mut pool, &mut ls);
    assert_eq!(ls[0].got, [1]);

    // Listener 0 fails event 1: it goes back to the head and, once listener 1 is free
    // again, is the next one out.
    let outs = ls[0].ch.feed(b"RESULT 4\nFAIL");
    handle(&mut pool, outs);
    assert_eq!(serials(&pool), [1, 2, 3]);
    let outs = ls[1].ch.feed(b"RESULT 2\nOKREADY\n");
    handle(&mut pool, outs);
    dispatch(&mut pool, &mut ls);
    assert_eq!(ls[1].got, [0, 1]);

    // Listener 1 dies while BUSY: its event is rebuffered; listener 0 takes it.
    ls[1].running = false;
    let e = ls[1].ch.exited().unwrap();
    assert_eq!(pool.rebuffer(e), None);
    ls[0].ch.feed(b"READY\n");
    dispatch(&mut pool, &mut ls);
    assert_eq!(ls[0].got, [1, 1]);

    // Listener 0 talks nonsense while BUSY: UNKNOWN, event rebuffered, never used again.
    let outs = ls[0].ch.feed(b"what?\n");
    handle(&mut pool, outs);
    assert_eq!(ls[0].ch.state(), ListenerState::Unknown);
    assert_eq!(serials(&pool), [1, 2, 3]);

    // Listener 1 comes back (a new process, RUNNING again) and drains the pool.
    ls[1].running = true;
    for _ in 0..3 {
        ls[1].ch.feed(b"READY\n");
        dispatch(&mut pool, &mut ls);
        let outs = ls[1].ch.feed(b"RESULT 2\nOK");
        handle(&mut pool, outs);
    }
    assert_eq!(ls[1].got, [0, 1, 1, 2, 3]);
    assert!(pool.is_empty());
}

// --- a real listener process ------------------------------------------------------------------

/// Runs a Python listener written like supervisord's docs example over real pipes, driven
/// by the state machine and a pool. `binary`: the listener reads stdin as bytes and `len`
/// counts bytes; otherwise it reads text like `childutils.listener.wait` and `len`
/// counts characters (what supervisord 4 sends). Returns the received envelopes as the
/// listener saw them.
fn run_python_listener(
    py: &str,
    binary: bool,
    events: &[Event],
) -> (Vec<Vec<u8>>, Vec<PendingEvent>) {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    let script = if binary {
        r#"
import sys
inp, out, err = sys.stdin.buffer, sys.stdout.buffer, sys.stderr
seen = set()
while True:
    out.write(b'READY\n'); out.flush()
    line = inp.readline()
    if not line:
        break
    headers = dict(x.split(b':', 1) for x in line.split())
    payload = inp.read(int(headers[b'len']))
    err.write((line + payload).hex() + '\n'); err.flush()
    serial = headers[b'serial']
    # Reject serial 1 the first time, to exercise the requeue.
    if serial == b'1' and serial not in seen:
        seen.add(serial)
        out.write(b'RESULT 4\nFAIL')
    else:
        out.write(b'RESULT 2\nOK')
    out.flush()
"#
    } else {
        r#"
import sys
seen = set()
while True:
    # As childutils.listener.wait(sys.stdin, sys.stdout) does.
    sys.stdout.write('READY\n'); sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        break
    headers = dict([x.split(':', 1) for x in line.split()])
    payload = sys.stdin.read(int(headers['len']))
    sys.stderr.write((line + payload).encode('utf-8').hex() + '\n'); sys.stderr.flush()
    serial = headers['serial']
    if serial == '1' and serial not in seen:
        seen.add(serial)
        sys.stdout.write('RESULT 4\nFAIL')
    else:
        sys.stdout.write('RESULT 2\nOK')
    sys.stdout.flush()
"#
    };
    let unit = if binary {
        LenUnit::Bytes
    } else {
        LenUnit::Chars
    };
    let mut child = Command::new(py)
        .args(["-c", script])
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python listener");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 7];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });

    let mut pool = EventPool::new("py", parse_subscription("EVENT").unwrap(), 100);
    let mut global = SerialCounter::new();
    for e in events {
        assert!(publish(std::slice::from_mut(&mut pool), &mut global, e).is_empty());
    }
    let mut ch: ListenerChannel<PendingEvent> = ListenerChannel::new();
    let mut sent = Vec::new();
    let mut acked = 0;
    while acked < events.len() {
        let chunk = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "listener went quiet ({e}); state {:?}, sent {}",
                    ch.state(),
                    sent.len()
                );
            }
        };
        for o in ch.feed(&chunk) {
            match o {
                ListenerOutput::Ready => {
                    if let Some((0, e)) = pool.next_dispatch([(true, ch.state())]) {
                        stdin
                            .write_all(&e.envelope("supervisor", pool.name(), unit))
                            .unwrap();
                        stdin.flush().unwrap();
                        sent.push(e.clone());
                        ch.dispatched(e).unwrap();
                    }
                }
                ListenerOutput::Result { ok: true, .. } => acked += 1,
                ListenerOutput::Result {
                    ok: false,
                    event: Some(e),
                    ..
                } => {
                    assert_eq!(pool.rebuffer(e), None);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    drop(stdin); // EOF: the listener's readline returns '' and it exits.
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let err = err_reader.join().unwrap().unwrap();
    let seen = err.lines().map(unhex).collect();
    (seen, sent)
}

fn listener_events() -> Vec<Event> {
    vec![
        Event::Tick {
            period: TickPeriod::S5,
            when: 1_483_574_065,
        },
        state_event(ProcState::Exited, ProcState::Running),
        Event::ProcessGroupAdded {
            group: "web".into(),
        },
        Event::SupervisorRunning,
        Event::RemoteCommunication {
            kind: "note".into(),
            data: "ünïcödé ☃ 𝄞\nsecond line".into(),
        },
        Event::ProcessLog {
            channel: Channel::Stdout,
            process: "web_01".into(),
            group: "web".into(),
            pid: 42,
            data: "naïve output\r\n".as_bytes().to_vec(),
        },
    ]
}

#[test]
fn python_binary_listener_reads_byte_lengths() {
    let Some(py) = python3() else { return };
    let mut events = listener_events();
    events.push(Event::ProcessLog {
        channel: Channel::Stderr,
        process: "bin".into(),
        group: "bin".into(),
        pid: 1,
        data: b"\xff\xfe not utf-8 \x00".to_vec(),
    });
    let (seen, sent) = run_python_listener(&py, true, &events);
    // Serial 1 was refused once and sent again straight away.
    assert_eq!(
        sent.iter().map(|e| e.serial).collect::<Vec<_>>(),
        [0, 1, 1, 2, 3, 4, 5, 6]
    );
    let want: Vec<Vec<u8>> = sent
        .iter()
        .map(|e| e.envelope("supervisor", "py", LenUnit::Bytes))
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn python_text_listener_reads_character_lengths() {
    let Some(py) = python3() else { return };
    let (seen, sent) = run_python_listener(&py, false, &listener_events());
    assert_eq!(
        sent.iter().map(|e| e.serial).collect::<Vec<_>>(),
        [0, 1, 1, 2, 3, 4, 5]
    );
    // The listener saw exactly the envelope, so `len` in characters was right for it.
    // (On POSIX, Python's sys.stdin does not translate newlines, so the CR counts.)
    let want: Vec<Vec<u8>> = sent
        .iter()
        .map(|e| e.envelope("supervisor", "py", LenUnit::Chars))
        .collect();
    assert_eq!(seen, want);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
