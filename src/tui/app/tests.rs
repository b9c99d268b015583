//! Keys and inputs on the app: what each does to the state and which requests come out.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::protocol::{ActionResult, ScaleResponse};
use crate::tui::fixture::{self, NOW_MS, app, app_with, disconnect, feed_logs, many};

fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
    app.update(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn chr(app: &mut App, c: char) -> Vec<Request> {
    key(app, KeyCode::Char(c))
}

fn typed(app: &mut App, text: &str) -> Vec<Request> {
    text.chars().flat_map(|c| chr(app, c)).collect()
}

/// Requests other than the log stream's.
fn actions(requests: Vec<Request>) -> Vec<Request> {
    requests
        .into_iter()
        .filter(|r| !matches!(r, Request::FollowLogs { .. }))
        .collect()
}

#[test]
fn the_first_snapshot_selects_the_first_row_and_follows_its_logs() {
    let mut app = App::new("t", 100, 30);
    let requests = app.update(Input::Snapshot {
        services: fixture::services(),
        at_ms: NOW_MS,
    });
    assert_eq!(app.connection, Connection::Connected);
    assert_eq!(app.selected.as_deref(), Some("db"));
    assert_eq!(
        requests,
        [Request::FollowLogs {
            target: Some("db".into()),
            lines: 500,
            generation: 1
        }]
    );
    assert_eq!(app.counts.total, 8);
    assert_eq!(app.counts.by_state, [3, 0, 0, 1, 1, 1, 1, 1]);
}

#[test]
fn restart_start_and_reload_act_on_the_selected_instance() {
    let mut app = app(100, 30);
    assert_eq!(chr(&mut app, 'r'), [Request::Restart("db".into())]);
    let moved = chr(&mut app, 'j');
    assert_eq!(
        moved,
        [Request::FollowLogs {
            target: Some("web:0".into()),
            lines: 500,
            generation: 2
        }]
    );
    assert_eq!(chr(&mut app, 'R'), [Request::Reload("web:0".into())]);
    key(&mut app, KeyCode::Down);
    assert_eq!(
        actions(chr(&mut app, 's')),
        [Request::Start("web:1".into())]
    );
    assert_eq!(
        app.message.as_ref().map(|m| m.text.as_str()),
        Some("starting web:1…")
    );
}

#[test]
fn stop_asks_first_and_only_y_sends_it() {
    let mut app = app(100, 30);
    assert!(chr(&mut app, 'S').is_empty());
    assert_eq!(app.mode, Mode::Confirm(Request::Stop("db".into())));
    assert!(chr(&mut app, 'n').is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.message.as_ref().unwrap().text, "db not stopped");

    chr(&mut app, 'S');
    assert_eq!(chr(&mut app, 'y'), [Request::Stop("db".into())]);
    chr(&mut app, 'S');
    assert_eq!(key(&mut app, KeyCode::Enter), [Request::Stop("db".into())]);
}

#[test]
fn scale_asks_for_a_number_of_instances_of_the_service() {
    let mut app = app(100, 30);
    chr(&mut app, 'j');
    chr(&mut app, 'j');
    assert!(chr(&mut app, 'c').is_empty());
    assert_eq!(
        app.mode,
        Mode::Scale {
            service: "web".into(),
            current: 3,
            input: String::new()
        }
    );
    // Only digits go in.
    assert!(typed(&mut app, "x5").is_empty());
    key(&mut app, KeyCode::Backspace);
    typed(&mut app, "4");
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        [Request::Scale {
            service: "web".into(),
            instances: 4
        }]
    );

    chr(&mut app, 'c');
    typed(&mut app, "0");
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert!(app.message.as_ref().unwrap().error);

    chr(&mut app, 'c');
    typed(&mut app, "2");
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn nothing_is_sent_while_disconnected() {
    let mut app = app(100, 30);
    disconnect(&mut app);
    for c in ['r', 's', 'R', 'S', 'c'] {
        assert!(actions(chr(&mut app, c)).is_empty(), "{c}");
        assert_eq!(app.mode, Mode::Normal);
    }
    assert_eq!(
        app.message.as_ref().unwrap().text,
        "not connected to tend: nothing sent"
    );
    // It comes back: so do the keys.
    app.update(Input::Snapshot {
        services: fixture::services(),
        at_ms: NOW_MS,
    });
    assert_eq!(chr(&mut app, 'r'), [Request::Restart("db".into())]);
}

#[test]
fn the_filter_narrows_the_table_as_it_is_typed_and_esc_clears_it() {
    let mut app = app(100, 30);
    chr(&mut app, '/');
    assert_eq!(app.mode, Mode::Filter);
    let requests = typed(&mut app, "WEB");
    assert_eq!(app.shown.len(), 3);
    assert_eq!(app.selected.as_deref(), Some("web:0"));
    assert!(matches!(
        requests.last(),
        Some(Request::FollowLogs { target: Some(t), .. }) if t == "web:0"
    ));
    // Keys typed into the filter are text, not commands.
    typed(&mut app, ":1");
    assert_eq!(app.shown.len(), 1);
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Backspace);
    assert_eq!(app.selected.as_deref(), Some("web:1"));
    key(&mut app, KeyCode::Down);
    assert_eq!(app.selected.as_deref(), Some("web:2"));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.filter, "WEB");
    // Esc clears the filter; the selection stays where it was.
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.filter, "");
    assert_eq!(app.shown.len(), 8);
    assert_eq!(app.selected.as_deref(), Some("web:2"));
}

