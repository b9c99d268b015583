//! Integration tests: the real `tend` binary, real children, the real socket.

mod harness;

// Restart policy, backoff, fatal and cooldown, manual restart.
mod lifecycle;
// Start order by depends_on, `completed` tasks, reverse-order shutdown.
mod dependencies;
// Whole-tree stop: process group, escaped grandchild, with and without cgroups.
mod tree;
// tend as PID 1 in a fresh PID namespace; no orphans after SIGKILL of tend.
mod containers;
// Config errors with file, line and key; check, schema, completions, man.
mod config;
// The CLI against a daemon: status, logs, signal, targets, no daemon.
mod cli;
// Log capture: rotation, merge, timestamps and JSON, tail and follow, inherit, disk trouble.
mod logs;
// Probes (http, tcp, exec, log, sd_notify), liveness restarts, watchdog, readiness gating.
mod health;
// The control API: services, actions, JSON errors, /ready, SSE, metrics, OpenAPI.
mod api;
// The history: events and actions in SQLite, across restarts, a corrupt file moved aside.
mod history;
// The TCP listener: bearer tokens, roles, rate limiting of guesses, a too-open tokens file.
mod remote;
// Notifications: a webhook retried after a 500, a command with the event in its env.
mod notify;
// `tend diff` and `tend apply` (and SIGHUP): each kind of change, an invalid manifest.
mod apply;
// `tend scale` and autoscale: new indices, highest stopped, kept across applies, roles.
mod scale;

mod supervisord;

mod import;

// [sockets]: bound by tend, passed to real children (LISTEN_FDS), shared by instances.
mod sockets;

// `tend reload`: replacements beside the old processes, no failed request under load.
mod reload;

// `tend upgrade` and SIGUSR2: same pids, no line lost, sockets served, broken binaries refused.
mod upgrade;

// `tend export`: systemd units, Kubernetes objects and Compose files checked by their own tools.
mod export;

// `watch` (real files, real restarts), `cron_restart` and `schedule` validation and `up`.
mod schedules;

// The web dashboard: its files, token login and cookie, CSRF, roles, and a real browser.
mod dashboard;
// `tend top`: the real TUI in tmux, a restart by key, the terminal restored on quit.
mod top;
