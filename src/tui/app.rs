//! The state of `tend top` and every way it changes. Pure: an [`Input`] (a key, an API
//! snapshot, log lines, a resize, the daemon going away) goes in, the state changes, and what
//! must be asked of the daemon comes out as [`Request`] values, which the I/O loop carries
//! out. No clock is read here: the time of a snapshot comes with it.

use std::collections::VecDeque;
use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::Rect;

use crate::protocol::{ActionResponse, InstanceInfo, ScaleResponse, ServiceInfo};

/// The most log lines kept: the oldest go first.
pub const LOG_CAP: usize = 5000;

/// What the daemon is to be asked; the I/O loop turns each into API calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start(String),
    Stop(String),
    Restart(String),
    Reload(String),
    Scale {
        service: String,
        instances: u32,
    },
    /// Follow one instance's output (`None`: every instance, merged), the last `lines` of
    /// each first. Replaces the stream before it; its lines carry `generation`, so lines of
    /// a stream already replaced are recognised and dropped.
    FollowLogs {
        target: Option<String>,
        lines: usize,
        generation: u64,
    },
    Quit,
}

impl Request {
    /// The action's name in the API (`POST /api/v1/actions/{verb}`).
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Start(_) => "start",
            Request::Stop(_) => "stop",
            Request::Restart(_) => "restart",
            Request::Reload(_) => "reload",
            Request::Scale { .. } => "scale",
            Request::FollowLogs { .. } => "logs",
            Request::Quit => "quit",
        }
    }

    /// The instance or service it acts on.
    pub fn target(&self) -> &str {
        match self {
            Request::Start(t) | Request::Stop(t) | Request::Restart(t) | Request::Reload(t) => t,
            Request::Scale { service, .. } => service,
            _ => "",
        }
    }
}

/// Everything that can happen to the app.
#[derive(Debug, Clone)]
pub enum Input {
    Key(KeyEvent),
    Resize {
        width: u16,
        height: u16,
    },
    /// The services and their instances as the daemon reported them at `at_ms` (unix ms).
    Snapshot {
        services: Vec<ServiceInfo>,
        at_ms: u64,
    },
    /// A poll failed; the next try comes after `retry_in`.
    Disconnected {
        error: String,
        attempt: u32,
        retry_in: Duration,
    },
    /// The log stream of this generation (re)connected: its tail comes next.
    LogsStarted {
        generation: u64,
    },
    Logs {
        generation: u64,
        lines: Vec<LogLine>,
    },
    /// The log stream ended or could not start; the I/O loop tries again.
    LogsEnded {
        generation: u64,
        error: String,
    },
    /// The daemon's answer to an action.
    Done {
        request: Request,
        outcome: Outcome,
    },
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Acted(ActionResponse),
    Scaled(ScaleResponse),
    Failed(String),
}

/// One line of a service's output, ready to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub instance: String,
    pub stderr: bool,
    pub text: String,
}

