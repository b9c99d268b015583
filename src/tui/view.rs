//! Drawing `tend top`: [`draw`] paints one frame from the [`App`] and reads nothing else.
//! The table and the log pane write only their visible rows straight into the frame's
//! buffer, so a frame costs the same with five instances or five hundred.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

use crate::cli::{human_bytes, human_duration};
use crate::protocol::InstanceInfo;

use super::app::{App, Connection, Focus, LogStatus, Mode, STATES, find_ignore_case};

/// One frame.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let areas = app.areas(area);
    if areas.too_small {
        if !area.is_empty() {
            let text = if area.width >= 28 {
                "tend top: terminal too small"
            } else {
                "too small"
            };
            put(
                frame.buffer_mut(),
                area.x,
                area.y,
                text,
                area.width,
                Style::new().fg(Color::Yellow),
            );
        }
        return;
    }
    header(frame.buffer_mut(), areas.header, app);
    if let Some(main) = areas.main {
        if app.detail {
            detail(frame.buffer_mut(), main, app);
        } else {
            table(frame.buffer_mut(), main, app);
        }
    }
    if let Some(logs) = areas.logs {
        log_pane(frame.buffer_mut(), logs, app);
    }
    bar(frame, areas.bar, app);
    if app.mode == Mode::Help {
        help(frame.buffer_mut(), area);
    }
}

/// Write `text` from (x, y), at most `width` cells; returns the x after it.
fn put(buf: &mut Buffer, x: u16, y: u16, text: &str, width: u16, style: Style) -> u16 {
    if width == 0 {
        return x;
    }
    buf.set_stringn(x, y, text, width as usize, style).0
}

/// The colour of a state: green runs, yellow moves, magenta waits to retry, red failed.
pub fn state_style(instance: &InstanceInfo) -> Style {
    let style = Style::new();
    match instance.state.as_str() {
        "running" => style.fg(Color::Green),
        "starting" | "stopping" => style.fg(Color::Yellow),
        "waiting" => style.fg(Color::Cyan),
        "backoff" => style.fg(Color::Magenta),
        "fatal" => style.fg(Color::Red).add_modifier(Modifier::BOLD),
        // A task that completed is done, not failed.
        "exited" if instance.exit_code == Some(0) => style.fg(Color::Blue),
        "exited" => style.fg(Color::Red),
        _ => style.fg(Color::DarkGray),
    }
}

/// The HEALTH column: readiness and the liveness verdict in one word.
fn health(instance: &InstanceInfo) -> (&'static str, Style) {
    if instance.state != "running" {
        ("-", Style::new().fg(Color::DarkGray))
    } else if instance.health == "unhealthy" {
        (
            "unhealthy",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )
    } else if instance.ready {
        ("ready", Style::new().fg(Color::Green))
    } else {
        ("not ready", Style::new().fg(Color::Yellow))
    }
}

/// What `tend status` says in INFO: why it is not running, or what to know while it runs.
fn info(instance: &InstanceInfo, text: &mut String) {
    if instance.state != "running" {
        text.push_str(&instance.reason);
        return;
    }
    let mut notes = Vec::new();
    notes.extend(instance.warning.as_deref());
    if instance.reason.starts_with("reloading") || instance.reason.starts_with("reload failed") {
        notes.push(&instance.reason);
    }
    notes.extend(instance.notify_phase.as_deref());
    notes.extend(instance.status_text.as_deref());
    for (n, note) in notes.iter().enumerate() {
        if n > 0 {
            text.push_str("; ");
        }
        text.push_str(note);
    }
}

fn header(buf: &mut Buffer, area: Rect, app: &App) {
    if let Connection::Disconnected {
        error,
        attempt,
        retry_in,
    } = &app.connection
    {
        let style = Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD);
        buf.set_style(area, style);
        let text = format!(
            " DISCONNECTED, retrying in {} (attempt {attempt}): {error}",
            short_duration(*retry_in)
        );
        put(buf, area.x, area.y, &text, area.width, style);
        return;
    }
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let x = put(buf, area.x, area.y, " tend top", area.width, bold);
    let (status, status_style) = match app.connection {
        Connection::Connected => ("connected ", Style::new().fg(Color::Green)),
        _ => ("connecting… ", Style::new().fg(Color::Yellow)),
    };
    let right = area.right().saturating_sub(status.chars().count() as u16);
    // The counts come first: on a narrow terminal the manifest's path gives way.
    let mut text = String::new();
    if app.connection == Connection::Connected {
        let c = &app.counts;
        let _ = write!(text, " · {} instances", c.total);
        let mut first = true;
        for (n, state) in c.by_state.iter().zip(STATES) {
            if *n > 0 {
                let _ = write!(text, "{} {n} {state}", if first { ":" } else { "," });
                first = false;
            }
        }
    }
    if !app.title.is_empty() {
        let _ = write!(text, " · {}", app.title);
    }
    put(
        buf,
        x,
        area.y,
        &text,
        right.saturating_sub(x).saturating_sub(1),
        Style::new(),
    );
    if right > area.x + 10 {
        put(
            buf,
            right,
            area.y,
            status,
            area.right() - right,
            status_style,
        );
    }
}

