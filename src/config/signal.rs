//! tend's own signal type: parsed from manifests and CLI arguments ("TERM", "SIGTERM", "15"),
//! converted to the OS value only where a signal is sent.

use std::fmt;
use std::str::FromStr;

/// A POSIX signal by its portable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Abrt,
    Kill,
    Usr1,
    Usr2,
    Pipe,
    Alrm,
    Term,
    Cont,
    Stop,
    Tstp,
    Ttin,
    Ttou,
    Winch,
}

const TABLE: &[(Signal, &str, i32)] = &[
    (Signal::Hup, "HUP", libc::SIGHUP),
    (Signal::Int, "INT", libc::SIGINT),
    (Signal::Quit, "QUIT", libc::SIGQUIT),
    (Signal::Abrt, "ABRT", libc::SIGABRT),
    (Signal::Kill, "KILL", libc::SIGKILL),
    (Signal::Usr1, "USR1", libc::SIGUSR1),
    (Signal::Usr2, "USR2", libc::SIGUSR2),
    (Signal::Pipe, "PIPE", libc::SIGPIPE),
    (Signal::Alrm, "ALRM", libc::SIGALRM),
    (Signal::Term, "TERM", libc::SIGTERM),
    (Signal::Cont, "CONT", libc::SIGCONT),
    (Signal::Stop, "STOP", libc::SIGSTOP),
    (Signal::Tstp, "TSTP", libc::SIGTSTP),
    (Signal::Ttin, "TTIN", libc::SIGTTIN),
    (Signal::Ttou, "TTOU", libc::SIGTTOU),
    (Signal::Winch, "WINCH", libc::SIGWINCH),
];

impl Signal {
    /// The name without the `SIG` prefix, as written in manifests.
    pub fn name(self) -> &'static str {
        TABLE
            .iter()
            .find(|(s, _, _)| *s == self)
            .map(|e| e.1)
            .expect("UNWRAP: TABLE lists every variant")
    }

    /// The OS signal number.
    pub fn number(self) -> i32 {
        TABLE
            .iter()
            .find(|(s, _, _)| *s == self)
            .map(|e| e.2)
            .expect("UNWRAP: TABLE lists every variant")
    }

    pub fn from_number(number: i32) -> Option<Signal> {
        TABLE.iter().find(|e| e.2 == number).map(|e| e.0)
    }

    /// Every spelling that parses: `TERM`, `SIGTERM` and the number, for the API's schema.
    pub fn spellings() -> Vec<String> {
        TABLE
            .iter()
            .flat_map(|(_, name, number)| {
                [name.to_string(), format!("SIG{name}"), number.to_string()]
            })
            .collect()
    }

    /// The names accepted, for error messages.
    pub fn known_names() -> String {
        TABLE.iter().map(|e| e.1).collect::<Vec<_>>().join(", ")
    }
}

/// The name of a signal a process died of (`SIGSEGV`), for reports: the signals a manifest
/// may name plus the ones programs crash with. Numbers differ between platforms, so they
/// come from libc.
pub fn signal_name(number: i32) -> Option<&'static str> {
    if let Some(signal) = Signal::from_number(number) {
        return Some(match signal {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Quit => "SIGQUIT",
            Signal::Abrt => "SIGABRT",
            Signal::Kill => "SIGKILL",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
            Signal::Pipe => "SIGPIPE",
            Signal::Alrm => "SIGALRM",
            Signal::Term => "SIGTERM",
            Signal::Cont => "SIGCONT",
            Signal::Stop => "SIGSTOP",
            Signal::Tstp => "SIGTSTP",
            Signal::Ttin => "SIGTTIN",
            Signal::Ttou => "SIGTTOU",
            Signal::Winch => "SIGWINCH",
        });
    }
    Some(match number {
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return None,
    })
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

/// The input was not a signal tend knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal `{0}` (expected one of {names}, with or without SIG, or its number)", names = Signal::known_names())]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if let Ok(number) = trimmed.parse::<i32>() {
            return Signal::from_number(number).ok_or_else(|| UnknownSignal(s.to_string()));
        }
        let upper = trimmed.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        TABLE
            .iter()
            .find(|e| e.1 == bare)
            .map(|e| e.0)
            .ok_or_else(|| UnknownSignal(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_prefixes_and_numbers() {
        assert_eq!("TERM".parse(), Ok(Signal::Term));
        assert_eq!("sigint".parse(), Ok(Signal::Int));
        assert_eq!("9".parse(), Ok(Signal::Kill));
        assert!("SIGBOGUS".parse::<Signal>().is_err());
        assert!("64".parse::<Signal>().is_err());
    }

    #[test]
    fn round_trips_every_signal() {
        for (signal, name, number) in TABLE {
            assert_eq!(name.parse::<Signal>(), Ok(*signal));
            assert_eq!(Signal::from_number(*number), Some(*signal));
            assert_eq!(signal.to_string(), format!("SIG{name}"));
        }
    }
}