impl LogLine {
    /// Colour and cursor escapes are dropped and tabs expanded: a program's terminal
    /// codes must not move the UI's cursor, and a cell holds one character.
    pub fn new(instance: &str, stderr: bool, raw: &str) -> LogLine {
        let mut text = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\x1b' => match chars.next() {
                    // CSI: parameters up to a final byte.
                    Some('[') => {
                        for c in chars.by_ref() {
                            if ('\x40'..='\x7e').contains(&c) {
                                break;
                            }
                        }
                    }
                    // OSC (titles, links): up to BEL or ESC \.
                    Some(']') => {
                        while let Some(c) = chars.next() {
                            if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                                break;
                            }
                        }
                    }
                    // A charset selection takes one more character; others are two long.
                    Some('(' | ')') => {
                        chars.next();
                    }
                    _ => {}
                },
                '\t' => {
                    let pad = 8 - text.chars().count() % 8;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
                c if c.is_control() => {}
                c => text.push(c),
            }
        }
        LogLine {
            instance: instance.to_string(),
            stderr,
            text,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting,
    Connected,
    Disconnected {
        error: String,
        attempt: u32,
        retry_in: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Table,
    Logs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    /// Typing the name filter; the table follows each key.
    Filter,
    /// Typing a log search; it runs on Enter.
    Search {
        input: String,
    },
    /// Typing a service's new number of instances.
    Scale {
        service: String,
        current: u32,
        input: String,
    },
    /// A request that waits for `y`.
    Confirm(Request),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// The state of the log stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogStatus {
    Idle,
    Connecting,
    Live,
    Ended(String),
}

/// The log pane: a ring of the newest lines of what it follows.
#[derive(Debug, Clone)]
pub struct Logs {
    pub lines: VecDeque<LogLine>,
    /// Lines dropped from the front since the stream started: `dropped + index` numbers a
    /// line for as long as it is kept, so a search match survives the ring moving.
    pub dropped: u64,
    /// Every instance merged, or only the selected one.
    pub all: bool,
    /// What the current stream follows (`None`: all).
    pub target: Option<String>,
    pub generation: u64,
    pub status: LogStatus,
    /// Keep the newest line in view.
    pub follow: bool,
    /// When not following: how many lines lie below the view.
    pub back: usize,
    pub search: String,
    /// The number (as `dropped + index`) of the line `n`/`N` last found.
    pub found: Option<u64>,
    /// Instances came or went since the merged stream was opened: it needs a new one.
    stale: bool,
}

/// Where each part of the screen goes, for a terminal of some size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub header: Rect,
    /// The instance table, or the detail view in its place.
    pub main: Option<Rect>,
    pub logs: Option<Rect>,
    pub bar: Rect,
    /// Too small for anything but a word to say so.
    pub too_small: bool,
}

/// The smallest terminal drawn in full; below it, one line says so.
pub const MIN_WIDTH: u16 = 20;
pub const MIN_HEIGHT: u16 = 4;

/// The states, in the order the header counts them.
pub const STATES: [&str; 8] = [
    "running", "starting", "stopping", "waiting", "backoff", "fatal", "exited", "stopped",
];

/// Counts of instances by state (as [`STATES`]), for the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub by_state: [usize; STATES.len()],
}

pub struct App {
    /// What the header names: the manifest the daemon runs.
    pub title: String,
    /// The services, for what the detail view says about an instance's service; their
    /// `instances` are moved out, into `instances`.
    pub services: Vec<ServiceInfo>,
    /// Every instance, in the daemon's order (manifest order, then index).
    pub instances: Vec<InstanceInfo>,
    /// Indices into `instances` of those the filter lets through.
    pub shown: Vec<usize>,
    /// Position in `shown` of the selected row.
    pub cursor: usize,
    /// The first row of `shown` in view.
    pub offset: usize,
    /// The selected instance's name: the selection follows it across snapshots.
    pub selected: Option<String>,
    pub filter: String,
    pub focus: Focus,
    pub mode: Mode,
    /// The focused pane fills the screen.
    pub zoom: bool,
    /// The detail view replaces the table.
    pub detail: bool,
    pub logs: Logs,
    pub connection: Connection,
    pub message: Option<Message>,
    pub width: u16,
    pub height: u16,
    /// Unix ms of the last snapshot: "how long ago" for probe results.
    pub now_ms: u64,
    pub counts: Counts,
    /// The widest instance name, for the table's first column.
    pub name_width: usize,
}

impl App {
    pub fn new(title: impl Into<String>, width: u16, height: u16) -> App {
        App {
            title: title.into(),
            services: Vec::new(),
            instances: Vec::new(),
            shown: Vec::new(),
            cursor: 0,
            offset: 0,
            selected: None,
            filter: String::new(),
            focus: Focus::Table,
            mode: Mode::Normal,
            zoom: false,
            detail: false,
            logs: Logs {
                lines: VecDeque::new(),
                dropped: 0,
                all: false,
                target: None,
                generation: 0,
                status: LogStatus::Idle,
                follow: true,
                back: 0,
                search: String::new(),
                found: None,
                stale: false,
            },
            connection: Connection::Connecting,
            message: None,
            width,
            height,
            now_ms: 0,
            counts: Counts::default(),
            name_width: 4,
        }
    }