/// A pane's top line: a rule with its title, highlighted when the pane has the focus.
fn pane_title(buf: &mut Buffer, area: Rect, focused: bool, title: &str, right: &str) {
    let style = if focused {
        Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    for x in area.left()..area.right() {
        buf[(x, area.y)].set_symbol("─").set_style(style);
    }
    let x = put(
        buf,
        area.x + 1,
        area.y,
        " ",
        area.width.saturating_sub(1),
        style,
    );
    let x = put(buf, x, area.y, title, area.right().saturating_sub(x), style);
    put(buf, x, area.y, " ", area.right().saturating_sub(x), style);
    let width = right.chars().count() as u16 + 2;
    if !right.is_empty() && x + width + 2 < area.right() {
        let at = area.right() - width - 1;
        put(buf, at, area.y, &format!(" {right} "), width, style);
    }
}

/// The table's columns, in order; `width` 0 takes what is left.
const COLUMNS: [(&str, u16, bool); 9] = [
    ("NAME", 0, false),
    ("STATE", 8, false),
    ("HEALTH", 9, false),
    ("PID", 7, true),
    ("UPTIME", 7, true),
    ("RESTARTS", 8, true),
    ("CPU", 5, true),
    ("MEM", 6, true),
    ("INFO", 0, false),
];
const NAME: usize = 0;
const INFO: usize = 8;
/// The order in which columns give way on a narrow terminal; NAME and STATE stay.
const GIVE_WAY: [usize; 7] = [INFO, 7, 6, 4, 5, 3, 2];
/// INFO is shown only with at least this much room.
const INFO_MIN: u16 = 10;

/// Which columns fit, and the widths of NAME and INFO.
fn columns(width: u16, name_width: u16) -> ([bool; 9], u16, u16) {
    let mut on = [true; 9];
    let need = |on: &[bool; 9]| -> u16 {
        let mut total = name_width;
        for (n, (_, w, _)) in COLUMNS.iter().enumerate().skip(1) {
            if on[n] {
                total += 1 + if n == INFO { INFO_MIN } else { *w };
            }
        }
        total
    };
    for drop in GIVE_WAY {
        if need(&on) <= width {
            break;
        }
        on[drop] = false;
    }
    let total = need(&on);
    let name = if total > width {
        name_width.saturating_sub(total - width).max(1)
    } else {
        name_width
    };
    let info = if on[INFO] {
        width - (total - INFO_MIN)
    } else {
        0
    };
    (on, name, info)
}

fn table(buf: &mut Buffer, area: Rect, app: &App) {
    let total = app.instances.len();
    let title = if app.filter.is_empty() {
        format!("instances ({total})")
    } else {
        format!(
            "instances: {} of {total} match `{}`",
            app.shown.len(),
            app.filter
        )
    };
    let rows = area.height.saturating_sub(2) as usize;
    let end = (app.offset + rows).min(app.shown.len());
    let position = if app.shown.len() > rows {
        format!("{}-{} of {}", app.offset + 1, end, app.shown.len())
    } else {
        String::new()
    };
    let focused = app.focus == Focus::Table;
    pane_title(buf, area, focused, &title, &position);
    if area.height < 2 {
        return;
    }
    let name_width = app.name_width.min(40) as u16;
    let (on, name_w, info_w) = columns(area.width.saturating_sub(1), name_width);
    let widths = |n: usize| match n {
        NAME => name_w,
        INFO => info_w,
        _ => COLUMNS[n].1,
    };
    // Header.
    let y = area.y + 1;
    let head = Style::new().add_modifier(Modifier::BOLD);
    let mut x = area.x + 1;
    for (n, (title, _, right)) in COLUMNS.iter().enumerate() {
        if !on[n] {
            continue;
        }
        let w = widths(n);
        cell(buf, x, y, title, w, *right, head);
        x += w + 1;
    }
    if app.shown.is_empty() {
        let text = if total == 0 {
            match app.connection {
                Connection::Connected => "no instances",
                _ => "waiting for tend…",
            }
        } else {
            "no instance matches the filter (Esc clears it)"
        };
        if area.height > 2 {
            put(
                buf,
                area.x + 1,
                y + 1,
                text,
                area.width.saturating_sub(1),
                Style::new().fg(Color::DarkGray),
            );
        }
        return;
    }
    let stale = app.connection != Connection::Connected;
    let mut text = String::new();
    for (row, &index) in app.shown[app.offset..end].iter().enumerate() {
        let y = area.y + 2 + row as u16;
        let i = &app.instances[index];
        let selected = app.offset + row == app.cursor;
        let mut x = area.x + 1;
        for (n, (_, _, right)) in COLUMNS.iter().enumerate() {
            if !on[n] {
                continue;
            }
            text.clear();
            let mut style = Style::new();
            match n {
                0 => text.push_str(&i.name),
                1 => {
                    text.push_str(&i.state);
                    style = state_style(i);
                }
                2 => {
                    let (word, s) = health(i);
                    text.push_str(word);
                    style = s;
                }
                3 => match i.pid {
                    Some(pid) => {
                        let _ = write!(text, "{pid}");
                    }
                    None => text.push('-'),
                },
                4 => match i.uptime_ms {
                    Some(ms) => text.push_str(&human_duration(ms)),
                    None => text.push('-'),
                },
                5 => {
                    let _ = write!(text, "{}", i.restarts);
                }
                6 => match i.cpu_percent {
                    Some(cpu) => {
                        let _ = write!(text, "{cpu:.0}%");
                    }
                    None => text.push('-'),
                },
                7 => match i.rss_bytes {
                    Some(bytes) => text.push_str(&human_bytes(bytes)),
                    None => text.push('-'),
                },
                _ => info(i, &mut text),
            }
            if stale {
                style = Style::new().fg(Color::DarkGray);
            }
            let w = widths(n);
            cell(buf, x, y, &text, w, *right, style);
            x += w + 1;
        }
        if selected {
            let highlight = if focused {
                Modifier::REVERSED
            } else {
                Modifier::UNDERLINED
            };
            buf.set_style(
                Rect::new(area.x, y, area.width, 1),
                Style::new().add_modifier(highlight),
            );
        }
    }
}

/// A cell `width` wide, its text cut to fit, left- or right-aligned.
fn cell(buf: &mut Buffer, x: u16, y: u16, text: &str, width: u16, right: bool, style: Style) {
    let len = text.chars().count() as u16;
    let x = if right && len < width {
        x + width - len
    } else {
        x
    };
    put(buf, x, y, text, width, style);
}

/// A stable colour per instance name, as `tend logs` prints its prefixes.
fn instance_colour(name: &str) -> Color {
    const PALETTE: [Color; 6] = [
        Color::Cyan,
        Color::Yellow,
        Color::Green,
        Color::Magenta,
        Color::Blue,
        Color::Red,
    ];
    let hash = name
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    PALETTE[hash % PALETTE.len()]
}

fn log_pane(buf: &mut Buffer, area: Rect, app: &App) {
    let logs = &app.logs;
    let mut title = String::from("logs · ");
    match &logs.target {
        Some(name) => title.push_str(name),
        None => title.push_str("all instances"),
    }
    let rows = area.height.saturating_sub(1) as usize;
    let len = logs.lines.len();
    let back = logs.back.min(len.saturating_sub(rows));
    match &logs.status {
        LogStatus::Connecting | LogStatus::Idle => title.push_str(" · connecting…"),
        // While the daemon is away the banner says why; otherwise (an instance scaled
        // away) the stream's own error is the news.
        LogStatus::Ended(_) if app.connection != Connection::Connected => {
            title.push_str(" · reconnecting…")
        }
        LogStatus::Ended(error) => {
            let _ = write!(title, " · reconnecting: {error}");
        }
        LogStatus::Live if logs.follow => title.push_str(" · following"),
        LogStatus::Live if back > 0 => {
            let _ = write!(title, " · paused, {back} newer lines below");
        }
        LogStatus::Live => title.push_str(" · paused"),
    }
    if !logs.search.is_empty() {
        let _ = write!(title, " · search `{}`", logs.search);
    }
    pane_title(buf, area, app.focus == Focus::Logs, &title, "");
    if rows == 0 {
        return;
    }
    let end = len - back;
    let start = end.saturating_sub(rows);
    let prefix_width = if logs.target.is_none() {
        app.name_width.min(24)
    } else {
        0
    };
    let highlight = Style::new().fg(Color::Black).bg(Color::Yellow);
    let found = logs
        .found
        .and_then(|seq| seq.checked_sub(logs.dropped))
        .map(|at| at as usize);
    for (row, at) in (start..end).enumerate() {
        let line = &logs.lines[at];
        let y = area.y + 1 + row as u16;
        // The first column is the search's marker.
        let mut x = area.x + 1;
        if prefix_width > 0 {
            let style = Style::new().fg(instance_colour(&line.instance));
            put(buf, x, y, &line.instance, prefix_width as u16, style);
            x += prefix_width as u16;
            x = put(buf, x, y, " | ", area.right().saturating_sub(x), style);
        }
        let room = area.right().saturating_sub(x);
        let style = if found == Some(at) {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let text = line.text.as_str();
        match find_ignore_case(text, &logs.search).filter(|_| !logs.search.is_empty()) {
            Some((from, to)) => {
                let x = put(buf, x, y, &text[..from], room, style);
                let hit = if found == Some(at) {
                    highlight.add_modifier(Modifier::BOLD)
                } else {
                    highlight
                };
                let x = put(
                    buf,
                    x,
                    y,
                    &text[from..to],
                    area.right().saturating_sub(x),
                    hit,
                );
                put(
                    buf,
                    x,
                    y,
                    &text[to..],
                    area.right().saturating_sub(x),
                    style,
                );
            }
            None => {
                put(buf, x, y, text, room, style);
            }
        }
        if found == Some(at) {
            put(buf, area.x, y, ">", 1, highlight);
        }
    }
}

fn detail(buf: &mut Buffer, area: Rect, app: &App) {
    let Some(i) = app.selection() else {
        pane_title(buf, area, true, "detail", "");
        return;
    };
    pane_title(
        buf,
        area,
        app.focus == Focus::Table,
        &format!("{} · detail (Enter: back to the table)", i.name),
        "",
    );
    let label = Style::new().fg(Color::DarkGray);
    let row = |name: &'static str, spans: Vec<Span<'static>>| {
        let mut all = vec![Span::styled(format!("{name:<9} "), label)];
        all.extend(spans);
        Line::from(all)
    };
    let mut lines: Vec<Line> = Vec::new();
    let (health_word, health_style) = health(i);
    let mut state = vec![Span::styled(i.state.clone(), state_style(i))];
    if health_word != "-" {
        state.push(Span::raw(" · "));
        state.push(Span::styled(health_word, health_style));
    }
    state.push(Span::raw(format!("   restarts {}", i.restarts)));
    lines.push(row("state", state));
    if !i.reason.is_empty() {
        let label = if i.state == "running" { "info" } else { "why" };
        lines.push(row(label, vec![Span::raw(i.reason.clone())]));
    }
    let mut process = vec![Span::raw(match i.pid {
        Some(pid) => format!("pid {pid}"),
        None => "no process".into(),
    })];
    if let Some(pid) = i.replacement_pid {
        process.push(Span::raw(format!(" (replacement {pid})")));
    }
    if let Some(ms) = i.uptime_ms {
        process.push(Span::raw(format!("   up {}", human_duration(ms))));
    }
    lines.push(row("process", process));
    let last_exit = match (i.exit_code, &i.exit_signal) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(signal)) => format!("killed by {signal}"),
        _ => "-".into(),
    };
    lines.push(row("last exit", vec![Span::raw(last_exit)]));
    let mut usage = format!(
        "cpu {}   mem {}   cpu time {:.1}s",
        i.cpu_percent
            .map(|c| format!("{c:.0}%"))
            .unwrap_or_else(|| "-".into()),
        i.rss_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
        i.cpu_seconds
    );
    if let Some(gpu) = i.gpu_memory_bytes {
        let _ = write!(usage, "   gpu mem {}", human_bytes(gpu));
    }
    if let Some(gpu) = i.gpu_percent {
        let _ = write!(usage, "   gpu {gpu}%");
    }
    lines.push(row("usage", vec![Span::raw(usage)]));
    if let Some(text) = &i.status_text {
        lines.push(row("status", vec![Span::raw(text.clone())]));
    }
    if let Some(text) = &i.warning {
        lines.push(row(
            "warning",
            vec![Span::styled(text.clone(), Style::new().fg(Color::Yellow))],
        ));
    }
    if let Some(service) = app.service(&i.service) {
        let mut count = format!(
            "{}{}, {} instance{}",
            service.name,
            if service.kind == "task" {
                " (task)"
            } else {
                ""
            },
            service.count,
            if service.count == 1 { "" } else { "s" }
        );
        if let Some(scaled) = &service.scaled {
            let _ = write!(
                count,
                " (set by {}; the manifest says {})",
                scaled.by, scaled.manifest
            );
        }
        lines.push(row("service", vec![Span::raw(count)]));
        let mut deps: Vec<Span> = Vec::new();
        for (n, dep) in service.depends_on.iter().enumerate() {
            if n > 0 {
                deps.push(Span::raw(", "));
            }
            deps.push(Span::raw(format!("{dep} ")));
            match app.service(dep) {
                Some(d) => {
                    let style = match d.state.as_str() {
                        "running" => Style::new().fg(Color::Green),
                        "fatal" | "backoff" => Style::new().fg(Color::Red),
                        _ => Style::new().fg(Color::Yellow),
                    };
                    let ready = if d.ready { "ready" } else { "not ready" };
                    deps.push(Span::styled(format!("({}, {ready})", d.state), style));
                }
                None => deps.push(Span::raw("(unknown)")),
            }
        }
        if deps.is_empty() {
            deps.push(Span::raw("none"));
        }
        lines.push(row("depends", deps));
    }
    if i.probes.is_empty() {
        lines.push(row(
            "probes",
            vec![Span::raw("none: ready once up for min_uptime")],
        ));
    }
    for (n, p) in i.probes.iter().enumerate() {
        let (verdict, style) = match p.passing {
            Some(true) => ("passing", Style::new().fg(Color::Green)),
            Some(false) => ("failing", Style::new().fg(Color::Red)),
            None => ("pending", Style::new().fg(Color::Yellow)),
        };
        let last = match (p.last_ok, p.at_ms) {
            (Some(ok), Some(at)) => format!(
                "{} {}{} in {:.1}ms, {} ago",
                if ok { "ok" } else { "failed" },
                p.detail,
                if p.fallback { " (fallback)" } else { "" },
                p.took_ms.unwrap_or(0.0),
                human_duration(app.now_ms.saturating_sub(at))
            ),
            _ if !p.detail.is_empty() => p.detail.clone(),
            _ => "no result yet".into(),
        };
        lines.push(row(
            if n == 0 { "probes" } else { "" },
            vec![
                Span::raw(format!("{:<9} {:<6} ", p.role, p.kind)),
                Span::styled(format!("{verdict:<7}"), style),
                Span::raw(format!(" {last}")),
            ],
        ));
    }
    let body = Rect::new(
        area.x + 1,
        area.y + 1,
        area.width.saturating_sub(1),
        area.height.saturating_sub(1),
    );
    Paragraph::new(lines).render(body, buf);
}

