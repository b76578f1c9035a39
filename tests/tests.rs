//! fail3ban's integration tests: one binary, one module per part.

// Helpers the modules share: a config tree, a real server, log writing.
mod util;
// What the #[ignore]d tests need (root, the reference, programs), checked
// in one place.
mod prereq;

// The reference fail2ban, fetched and run for differential tests.
mod reference;
// Action templates against fail2ban's CommandAction, and real shell runs.
mod action;
// Configuration trees read by fail3ban-client and fail2ban-client.
mod config;
// Regex engine and Filter against the reference fail2ban.
mod filter;
// Date detection against the reference fail2ban's DateDetector.
mod date;
// Failure counting, bans and bantime.increment against the reference.
mod jail;
// SQLite store on real files: restart, restore, damage, full disk, threads.
mod store;
// File and journal sources on real files and journals.
mod source;
// Issue 17: the native journal-file reader against libsystemd.
mod journal_native;
// Every stock filter against the failJSON annotations of its sample log.
mod samples;
// fail3ban-regex against fail2ban-regex, and hostile logs through it.
mod regex;
// A real fail3ban-server driven through fail3ban-client.
mod server;
// A real jail on tokio's paused time: findtime, bantime, unbans.
mod paused_time;
// The server's files and control socket against local users and hostile clients.
mod server_abuse;
// The pickle decoder of fail2ban's socket protocol against random and mutated pickles.
mod pickle;
// Log text an attacker wrote, through every command built from a template.
mod hostile;
// A real server against a silent resolver, a FIFO for a log, a typo in a reload.
mod resilience;
// The metrics endpoint: every documented metric, hostile scrapers, a real Prometheus.
mod metrics;
// A spray of distinct failing addresses against the server's memory.
mod failure_memory;
// fail3ban-server/-client against fail2ban-server/-client, output for output.
mod server_compat;
// Network namespaces with a real sshd and rsyslogd, for the e2e tests.
mod netns;
// Real sshd, syslog, firewalls and ssh clients in network namespaces.
mod e2e;
// fail3ban's own configuration tree: checked, actions rendered and run in a netns.
mod own_tree;
// The own tree's further actions (issue 18): rendered, run for real, and Python actions refused.
mod own_actions;
// The own tree against fail2ban's: coverage, and own filters on fail2ban's sample logs.
mod own_filters;
// fail3ban-client import-fail2ban-db on a database written by fail2ban.
mod import_db;
// fail3ban-client migrate: from a fail2ban system to fail3ban and back.
mod migrate;
// The glibc the binaries need, against Ubuntu 22.04's and the package's Depends.
mod glibc;
// The .deb: lintian, then apt install/run/remove/purge in a debootstrap root.
mod deb;
// The AI rule generator against a scripted OpenAI-compatible server.
mod ai;
// A real llama.cpp OpenAI-compatible server on loopback, for the AI tests.
mod llama;
// The packaged unit's file-system protections, applied in a mount namespace.
mod sandbox;
// Literal prefixes of anchored failregexes against PCRE2 on the stock samples.
mod prefilter;
// Ids, AI keys and filters checked where they enter (issue 13).
mod validation;
// Log rotation under a steady writer, side by side with fail2ban (issue 15).
mod rotation;
// What fail2ban 1.1.1 adds for jails, backends and actions (issue 17).
mod upstream111;
// JSON outputs against docs/json, and the JSON-lines log (issue 19).
mod json;