#[test]
fn the_selection_follows_its_instance_across_snapshots() {
    let mut app = app(100, 30);
    chr(&mut app, 'G');
    assert_eq!(app.selected.as_deref(), Some("cron"));
    let mut services = fixture::services();
    services.rotate_left(2);
    app.update(Input::Snapshot {
        services: services.clone(),
        at_ms: NOW_MS,
    });
    assert_eq!(app.selected.as_deref(), Some("cron"));
    assert_eq!(app.selection().unwrap().name, "cron");
    // Gone: the row at the same place is selected, and its logs followed.
    services.retain(|s| s.name != "cron");
    let requests = app.update(Input::Snapshot {
        services,
        at_ms: NOW_MS,
    });
    assert_eq!(app.selected.as_deref(), Some("db"));
    assert!(matches!(
        &requests[..],
        [Request::FollowLogs { target: Some(t), .. }] if t == "db"
    ));
}

#[test]
fn quit_with_q_or_ctrl_c_but_a_key_in_help_only_closes_the_help() {
    let mut app = app(100, 30);
    assert_eq!(chr(&mut app, 'q'), [Request::Quit]);
    for c in ['q', 'r', 'S'] {
        chr(&mut app, '?');
        assert_eq!(app.mode, Mode::Help);
        assert!(chr(&mut app, c).is_empty());
        assert_eq!(app.mode, Mode::Normal);
    }
    chr(&mut app, '?');
    assert_eq!(
        app.update(Input::Key(KeyEvent::new(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL
        ))),
        [Request::Quit]
    );
}

#[test]
fn hundreds_of_rows_scroll_to_keep_the_cursor_in_view() {
    let mut app = app_with(many(500), 100, 40);
    let rows = app.table_rows();
    assert!(rows > 10, "{rows}");
    chr(&mut app, 'G');
    assert_eq!(app.cursor, 499);
    assert_eq!(app.offset, 500 - rows);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.cursor, 499 - rows);
    assert_eq!(app.offset, 499 - rows);
    chr(&mut app, 'g');
    assert_eq!((app.cursor, app.offset), (0, 0));
    // A smaller terminal: the cursor stays in view.
    chr(&mut app, 'G');
    app.update(Input::Resize {
        width: 40,
        height: 10,
    });
    assert_eq!(app.offset + app.table_rows(), 500);
}