/// The keys, in the order of the help page.
pub const KEYS: [(&str, &str); 24] = [
    ("↑ ↓  j k", "select an instance / scroll the logs"),
    ("PgUp PgDn", "a page up or down (also Ctrl-u, Ctrl-d)"),
    ("g G  Home End", "first / last"),
    ("Tab", "switch between the table and the logs"),
    ("Enter", "detail of the instance: probes, last exit, why"),
    ("Esc", "back: message, detail, zoom, search, filter"),
    ("z", "zoom: the focused pane alone"),
    ("/", "table: filter by name; logs: search"),
    ("n N", "next older / newer search match"),
    ("f", "follow the newest log line, or pause"),
    ("a", "logs of the selected instance, or of all"),
    ("s", "start the selected instance"),
    ("S", "stop it (asks y/n)"),
    ("r", "restart it"),
    ("R", "reload it (no downtime with [sockets])"),
    ("c", "scale its service: asks for a number"),
    ("?", "this help"),
    ("q  Ctrl-c", "quit"),
    ("", ""),
    ("", "Keys act on the selected instance (web:1); for"),
    ("", "every instance of a service: tend restart web."),
    ("", "Colours: green running, yellow starting/stopping,"),
    ("", "cyan waiting, magenta backoff, red failed,"),
    ("", "blue completed, grey stopped."),
];