    /// The selected instance, if any row is shown.
    pub fn selection(&self) -> Option<&InstanceInfo> {
        self.shown.get(self.cursor).map(|&i| &self.instances[i])
    }

    pub fn service(&self, name: &str) -> Option<&ServiceInfo> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn connected(&self) -> bool {
        self.connection == Connection::Connected
    }

    /// Apply one input; returns what to ask of the daemon.
    pub fn update(&mut self, input: Input) -> Vec<Request> {
        let mut out = Vec::new();
        match input {
            Input::Key(key) => {
                if matches!(key.kind, KeyEventKind::Press | KeyEventKind::Repeat) {
                    self.key(key, &mut out);
                }
            }
            Input::Resize { width, height } => {
                self.width = width;
                self.height = height;
                self.scroll_table();
            }
            Input::Snapshot { services, at_ms } => {
                self.snapshot(services, at_ms);
                self.connection = Connection::Connected;
            }
            Input::Disconnected {
                error,
                attempt,
                retry_in,
            } => {
                self.connection = Connection::Disconnected {
                    error,
                    attempt,
                    retry_in,
                }
            }
            Input::LogsStarted { generation } if generation == self.logs.generation => {
                // The stream sends its tail again: start over rather than show lines twice.
                self.logs.lines.clear();
                self.logs.dropped = 0;
                self.logs.found = None;
                self.logs.back = 0;
                self.logs.status = LogStatus::Live;
            }
            Input::Logs { generation, lines } if generation == self.logs.generation => {
                self.push_logs(lines)
            }
            Input::LogsEnded { generation, error } if generation == self.logs.generation => {
                self.logs.status = LogStatus::Ended(error);
            }
            Input::LogsStarted { .. } | Input::Logs { .. } | Input::LogsEnded { .. } => {}
            Input::Done { request, outcome } => self.done(&request, outcome),
        }
        self.follow_logs(&mut out);
        out
    }

    fn snapshot(&mut self, mut services: Vec<ServiceInfo>, at_ms: u64) {
        self.now_ms = at_ms;
        let before = self.instances.iter().map(|i| i.name.as_str());
        let after = services
            .iter()
            .flat_map(|s| s.instances.iter().map(|i| i.name.as_str()));
        if !before.eq(after) {
            self.logs.stale = true;
        }
        self.instances.clear();
        for service in &mut services {
            self.instances.append(&mut service.instances);
        }
        self.services = services;
        let mut counts = Counts {
            total: self.instances.len(),
            ..Counts::default()
        };
        let mut widest = 4;
        for i in &self.instances {
            widest = widest.max(i.name.chars().count());
            if let Some(n) = STATES.iter().position(|s| *s == i.state) {
                counts.by_state[n] += 1;
            }
        }
        self.counts = counts;
        self.name_width = widest;
        self.refilter();
    }

    /// Recompute the rows the filter lets through, keeping the selected instance selected
    /// when it is still there, else the row at the same position.
    fn refilter(&mut self) {
        let needle = self.filter.as_str();
        self.shown.clear();
        self.shown.extend(
            self.instances
                .iter()
                .enumerate()
                .filter(|(_, i)| needle.is_empty() || contains_ignore_case(&i.name, needle))
                .map(|(n, _)| n),
        );
        if let Some(name) = &self.selected
            && let Some(at) = self
                .shown
                .iter()
                .position(|&i| self.instances[i].name == *name)
        {
            self.cursor = at;
        }
        self.cursor = self.cursor.min(self.shown.len().saturating_sub(1));
        self.selected = self.selection().map(|i| i.name.clone());
        self.scroll_table();
    }

    fn select(&mut self, cursor: usize) {
        self.cursor = cursor.min(self.shown.len().saturating_sub(1));
        self.selected = self.selection().map(|i| i.name.clone());
        self.scroll_table();
    }

