//! `tend top`: a full-screen terminal UI over the daemon's API. It owns no supervision: it is
//! a client of the control socket like the CLI (through `protocol::client`, never `engine`).
//!
//! - `app`: the state (instances, selection, filter, log ring, search, mode, connection) and
//!   how inputs change it; pure, and what it wants from the daemon comes out as `Request`s.
//! - `view`: `draw(frame, &app)`, a pure function of the state (tested on ratatui's
//!   `TestBackend`).
//! - `feed`: the tasks that poll and stream the API into `Input`s and carry out requests.
//! - here: the terminal (raw mode, the alternate screen, restored on exit, error, panic and
//!   SIGTERM/SIGHUP) and the loop that joins the three.

pub mod app;
pub mod feed;
pub mod view;

#[cfg(test)]
mod fixture;

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::protocol::client::{Client, ClientError};
use crate::protocol::{API, DaemonInfo};

use app::{App, Input, Request};
use feed::Feed;

/// At most this many frames a second: a flood of log lines is drawn in batches.
const FRAME: Duration = Duration::from_millis(16);

/// Run `tend top` against the daemon on `socket`; returns the exit code.
pub fn run(socket: &Path) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("tend top needs a terminal (use `tend status` in scripts)");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = Client::new(socket);
        let info: DaemonInfo = match client.get(&format!("{API}/info")).await {
            Ok(info) => info,
            Err(ClientError::NotRunning(path)) => {
                eprintln!("tend: not running (no daemon at {})", path.display());
                return Ok(1);
            }
            Err(e) => anyhow::bail!(e),
        };
        let mut screen = Screen::enter()?;
        let result = ui(&mut screen.terminal, socket, info).await;
        drop(screen);
        result.map(|()| 0)
    })
}

/// The terminal in raw mode on the alternate screen; dropping it (also while a panic
/// unwinds) puts the terminal back as it was. ratatui's panic hook does the same for a
/// panic on any thread.
struct Screen {
    terminal: DefaultTerminal,
}

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        match ratatui::try_init() {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                ratatui::restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        ratatui::restore();
    }
}

async fn ui(terminal: &mut DefaultTerminal, socket: &Path, info: DaemonInfo) -> anyhow::Result<()> {
    let size = terminal.size()?;
    let mut app = App::new(info.manifest, size.width, size.height);
    let (tx, mut rx) = mpsc::unbounded_channel();
    read_terminal(tx.clone());
    let mut feed = Feed::start(socket, tx);
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        terminal.draw(|frame| view::draw(frame, &app))?;
        let drawn = Instant::now();
        let input = tokio::select! {
            input = rx.recv() => input,
            _ = term.recv() => None,
            _ = hangup.recv() => None,
            _ = interrupt.recv() => None,
        };
        let Some(input) = input else { return Ok(()) };
        if handle(&mut app, &mut feed, input) {
            return Ok(());
        }
        // Take what else is there, and what comes until the next frame is due.
        let due = tokio::time::sleep_until((drawn + FRAME).into());
        tokio::pin!(due);
        loop {
            let input = match rx.try_recv() {
                Ok(input) => input,
                Err(_) => tokio::select! {
                    _ = &mut due => break,
                    input = rx.recv() => match input {
                        Some(input) => input,
                        None => return Ok(()),
                    },
                },
            };
            if handle(&mut app, &mut feed, input) {
                return Ok(());
            }
        }
    }
}

/// Apply an input and carry out its requests; true to quit.
fn handle(app: &mut App, feed: &mut Feed, input: Input) -> bool {
    for request in app.update(input) {
        if request == Request::Quit {
            return true;
        }
        feed.request(request);
    }
    false
}

/// Keys and resizes, read on a thread of their own (crossterm's reader blocks); it ends
/// with the process.
fn read_terminal(tx: mpsc::UnboundedSender<Input>) {
    std::thread::spawn(move || {
        loop {
            let input = match event::read() {
                Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => Input::Key(key),
                Ok(Event::Resize(width, height)) => Input::Resize { width, height },
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(input).is_err() {
                return;
            }
        }
    });
}
