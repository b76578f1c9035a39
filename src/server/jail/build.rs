//! What a jail is built from its spec: actions, ignore list, engine options, sources.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::action::Action;
use crate::config::PyValue;
use crate::dns::Resolver;
use crate::filter::Filter;
use crate::jail::ignore::{loopback, self_addresses, SelfAddrs};
use crate::jail::increment::Increment;
use crate::jail::{Engine, IgnoreList};
use crate::source::{
    Backend, FilePosition, FileSource, FileSourceOptions, JournalOptions, JournalSource,
    JournalStart, LogEncoding, LogPath,
};
use crate::store::Store;

use super::super::spec::{JailSpec, JournalBackend};

use super::super::clock::Clock;
use super::JailError;

/// The jail's action timeout, which the ignorecommand runs under as
/// fail2ban runs it under its default one: the longest of its actions'
/// `timeout`, or that default when it has no action.
pub(super) fn action_timeout(actions: &[Action]) -> Duration {
    actions
        .iter()
        .map(Action::timeout)
        .max()
        .unwrap_or(crate::action::DEFAULT_TIMEOUT)
}

fn ipv6_allowed() -> bool {
    crate::action::ipv6_allowed_by_system()
}

/// Builds the actions of `spec`, their `<time>` taken from `clock`.
pub fn build_actions(spec: &JailSpec, clock: Clock) -> Vec<Action> {
    let mut out = Vec::with_capacity(spec.actions.len());
    for a in &spec.actions {
        let opts = a
            .options
            .iter()
            .map(|(k, v)| (k.clone(), PyValue::Str(v.clone())));
        match Action::new(&spec.name, &a.name, opts) {
            Ok(act) => out.push(
                act.with_ipv6(ipv6_allowed())
                    .with_jail_bantime(spec.bantime as i64)
                    .with_clock(clock.for_actions()),
            ),
            Err(e) => tracing::error!("[{}] action {}: {e}", spec.name, a.name),
        }
    }
    out
}

/// The host's own addresses, which every jail's ignoreself shares:
/// loopback and every interface's address at once (as fail2ban 1.1 does),
/// then what `localhost` and the host's name resolve to, looked up once on
/// a thread of its own with the resolver's timeout.
/// A resolver that never answers thus delays no jail's start, nor the
/// control socket, which answers once the jails are started.
fn self_addrs() -> SelfAddrs {
    static SELF: OnceLock<SelfAddrs> = OnceLock::new();
    SELF.get_or_init(|| {
        let addrs = SelfAddrs::new(loopback());
        addrs.extend(
            crate::netif::interface_addresses()
                .into_iter()
                .map(crate::filter::Addr::single),
        );
        let found = addrs.clone();
        let spawned = std::thread::Builder::new()
            .name("f3b-self-addrs".into())
            .spawn(move || {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                found.extend(self_addresses(&[host.trim()], Resolver::system()));
            });
        if let Err(e) = spawned {
            tracing::error!("cannot look the host's names up for ignoreself: {e}");
        }
        addrs
    })
    .clone()
}

/// The jail's ignore list. Names in it are looked up and its files read
/// (blocking, names through the daemon's cache): called off the runtime,
/// outside the jail's lock.
pub(super) fn ignore_list(spec: &JailSpec) -> IgnoreList {
    let resolver = Resolver::system();
    let mut ig = IgnoreList::new(&spec.name, self_addrs());
    ig.set_ignore_self(spec.ignoreself);
    for ip in &spec.ignoreip {
        match crate::jail::ignore::file_item(ip) {
            Some(path) => {
                let file = super::ignore_file::IgnoreFile::open(&spec.name, &path);
                ig.add_ignore_set(&path, std::sync::Arc::new(file));
            }
            None => ig.add_ignore_ip(ip, resolver),
        }
    }
    if let Some(c) = spec.ignorecommand.as_deref().filter(|c| !c.is_empty()) {
        ig.set_ignore_command(c);
    }
    if let Some(c) = &spec.ignorecache {
        if let Err(e) = ig.set_ignore_cache(c) {
            tracing::error!("[{}] ignorecache: {e}", spec.name);
        }
    }
    ig
}

/// Applies the counting options of `spec` to an engine, keeping its state.
pub(super) fn configure_engine(
    engine: &mut Engine,
    spec: &JailSpec,
    has_store: bool,
) -> Result<(), JailError> {
    engine.fail_manager.set_max_retry(spec.maxretry);
    engine.fail_manager.set_max_time(spec.findtime);
    engine.fail_manager.set_max_matches(
        spec.maxmatches
            .unwrap_or(crate::server::spec::DEFAULT_MAXMATCHES),
    );
    engine.fail_manager.set_max_ids(
        spec.maxfailedids
            .unwrap_or(crate::server::spec::DEFAULT_MAXFAILEDIDS),
    );
    engine.ban_manager.set_ban_time(spec.bantime);
    engine.increment = if spec.increment == Some(true) && has_store {
        Some(Increment::new(&spec.increment_opts)?)
    } else {
        None
    };
    Ok(())
}

/// Whether a jail can be built from `spec` (its filter compiles, its
/// counting options hold), without building it.
pub fn check_spec(spec: &JailSpec) -> Result<(), JailError> {
    Filter::new(spec.filter_options())?;
    configure_engine(&mut Engine::new(&spec.name), spec, true)
}

pub(super) fn file_source(
    spec: &JailSpec,
    backend: Backend,
    store: Option<&dyn Store>,
) -> Result<FileSource, JailError> {
    // The files the configuration found, then its glob patterns, which
    // the source looks at again for files created since.
    let paths: Vec<LogPath> = spec
        .logpaths
        .iter()
        .chain(&spec.logglobs)
        .map(|(p, t)| {
            if t == "tail" {
                LogPath::tail(p)
            } else {
                LogPath::head(p)
            }
        })
        .collect();
    let mut opts = FileSourceOptions::new(spec.name.clone(), paths);
    opts.backend = backend;
    let enc = if spec.logencoding == "auto" {
        "utf-8"
    } else {
        spec.logencoding.as_str()
    };
    opts.encoding = LogEncoding::new(enc).unwrap_or(LogEncoding::UTF8);
    if let Some(s) = store {
        match s.log_positions(&spec.name) {
            Ok(saved) => {
                opts.saved = saved
                    .into_iter()
                    .map(|(path, md5, offset)| FilePosition {
                        path: PathBuf::from(path),
                        md5,
                        offset,
                    })
                    .collect()
            }
            Err(e) => tracing::error!("[{}] reading saved log positions: {e}", spec.name),
        }
    }
    Ok(FileSource::spawn(opts)?)
}

pub(super) fn journal_source(
    spec: &JailSpec,
    journal: &JournalBackend,
    store: Option<&dyn Store>,
    now: f64,
) -> Result<JournalSource, JailError> {
    let mut opts = JournalOptions::new(spec.name.clone());
    opts.matches = spec.journalmatch.clone();
    journal.apply(&mut opts);
    opts.start = JournalStart::Time(now - spec.findtime);
    if let Some(s) = store {
        match s.journal_cursor(&spec.name) {
            Ok(Some(c)) => opts.start = JournalStart::Cursor(c),
            Ok(None) => {}
            Err(e) => tracing::error!("[{}] reading the saved journal cursor: {e}", spec.name),
        }
    }
    Ok(JournalSource::spawn(opts)?)
}