    /// Keep the cursor's row in view.
    fn scroll_table(&mut self) {
        let rows = self.table_rows();
        if rows == 0 {
            return;
        }
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + rows {
            self.offset = self.cursor + 1 - rows;
        }
        self.offset = self.offset.min(self.shown.len().saturating_sub(rows));
    }

    /// How many instance rows the table shows (its title and header take two lines).
    pub fn table_rows(&self) -> usize {
        self.areas(Rect::new(0, 0, self.width, self.height))
            .main
            .map_or(0, |r| r.height.saturating_sub(2) as usize)
    }

    /// How many log lines the log pane shows (its title takes one).
    pub fn log_rows(&self) -> usize {
        self.areas(Rect::new(0, 0, self.width, self.height))
            .logs
            .map_or(0, |r| r.height.saturating_sub(1) as usize)
    }

    /// The screen's layout: a header line, the table (or detail) over the log pane, and the
    /// key bar. Small terminals show only the focused pane; tiny ones say they are too
    /// small.
    pub fn areas(&self, area: Rect) -> Areas {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            return Areas {
                header: area,
                too_small: true,
                ..Areas::default()
            };
        }
        let header = Rect::new(area.x, area.y, area.width, 1);
        let bar = Rect::new(area.x, area.bottom() - 1, area.width, 1);
        let body = Rect::new(area.x, area.y + 1, area.width, area.height - 2);
        let alone = self.zoom || body.height < 6;
        if alone {
            let (main, logs) = match self.focus {
                Focus::Table => (Some(body), None),
                Focus::Logs => (None, Some(body)),
            };
            return Areas {
                header,
                main,
                logs,
                bar,
                too_small: false,
            };
        }
        let most = body.height * 3 / 5;
        let wanted = if self.detail {
            most
        } else {
            // A short table leaves the room to the logs.
            (self.shown.len() as u16).saturating_add(2).max(3)
        };
        let main_height = wanted.min(most).max(3);
        let main = Rect::new(body.x, body.y, body.width, main_height);
        let logs = Rect::new(
            body.x,
            body.y + main_height,
            body.width,
            body.height - main_height,
        );
        Areas {
            header,
            main: Some(main),
            logs: Some(logs),
            bar,
            too_small: false,
        }
    }

    /// Start a new log stream when what the pane should follow is not what it follows: the
    /// selection moved, the pane switched between one and all, or (for all) instances came
    /// or went.
    fn follow_logs(&mut self, out: &mut Vec<Request>) {
        if self.instances.is_empty() {
            return;
        }
        let target = if self.logs.all {
            None
        } else {
            match &self.selected {
                Some(name) => Some(name.clone()),
                None => return,
            }
        };
        let stale = std::mem::take(&mut self.logs.stale) && self.logs.all;
        if self.logs.generation > 0 && self.logs.target == target && !stale {
            return;
        }
        let per_instance = if target.is_some() {
            500
        } else {
            (LOG_CAP / self.instances.len().max(1)).clamp(10, 500)
        };
        self.logs.generation += 1;
        self.logs.target = target.clone();
        self.logs.lines.clear();
        self.logs.dropped = 0;
        self.logs.back = 0;
        self.logs.found = None;
        self.logs.status = LogStatus::Connecting;
        out.push(Request::FollowLogs {
            target,
            lines: per_instance,
            generation: self.logs.generation,
        });
    }

    fn push_logs(&mut self, lines: Vec<LogLine>) {
        let added = lines.len();
        self.logs.lines.extend(lines);
        let excess = self.logs.lines.len().saturating_sub(LOG_CAP);
        if excess > 0 {
            self.logs.lines.drain(..excess);
            self.logs.dropped += excess as u64;
        }
        if !self.logs.follow {
            // Hold the view where the reader left it.
            let most = self.logs.lines.len().saturating_sub(self.log_rows());
            self.logs.back = (self.logs.back + added).min(most);
        }
    }

    fn done(&mut self, request: &Request, outcome: Outcome) {
        let verb = request.verb();
        self.message = Some(match outcome {
            Outcome::Failed(error) => Message {
                text: format!("{verb} {}: {error}", request.target()),
                error: true,
            },
            Outcome::Acted(response) => {
                let failed: Vec<String> = response
                    .failures()
                    .map(|r| format!("{}: {}", r.instance, r.error.as_deref().unwrap_or("failed")))
                    .collect();
                if failed.is_empty() {
                    let names: Vec<&str> = response
                        .results
                        .iter()
                        .map(|r| r.instance.as_str())
                        .collect();
                    Message {
                        text: format!("{}: {}", names.join(", "), past_tense(verb)),
                        error: false,
                    }
                } else {
                    Message {
                        text: failed.join("; "),
                        error: true,
                    }
                }
            }
            Outcome::Scaled(done) => {
                let failed: Vec<String> = done
                    .started
                    .iter()
                    .filter(|r| !r.ok)
                    .map(|r| {
                        format!(
                            "{}: {}",
                            r.instance,
                            r.error.as_deref().unwrap_or("did not start")
                        )
                    })
                    .collect();
                let mut text = format!("{}: {} → {} instances", done.service, done.from, done.to);
                if !failed.is_empty() {
                    text.push_str("; ");
                    text.push_str(&failed.join("; "));
                }
                Message {
                    text,
                    error: !failed.is_empty(),
                }
            }
        });
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some(Message {
            text: text.into(),
            error,
        });
    }

    fn key(&mut self, key: KeyEvent, out: &mut Vec<Request>) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            out.push(Request::Quit);
            return;
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.normal_key(key, ctrl, out),
            // Any key closes the help, and does nothing else: a key pressed to get rid of
            // it must not restart something.
            Mode::Help => {}
            Mode::Filter => self.filter_key(key),
            Mode::Search { input } => self.search_key(key, input),
            Mode::Scale {
                service,
                current,
                input,
            } => self.scale_key(key, service, current, input, out),
            Mode::Confirm(request) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.say(
                        format!("{} {}…", doing(request.verb()), request.target()),
                        false,
                    );
                    out.push(request);
                }
                _ => self.say(
                    format!("{} not {}", request.target(), past_tense(request.verb())),
                    false,
                ),
            },
        }
    }

    fn normal_key(&mut self, key: KeyEvent, ctrl: bool, out: &mut Vec<Request>) {
        let page = match self.focus {
            Focus::Table => self.table_rows(),
            Focus::Logs => self.log_rows(),
        }
        .max(1);
        match key.code {
            KeyCode::Char('q') => out.push(Request::Quit),
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Esc => self.escape(),
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::Table => Focus::Logs,
                    Focus::Logs => Focus::Table,
                };
                self.scroll_table();
            }
            KeyCode::Enter if self.focus == Focus::Table => {
                self.detail = !self.detail;
                self.scroll_table();
            }
            KeyCode::Char('z') => {
                self.zoom = !self.zoom;
                self.scroll_table();
            }
            KeyCode::Up | KeyCode::Char('k') => self.moved(-1),
            KeyCode::Down | KeyCode::Char('j') => self.moved(1),
            KeyCode::PageUp => self.moved(-(page as isize)),
            KeyCode::PageDown => self.moved(page as isize),
            KeyCode::Char('u') if ctrl => self.moved(-(page as isize / 2).max(1)),
            KeyCode::Char('d') if ctrl => self.moved((page as isize / 2).max(1)),
            KeyCode::Home | KeyCode::Char('g') => self.moved(isize::MIN),
            KeyCode::End | KeyCode::Char('G') => self.moved(isize::MAX),
            KeyCode::Char('/') => match self.focus {
                Focus::Table => self.mode = Mode::Filter,
                Focus::Logs => {
                    self.mode = Mode::Search {
                        input: String::new(),
                    }
                }
            },
            KeyCode::Char('n') => self.find(true),
            KeyCode::Char('N') => self.find(false),
            KeyCode::Char('f') => {
                self.logs.follow = !self.logs.follow;
                if self.logs.follow {
                    self.logs.back = 0;
                }
            }
            KeyCode::Char('a') => {
                self.logs.all = !self.logs.all;
            }
            KeyCode::Char('s') => self.act(Request::Start, out),
            KeyCode::Char('S') => {
                if let Some(name) = self.action_target() {
                    self.mode = Mode::Confirm(Request::Stop(name));
                }
            }
            KeyCode::Char('r') => self.act(Request::Restart, out),
            KeyCode::Char('R') => self.act(Request::Reload, out),
            KeyCode::Char('c') => {
                let service = self
                    .action_target()
                    .and(self.selection())
                    .and_then(|i| self.service(&i.service).map(|s| (s.name.clone(), s.count)));
                if let Some((service, current)) = service {
                    self.mode = Mode::Scale {
                        service,
                        current,
                        input: String::new(),
                    };
                }
            }
            _ => {}
        }
    }

    /// Esc backs out of one thing at a time: the message, the detail view, the zoom, the
    /// log search, the filter.
    fn escape(&mut self) {
        if self.message.take().is_some() {
            return;
        }
        if self.detail {
            self.detail = false;
        } else if self.zoom {
            self.zoom = false;
        } else if !self.logs.search.is_empty() && self.focus == Focus::Logs {
            self.logs.search.clear();
            self.logs.found = None;
        } else if !self.filter.is_empty() {
            self.filter.clear();
            self.refilter();
        }
        self.scroll_table();
    }

    /// The selected instance's name, if an action can be sent for it now; else says why not.
    fn action_target(&mut self) -> Option<String> {
        if !self.connected() {
            self.say("not connected to tend: nothing sent", true);
            return None;
        }
        match self.selected.clone() {
            Some(name) => Some(name),
            None => {
                self.say("no instance selected", true);
                None
            }
        }
    }

    fn act(&mut self, make: fn(String) -> Request, out: &mut Vec<Request>) {
        if let Some(name) = self.action_target() {
            let request = make(name);
            self.say(
                format!("{} {}…", doing(request.verb()), request.target()),
                false,
            );
            out.push(request);
        }
    }

    /// Up or down by `by` rows in the table, or lines in the log pane.
    fn moved(&mut self, by: isize) {
        match self.focus {
            Focus::Table => {
                let to = (self.cursor as isize).saturating_add(by).max(0) as usize;
                self.select(to);
            }
            Focus::Logs => {
                let most = self.logs.lines.len().saturating_sub(self.log_rows());
                let back = (self.logs.back as isize).saturating_sub(by).max(0) as usize;
                self.logs.back = back.min(most);
                self.logs.follow = self.logs.back == 0;
            }
        }
    }

    fn filter_key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Enter => {}
            KeyCode::Esc => {
                self.filter.clear();
                self.refilter();
            }
            KeyCode::Backspace => {
                self.filter.pop();
                self.refilter();
                self.mode = Mode::Filter;
            }
            KeyCode::Char(c) if !c.is_control() => {
                self.filter.push(c);
                self.refilter();
                self.mode = Mode::Filter;
            }
            KeyCode::Up => {
                self.moved(-1);
                self.mode = Mode::Filter;
            }
            KeyCode::Down => {
                self.moved(1);
                self.mode = Mode::Filter;
            }
            _ => self.mode = Mode::Filter,
        }
    }

    fn search_key(&mut self, key: KeyEvent, mut input: String) {
        match key.code {
            KeyCode::Enter => {
                self.logs.search = input;
                self.logs.found = None;
                if !self.logs.search.is_empty() {
                    self.find(true);
                }
            }
            KeyCode::Esc => {}
            KeyCode::Backspace => {
                input.pop();
                self.mode = Mode::Search { input };
            }
            KeyCode::Char(c) if !c.is_control() => {
                input.push(c);
                self.mode = Mode::Search { input };
            }
            _ => self.mode = Mode::Search { input },
        }
    }

    fn scale_key(
        &mut self,
        key: KeyEvent,
        service: String,
        current: u32,
        mut input: String,
        out: &mut Vec<Request>,
    ) {
        match key.code {
            KeyCode::Enter => match input.parse::<u32>() {
                Ok(n) if (1..=10_000).contains(&n) => {
                    self.say(format!("scaling {service} to {n}…"), false);
                    out.push(Request::Scale {
                        service,
                        instances: n,
                    });
                }
                _ => self.say(
                    format!("scale {service}: a number from 1 to 10000 (`S` stops them all)"),
                    true,
                ),
            },
            KeyCode::Esc => {}
            KeyCode::Backspace => {
                input.pop();
                self.mode = Mode::Scale {
                    service,
                    current,
                    input,
                };
            }
            KeyCode::Char(c) if c.is_ascii_digit() && input.len() < 5 => {
                input.push(c);
                self.mode = Mode::Scale {
                    service,
                    current,
                    input,
                };
            }
            _ => {
                self.mode = Mode::Scale {
                    service,
                    current,
                    input,
                }
            }
        }
    }

    /// Move to the next line matching the search: older (`n`) or newer (`N`) than the last
    /// one found, starting from the bottom of the view. The view stops following and
    /// scrolls to show it.
    fn find(&mut self, older: bool) {
        if self.logs.search.is_empty() {
            return;
        }
        let len = self.logs.lines.len();
        if len == 0 {
            self.say(format!("no line matches `{}`", self.logs.search), true);
            return;
        }
        let dropped = self.logs.dropped;
        let bottom = len - 1 - self.logs.back.min(len - 1);
        let from = match self.logs.found {
            Some(seq) if seq >= dropped && ((seq - dropped) as usize) < len => {
                let at = (seq - dropped) as usize;
                if older {
                    at.checked_sub(1)
                } else {
                    Some(at + 1).filter(|&i| i < len)
                }
            }
            _ if older => Some(bottom),
            _ => Some(bottom + 1).filter(|&i| i < len),
        };
        let needle = self.logs.search.as_str();
        let hit = from.and_then(|from| {
            if older {
                (0..=from)
                    .rev()
                    .find(|&i| contains_ignore_case(&self.logs.lines[i].text, needle))
            } else {
                (from..len).find(|&i| contains_ignore_case(&self.logs.lines[i].text, needle))
            }
        });
        match hit {
            Some(at) => {
                self.logs.found = Some(dropped + at as u64);
                self.logs.follow = false;
                // The match a third of the way up the view, when there is room.
                let rows = self.log_rows().max(1);
                self.logs.back = (len - 1 - at)
                    .saturating_sub(rows / 3)
                    .min(len.saturating_sub(rows));
            }
            None => self.say(
                format!(
                    "no {} line matches `{}`",
                    if older { "older" } else { "newer" },
                    self.logs.search
                ),
                true,
            ),
        }
    }
}

fn doing(verb: &str) -> &'static str {
    match verb {
        "start" => "starting",
        "stop" => "stopping",
        "restart" => "restarting",
        "reload" => "reloading",
        _ => "scaling",
    }
}

fn past_tense(verb: &str) -> &'static str {
    match verb {
        "start" => "started",
        "stop" => "stopped",
        "restart" => "restarted",
        "reload" => "reloaded",
        _ => "done",
    }
}

/// Whether `haystack` contains `needle`, ASCII letters compared without case; no
/// allocation, as it runs for every shown row and log line.
pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    find_ignore_case(haystack, needle).is_some()
}

/// The byte range of the first occurrence of `needle`, ASCII letters compared without case.
pub fn find_ignore_case(haystack: &str, needle: &str) -> Option<(usize, usize)> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return Some((0, 0));
    }
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len())
        .filter(|&at| haystack.is_char_boundary(at) && haystack.is_char_boundary(at + n.len()))
        .find(|&at| h[at..at + n.len()].eq_ignore_ascii_case(n))
        .map(|at| (at, at + n.len()))
}

#[cfg(test)]
mod tests;