#[test]
fn the_log_ring_keeps_the_newest_lines() {
    let mut app = app(100, 30);
    let text: Vec<String> = (0..LOG_CAP + 10).map(|n| format!("line {n}")).collect();
    let lines: Vec<(&str, &str)> = text.iter().map(|t| ("db", t.as_str())).collect();
    feed_logs(&mut app, &lines);
    assert_eq!(app.logs.lines.len(), LOG_CAP);
    assert_eq!(app.logs.dropped, 10);
    assert_eq!(app.logs.lines[0].text, "line 10");
}

#[test]
fn lines_of_a_replaced_stream_are_dropped() {
    let mut app = app(100, 30);
    let old = app.logs.generation;
    chr(&mut app, 'j');
    assert_eq!(app.logs.generation, old + 1);
    app.update(Input::Logs {
        generation: old,
        lines: vec![LogLine::new("db", false, "late")],
    });
    assert!(app.logs.lines.is_empty());
    app.update(Input::LogsEnded {
        generation: old,
        error: "gone".into(),
    });
    assert_eq!(app.logs.status, LogStatus::Connecting);
    // A reconnection of the current stream starts over: its tail comes again.
    feed_logs(&mut app, &[("web:0", "one")]);
    app.update(Input::LogsStarted {
        generation: old + 1,
    });
    assert!(app.logs.lines.is_empty());
    assert_eq!(app.logs.status, LogStatus::Live);
}

#[test]
fn all_merges_every_instance_and_follows_new_ones() {
    let mut app = app(100, 30);
    let requests = chr(&mut app, 'a');
    assert_eq!(
        requests,
        [Request::FollowLogs {
            target: None,
            // LOG_CAP / 8, at most 500 an instance.
            lines: 500,
            generation: 2
        }]
    );
    // Moving the selection does not change what is followed.
    assert!(chr(&mut app, 'j').is_empty());
    // An unchanged snapshot neither.
    let same = app.update(Input::Snapshot {
        services: fixture::services(),
        at_ms: NOW_MS,
    });
    assert!(same.is_empty());
    // A new instance does: the stream is opened for the new set.
    let mut services = fixture::services();
    services[1]
        .instances
        .push(fixture::instance("web:3", "starting"));
    let requests = app.update(Input::Snapshot {
        services,
        at_ms: NOW_MS,
    });
    assert!(matches!(
        &requests[..],
        [Request::FollowLogs {
            target: None,
            generation: 3,
            ..
        }]
    ));
    // Back to the selected instance.
    assert!(matches!(
        &chr(&mut app, 'a')[..],
        [Request::FollowLogs { target: Some(t), .. }] if t == "web:0"
    ));
}

#[test]
fn scrolling_up_pauses_and_new_lines_do_not_move_the_view() {
    let mut app = app(100, 30);
    let text: Vec<String> = (0..100).map(|n| format!("line {n}")).collect();
    let lines: Vec<(&str, &str)> = text.iter().map(|t| ("db", t.as_str())).collect();
    feed_logs(&mut app, &lines);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Logs);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Up);
    assert!(!app.logs.follow);
    assert_eq!(app.logs.back, 2);
    feed_logs(&mut app, &[("db", "new 1"), ("db", "new 2")]);
    assert_eq!(app.logs.back, 4);
    // `f` follows again; so does scrolling down to the bottom.
    chr(&mut app, 'f');
    assert!(app.logs.follow);
    assert_eq!(app.logs.back, 0);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Down);
    assert!(app.logs.follow);
}

