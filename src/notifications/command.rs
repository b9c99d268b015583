//! Command delivery: the notice goes to a shell command as TEND_* variables, through tend's
//! own spawner. No retries: a command that fails once will most likely fail again, and it
//! may not be safe to repeat.

use std::sync::Arc;
use std::time::Duration;

use super::{CommandRunner, Notice, human, rfc3339_millis};

/// Extra time the runner gets past the command's timeout to kill it and report, before we
/// stop waiting on it ourselves.
const RUNNER_GRACE: Duration = Duration::from_secs(5);
/// How much of the command line goes into reports.
const LABEL_CHARS: usize = 60;

pub(super) struct Command {
    command: String,
    timeout: Duration,
    runner: Arc<dyn CommandRunner>,
    host: Arc<str>,
}

impl Command {
    pub(super) fn new(
        command: String,
        timeout: Duration,
        runner: Arc<dyn CommandRunner>,
        host: Arc<str>,
    ) -> Command {
        Command {
            command,
            timeout,
            runner,
            host,
        }
    }

    pub(super) fn label(&self) -> String {
        let mut short: String = self.command.chars().take(LABEL_CHARS).collect();
        if short.len() < self.command.len() {
            short.push('…');
        }
        format!("command `{short}`")
    }

    pub(super) async fn deliver(&self, notice: &Notice, report: &(dyn Fn(String) + Send + Sync)) {
        let run = self
            .runner
            .run(&self.command, env(notice, &self.host), self.timeout);
        let why = match tokio::time::timeout(self.timeout + RUNNER_GRACE, run).await {
            Ok(Ok(0)) => return,
            Ok(Ok(code)) => format!("exited with code {code}"),
            Ok(Err(why)) => why,
            Err(_) => format!("did not finish within {}", human(self.timeout)),
        };
        report(format!(
            "notify: {} for the {} notice of {}: {why}",
            self.label(),
            notice.kind.as_str(),
            notice.instance
        ));
    }
}

/// The notice as environment variables; TEND_EXIT is empty when there was no exit.
pub(super) fn env(notice: &Notice, host: &str) -> Vec<(String, String)> {
    [
        ("TEND_EVENT", notice.kind.as_str().to_owned()),
        ("TEND_SERVICE", notice.service.clone()),
        ("TEND_INSTANCE", notice.instance.clone()),
        ("TEND_REASON", notice.reason.clone()),
        ("TEND_EXIT", notice.exit.clone().unwrap_or_default()),
        ("TEND_AT", rfc3339_millis(notice.at)),
        ("TEND_HOST", host.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}
