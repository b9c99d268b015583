//! Frames drawn on ratatui's `TestBackend`, compared whole, as text, with the files in
//! tests/snapshots/tui/ (`TEND_UPDATE_SNAPSHOTS=1 cargo test --lib tui` rewrites them), and
//! the styles of a few cells. Fixed data, no clock.

use std::path::Path;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};

use super::draw;
use crate::tui::app::{App, Input};
use crate::tui::fixture::{app, app_with, disconnect, feed_logs, many};

fn render(app: &App) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(app.width, app.height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    terminal.backend().buffer().clone()
}

/// The buffer's text, a line per row, trailing blanks cut.
fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn snapshot(name: &str, app: &App) -> Buffer {
    let buffer = render(app);
    let actual = text(&buffer);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/tui")
        .join(format!("{name}.txt"));
    if std::env::var_os("TEND_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no snapshot {name} (TEND_UPDATE_SNAPSHOTS=1 to write it)\n{actual}")
    });
    assert!(
        expected == actual,
        "frame {name} differs from tests/snapshots/tui/{name}.txt \
         (TEND_UPDATE_SNAPSHOTS=1 to accept)\n--- expected\n{expected}--- actual\n{actual}"
    );
    buffer
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn chars(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// The cell where `word` first starts on row `y`.
fn find(buffer: &Buffer, y: u16, word: &str) -> (u16, u16) {
    let row: String = (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol())
        .collect();
    let at = row
        .find(word)
        .unwrap_or_else(|| panic!("no `{word}` in row {y}: {row}"));
    (row[..at].chars().count() as u16, y)
}

/// The row whose text starts with `name` after the margin.
fn row_of(buffer: &Buffer, name: &str) -> u16 {
    (0..buffer.area.height)
        .find(|&y| {
            let row: String = (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect();
            row.starts_with(&format!(" {name} "))
        })
        .unwrap_or_else(|| panic!("no row {name}"))
}

#[test]
fn the_table_colours_each_state() {
    let mut app = app(100, 24);
    feed_logs(
        &mut app,
        &[
            ("db", "LOG:  database system is ready to accept connections"),
            ("db", "LOG:  checkpoint starting: time"),
        ],
    );
    let buffer = snapshot("table", &app);
    let state = |name: &str, state: &str| {
        let y = row_of(&buffer, name);
        let cell = &buffer[find(&buffer, y, state)];
        (cell.fg, cell.modifier)
    };
    // The selected row (db) is drawn reversed, in its colour.
    assert_eq!(state("db", "running").0, Color::Green);
    assert!(state("db", "running").1.contains(Modifier::REVERSED));
    assert_eq!(state("web:0", "running"), (Color::Green, Modifier::empty()));
    assert_eq!(
        state("web:2", "backoff"),
        (Color::Magenta, Modifier::empty())
    );
    assert_eq!(state("worker", "fatal"), (Color::Red, Modifier::BOLD));
    assert_eq!(state("queue", "waiting"), (Color::Cyan, Modifier::empty()));
    assert_eq!(state("migrate", "exited").0, Color::Blue);
    assert_eq!(state("cron", "stopped").0, Color::DarkGray);
    // Readiness and liveness in one word.
    let y = row_of(&buffer, "web:1");
    let unhealthy = &buffer[find(&buffer, y, "unhealthy")];
    assert_eq!(unhealthy.fg, Color::Red);
}

#[test]
fn the_detail_view_shows_probes_exit_reason_and_dependencies() {
    let mut app = app(100, 30);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    let buffer = snapshot("detail", &app);
    let y = (0..30).find(|&y| {
        text(&buffer)
            .lines()
            .nth(y as usize)
            .unwrap()
            .contains("http 503")
    });
    let y = y.expect("the readiness probe's line") as u16;
    assert_eq!(buffer[find(&buffer, y, "failing")].fg, Color::Red);
    let mut app = app_with(crate::tui::fixture::services(), 100, 30);
    for _ in 0..3 {
        key(&mut app, KeyCode::Down);
    }
    key(&mut app, KeyCode::Enter);
    snapshot("detail_backoff", &app);
}

#[test]
fn help_lists_the_keys() {
    let mut app = app(80, 30);
    key(&mut app, KeyCode::Char('?'));
    snapshot("help", &app);
}

#[test]
fn the_filter_prompt_and_the_narrowed_table() {
    let mut app = app(80, 20);
    key(&mut app, KeyCode::Char('/'));
    chars(&mut app, "web");
    let buffer = snapshot("filter", &app);
    assert!(text(&buffer).contains("filter: web"));
}

#[test]
fn a_small_terminal_keeps_name_state_health_and_pid() {
    let app = app(40, 10);
    snapshot("small", &app);
    // Smaller: only the focused pane, then only a word.
    let app = crate::tui::fixture::app(30, 6);
    snapshot("smaller", &app);
    let app = crate::tui::fixture::app(12, 3);
    snapshot("tiny", &app);
    // Nothing at all to draw on must not panic either.
    for (w, h) in [(0, 0), (1, 1), (20, 4), (19, 40), (200, 4), (21, 5)] {
        render(&crate::tui::fixture::app(w, h));
    }
}

#[test]
fn a_daemon_gone_shows_a_banner_and_the_last_known_rows_greyed() {
    let mut app = app(100, 16);
    disconnect(&mut app);
    let buffer = snapshot("disconnected", &app);
    let banner = &buffer[(1, 0)];
    assert_eq!((banner.fg, banner.bg), (Color::White, Color::Red));
    let y = row_of(&buffer, "worker");
    assert_eq!(buffer[find(&buffer, y, "fatal")].fg, Color::DarkGray);
}

#[test]
fn hundreds_of_instances_scrolled_to_the_bottom_show_the_last_rows() {
    let mut app = app_with(many(400), 90, 20);
    key(&mut app, KeyCode::Char('G'));
    let buffer = snapshot("hundreds", &app);
    let y = row_of(&buffer, "many:399");
    assert!(
        buffer[find(&buffer, y, "many:399")]
            .modifier
            .contains(Modifier::REVERSED)
    );
    // A page up moves the cursor a page and the view with it.
    key(&mut app, KeyCode::PageUp);
    let buffer = render(&app);
    let rows = app.table_rows() as u32;
    let top = 399 - rows;
    assert_eq!(row_of(&buffer, &format!("many:{top}")), 3);
}

#[test]
fn merged_logs_with_a_search_match() {
    let mut app = app(80, 16);
    key(&mut app, KeyCode::Char('a'));
    let generation = app.logs.generation;
    app.update(Input::LogsStarted { generation });
    feed_logs(
        &mut app,
        &[
            ("web:0", "GET /health 200"),
            ("db", "LOG:  connection received"),
            ("web:1", "GET /cart 503 upstream timeout"),
            ("worker", "Segmentation fault"),
            ("web:0", "GET / 200"),
        ],
    );
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Char('/'));
    chars(&mut app, "TIMEOUT");
    key(&mut app, KeyCode::Enter);
    let buffer = snapshot("logs_search", &app);
    let y = text(&buffer)
        .lines()
        .position(|l| l.contains("upstream"))
        .unwrap() as u16;
    let hit = &buffer[find(&buffer, y, "timeout")];
    assert_eq!((hit.fg, hit.bg), (Color::Black, Color::Yellow));
}

#[test]
fn prompts_for_stop_and_scale() {
    let mut app = app(80, 12);
    key(&mut app, KeyCode::Char('S'));
    let buffer = snapshot("confirm_stop", &app);
    assert_eq!(buffer[(1, 11)].bg, Color::Yellow);
    key(&mut app, KeyCode::Char('n'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('c'));
    chars(&mut app, "5");
    snapshot("scale", &app);
}