#[test]
fn search_finds_older_then_newer_matches() {
    let mut app = app(100, 30);
    let mut text: Vec<String> = (0..60).map(|n| format!("GET /{n} 200")).collect();
    text[10] = "GET /10 500 error".into();
    text[40] = "db: ERROR timeout".into();
    let lines: Vec<(&str, &str)> = text.iter().map(|t| ("db", t.as_str())).collect();
    feed_logs(&mut app, &lines);
    key(&mut app, KeyCode::Tab);
    chr(&mut app, '/');
    typed(&mut app, "error");
    assert!(app.logs.search.is_empty(), "runs on Enter");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.logs.search, "error");
    assert_eq!(app.logs.found, Some(40));
    assert!(!app.logs.follow);
    // The match is in view.
    let rows = app.log_rows();
    let end = 60 - app.logs.back;
    assert!((end - rows..end).contains(&40), "{end} {rows}");
    chr(&mut app, 'n');
    assert_eq!(app.logs.found, Some(10));
    chr(&mut app, 'n');
    assert_eq!(app.logs.found, Some(10));
    assert!(app.message.as_ref().unwrap().error);
    chr(&mut app, 'N');
    assert_eq!(app.logs.found, Some(40));
    // Esc in the log pane: first the message, then the search.
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Esc);
    assert!(app.logs.search.is_empty());
}

#[test]
fn answers_become_the_message() {
    let mut app = app(100, 30);
    app.update(Input::Done {
        request: Request::Restart("web:1".into()),
        outcome: Outcome::Acted(ActionResponse {
            results: vec![ActionResult {
                instance: "web:1".into(),
                ok: true,
                error: None,
            }],
        }),
    });
    assert_eq!(
        app.message,
        Some(Message {
            text: "web:1: restarted".into(),
            error: false
        })
    );
    app.update(Input::Done {
        request: Request::Start("worker".into()),
        outcome: Outcome::Acted(ActionResponse {
            results: vec![ActionResult {
                instance: "worker".into(),
                ok: false,
                error: Some("exited with code 2 before min_uptime".into()),
            }],
        }),
    });
    assert_eq!(
        app.message,
        Some(Message {
            text: "worker: exited with code 2 before min_uptime".into(),
            error: true
        })
    );
    app.update(Input::Done {
        request: Request::Scale {
            service: "web".into(),
            instances: 4,
        },
        outcome: Outcome::Scaled(ScaleResponse {
            service: "web".into(),
            from: 3,
            to: 4,
            manifest: 2,
            stopped: vec![],
            started: vec![],
            running: true,
            ok: true,
        }),
    });
    assert_eq!(app.message.as_ref().unwrap().text, "web: 3 → 4 instances");
    app.update(Input::Done {
        request: Request::Scale {
            service: "api".into(),
            instances: 4,
        },
        outcome: Outcome::Failed("api is autoscaled".into()),
    });
    assert_eq!(
        app.message.as_ref().unwrap().text,
        "scale api: api is autoscaled"
    );
}

#[test]
fn detail_and_zoom_toggle_and_esc_backs_out() {
    let mut app = app(100, 30);
    key(&mut app, KeyCode::Enter);
    assert!(app.detail);
    chr(&mut app, 'j');
    assert_eq!(app.selected.as_deref(), Some("web:0"));
    chr(&mut app, 'z');
    assert!(app.zoom);
    key(&mut app, KeyCode::Esc);
    assert!(!app.detail);
    key(&mut app, KeyCode::Esc);
    assert!(!app.zoom);
}

#[test]
fn terminal_escapes_and_tabs_are_not_drawn() {
    let line = LogLine::new(
        "web",
        true,
        "\x1b[1;31mERR\x1b[0m\tdone\x07 \x1b]0;title\x07ok \x1b]8;;x\x1b\\link\x1b(B",
    );
    assert_eq!(line.text, "ERR     done ok link");
    assert!(line.stderr);
}

#[test]
fn case_is_ignored_in_filters_and_searches() {
    assert!(contains_ignore_case("Web:1", "wEB"));
    assert_eq!(find_ignore_case("a ÉRROR Error", "error"), Some((9, 14)));
    assert!(!contains_ignore_case("db", "dbx"));
}