fn help(buf: &mut Buffer, area: Rect) {
    let width = area.width.saturating_sub(4).min(66);
    let height = area.height.saturating_sub(2).min(KEYS.len() as u16 + 2);
    if width < 10 || height < 3 {
        return;
    }
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    Clear.render(popup, buf);
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<14}"), key),
                Span::raw(*what),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(
            Block::bordered()
                .title(" tend top: keys (any key closes) ")
                .border_style(Style::new().fg(Color::Cyan)),
        )
        .render(popup, buf);
}

/// The bottom line: the prompt being typed, else the last message, else the keys.
fn bar(frame: &mut Frame, area: Rect, app: &App) {
    let buf = frame.buffer_mut();
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let prompt = |buf: &mut Buffer, label: &str, input: &str, hint: &str| -> u16 {
        let x = put(buf, area.x, area.y, label, area.width, key);
        let x = put(
            buf,
            x,
            area.y,
            input,
            area.right().saturating_sub(x),
            Style::new(),
        );
        let hint_width = hint.chars().count() as u16;
        if x + hint_width + 3 < area.right() {
            put(
                buf,
                area.right() - hint_width,
                area.y,
                hint,
                hint_width,
                Style::new().fg(Color::DarkGray),
            );
        }
        x
    };
    let cursor = match &app.mode {
        Mode::Filter => Some(prompt(
            buf,
            "filter: ",
            &app.filter,
            "Enter keep · Esc clear",
        )),
        Mode::Search { input } => Some(prompt(
            buf,
            "search logs: ",
            input,
            "Enter find · Esc cancel",
        )),
        Mode::Scale {
            service,
            current,
            input,
        } => Some(prompt(
            buf,
            &format!("scale {service} (now {current}) to: "),
            input,
            "Enter · Esc cancel",
        )),
        Mode::Confirm(request) => {
            let style = Style::new().fg(Color::Black).bg(Color::Yellow);
            buf.set_style(area, style);
            let text = format!(
                " {} {}? y/n (any other key: no) ",
                request.verb(),
                request.target()
            );
            put(buf, area.x, area.y, &text, area.width, style);
            None
        }
        Mode::Normal | Mode::Help => {
            let help = " ? help ";
            let help_x = area.right().saturating_sub(help.len() as u16);
            let room = help_x.saturating_sub(area.x + 1);
            if let Some(message) = &app.message {
                let style = if message.error {
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
                } else {
                    Style::new().fg(Color::Green)
                };
                put(buf, area.x, area.y, &message.text, room, style);
            } else {
                let hints: &[(&str, &str)] = match app.focus {
                    Focus::Table => &[
                        ("↑↓", "select"),
                        ("enter", "detail"),
                        ("tab", "logs"),
                        ("s", "start"),
                        ("S", "stop"),
                        ("r", "restart"),
                        ("R", "reload"),
                        ("c", "scale"),
                        ("/", "filter"),
                        ("q", "quit"),
                    ],
                    Focus::Logs => &[
                        ("↑↓", "scroll"),
                        ("f", "follow"),
                        ("a", "all/one"),
                        ("/", "search"),
                        ("n/N", "older/newer"),
                        ("z", "zoom"),
                        ("tab", "table"),
                        ("q", "quit"),
                    ],
                };
                let mut x = area.x;
                for (k, what) in hints {
                    let width = (k.chars().count() + what.len() + 2) as u16;
                    if x + width > area.x + room {
                        break;
                    }
                    x = put(buf, x, area.y, k, width, key);
                    x = put(buf, x, area.y, " ", 1, Style::new());
                    x = put(buf, x, area.y, what, width, Style::new());
                    x = put(buf, x, area.y, " ", 1, Style::new());
                }
            }
            if area.width >= help.len() as u16 + 10 {
                put(buf, help_x, area.y, help, help.len() as u16, key);
            }
            None
        }
    };
    if let Some(x) = cursor {
        frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
    }
}

/// `500ms`, `2s`: the retry interval in the banner.
fn short_duration(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

#[cfg(test)]
mod tests;
