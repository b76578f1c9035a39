//! Name lookups (a `<HOST>` that is a name, `ignoreip` names, the host's
//! own names): cached, bounded in time and threads, never on a runtime
//! thread nor under a jail's lock.
//!
//! getaddrinfo cannot be cancelled, and behind a nameserver that does not
//! answer it waits as long as resolv.conf says (10 s by default). So
//! lookups run on a few threads of their own, fed through a bounded
//! queue; whoever asks waits for the answer at most the resolver's
//! timeout, then takes "no address" (the lookup goes on and its answer,
//! if it ever comes, is kept for the next asker). One name asked by many
//! lines at once is looked up once. Answers are kept for 5 minutes, up to
//! 1,000 names, negative ones included, as fail2ban's `DNSUtils` keeps
//! them, so a name that does not resolve costs one wait, not one per line.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::filter::ipaddr::{self, Addr, Fid};
use crate::filter::{Failure, UseDns};

/// How long an asker waits for a lookup.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer is kept.
pub const KEEP_FOR: Duration = Duration::from_secs(300);
/// How many names are kept.
pub const KEEP_NAMES: usize = 1000;
/// Lookups that run at once. The threads start when names wait for
/// them, not before: most daemons never look a name up, and each idle
/// thread costs resident memory (its stack, its allocator state).
const THREADS: usize = 4;
/// How long a lookup thread waits for a name before it ends: an idle
/// daemon keeps none (ignoreself's look-up of the host's name at start
/// used to leave one for the daemon's life); starting one again costs
/// tens of microseconds against a lookup's milliseconds.
const IDLE: Duration = Duration::from_secs(1);
/// Names waiting for a lookup thread; more are answered "no address"
/// at once (and not kept), so that a flood of names stays bounded.
const QUEUE: usize = 256;

/// The addresses of a name; empty when it has none or did not answer.
pub type Answer = Arc<[IpAddr]>;

/// Looks a name up, blocking: getaddrinfo, or a stand-in in tests.
pub type Lookup = dyn Fn(&str) -> Result<Vec<IpAddr>, String> + Send + Sync;

/// A cached, bounded resolver; see the module's docs.
pub struct Resolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

struct Inner {
    state: Mutex<State>,
    /// Wakes blocking askers when an answer comes.
    answered: Condvar,
    /// Wakes async askers when an answer comes.
    notify: Notify,
    queue: SyncSender<String>,
    /// The other end of `queue`, for the lookup threads still to start.
    names: Arc<Mutex<mpsc::Receiver<String>>>,
    lookup: Arc<Lookup>,
    timeout: Duration,
    /// Set while the queue is full, so that it is logged once per flood.
    full: AtomicBool,
}

#[derive(Default)]
struct State {
    cache: HashMap<String, Cached>,
    /// Names queued or being looked up.
    inflight: HashSet<String>,
    /// Ever-growing use counter: the least recently used name goes first.
    clock: u64,
    /// Lookup threads started.
    threads: usize,
}

struct Cached {
    answer: Answer,
    until: Instant,
    used: u64,
    /// Put there by an asker that stopped waiting, not by a lookup.
    timed_out: bool,
}

impl State {
    fn get(&mut self, name: &str, now: Instant) -> Option<Answer> {
        self.clock += 1;
        let clock = self.clock;
        let c = self.cache.get_mut(name).filter(|c| c.until > now)?;
        c.used = clock;
        Some(c.answer.clone())
    }

    fn put(&mut self, name: &str, answer: Answer, timed_out: bool, now: Instant) {
        if !self.cache.contains_key(name) && self.cache.len() >= KEEP_NAMES {
            self.cache.retain(|_, c| c.until > now);
            if self.cache.len() >= KEEP_NAMES {
                if let Some(oldest) = self
                    .cache
                    .iter()
                    .min_by_key(|(_, c)| c.used)
                    .map(|(n, _)| n.clone())
                {
                    self.cache.remove(&oldest);
                }
            }
        }
        self.clock += 1;
        self.cache.insert(
            name.to_string(),
            Cached {
                answer,
                until: now + KEEP_FOR,
                used: self.clock,
                timed_out,
            },
        );
    }
}

/// Where an asker stands.
enum Step {
    Answered(Answer),
    Wait,
}

impl Resolver {
    /// A resolver that looks names up with `lookup` and waits at most
    /// `timeout` for each.
    pub fn new(lookup: Arc<Lookup>, timeout: Duration) -> Resolver {
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            answered: Condvar::new(),
            notify: Notify::new(),
            queue: tx,
            names: Arc::new(Mutex::new(rx)),
            lookup,
            timeout,
            full: AtomicBool::new(false),
        });
        Resolver { inner }
    }

    /// Starts one more lookup thread when more names wait or are being
    /// looked up than there are threads, up to [`THREADS`].
    fn grow(&self, state: &mut State) {
        if state.inflight.len() <= state.threads || state.threads >= THREADS {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        let (rx, lookup) = (self.inner.names.clone(), self.inner.lookup.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("f3b-dns-{}", state.threads))
            .spawn(move || lookup_thread(&inner, &rx, &*lookup));
        match spawned {
            Ok(_) => state.threads += 1,
            Err(e) => tracing::error!("cannot start a DNS lookup thread: {e}"),
        }
    }

    /// A resolver that asks the system (getaddrinfo).
    pub fn getaddrinfo(timeout: Duration) -> Resolver {
        Resolver::new(Arc::new(getaddrinfo), timeout)
    }

    /// The system's resolver, one for the daemon, with [`TIMEOUT`].
    pub fn system() -> &'static Resolver {
        static SYSTEM: OnceLock<Resolver> = OnceLock::new();
        SYSTEM.get_or_init(|| Resolver::getaddrinfo(TIMEOUT))
    }

    /// The answer for `name` if one is kept, without waiting.
    pub fn cached(&self, name: &str) -> Option<Answer> {
        self.lock().get(name, Instant::now())
    }

    /// The addresses of `name`, waiting at most the timeout. For async
    /// callers: the wait yields the thread.
    pub async fn resolve(&self, name: &str) -> Answer {
        let deadline = Instant::now() + self.inner.timeout;
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so that an answer given between
            // the look and the wait still wakes us.
            notified.as_mut().enable();
            if let Step::Answered(a) = self.step(name) {
                return a;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, notified).await.is_err() {
                return self.timed_out(name);
            }
        }
    }

    /// [`Resolver::resolve`] for callers that may block (fail3ban-regex, a
    /// jail's ignore list built off the runtime).
    pub fn resolve_blocking(&self, name: &str) -> Answer {
        let deadline = Instant::now() + self.inner.timeout;
        let mut state = self.lock();
        loop {
            match self.step_locked(&mut state, name) {
                Step::Answered(a) => return a,
                Step::Wait => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(state);
                return self.timed_out(name);
            }
            state = self
                .inner
                .answered
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn step(&self, name: &str) -> Step {
        let mut state = self.lock();
        self.step_locked(&mut state, name)
    }

    /// The kept answer, or the name queued for a lookup (once).
    fn step_locked(&self, state: &mut State, name: &str) -> Step {
        if let Some(a) = state.get(name, Instant::now()) {
            return Step::Answered(a);
        }
        if state.inflight.contains(name) {
            return Step::Wait;
        }
        match self.inner.queue.try_send(name.to_string()) {
            Ok(()) => {
                self.inner.full.store(false, Ordering::Relaxed);
                state.inflight.insert(name.to_string());
                self.grow(state);
                Step::Wait
            }
            Err(TrySendError::Full(_)) => {
                if !self.inner.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "{QUEUE} names are waiting for DNS already: {name} and the next ones get no address"
                    );
                }
                Step::Answered(Answer::from([]))
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("no DNS lookup thread: {name} gets no address");
                Step::Answered(Answer::from([]))
            }
        }
    }

    /// No answer in time: "no address", kept like any negative answer so
    /// that the next lines with the name do not wait again.
    fn timed_out(&self, name: &str) -> Answer {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(a) = state.get(name, now) {
            return a;
        }
        tracing::warn!(
            "Unable to find a corresponding IP address for {name}: no answer within {:?}",
            self.inner.timeout
        );
        let none = Answer::from([]);
        state.put(name, none.clone(), true, now);
        none
    }

    /// The failures of `failures` whose host is a name, one per address of
    /// the name (none when it has none), the others as they are; waits for
    /// the lookups (for one-shot tools such as fail3ban-regex).
    pub fn resolve_failures_blocking(&self, failures: &mut Vec<Failure>, use_dns: UseDns) {
        if failures.iter().all(|f| f.host_name.is_none()) {
            return;
        }
        for f in std::mem::take(failures) {
            match f.host_name.clone() {
                Some(name) => {
                    let addrs = self.resolve_blocking(&name);
                    failures.extend(f.resolved(name_fids(&name, &addrs, use_dns)));
                }
                None => failures.push(f),
            }
        }
    }
}

/// A lookup thread: takes names from the queue until the resolver is gone
/// or none came for [`IDLE`].
fn lookup_thread(
    inner: &std::sync::Weak<Inner>,
    rx: &Mutex<mpsc::Receiver<String>>,
    lookup: &Lookup,
) {
    loop {
        let name = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv_timeout(IDLE) {
                Ok(n) => n,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let Some(inner) = inner.upgrade() else { return };
                    // Names are queued under the state lock, and one that
                    // finds fewer threads than names starts a thread: with
                    // the lock held, a name is either in the queue now or
                    // comes after this thread is no longer counted.
                    let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                    match rx.try_recv() {
                        Ok(n) => n,
                        Err(_) => {
                            state.threads -= 1;
                            return;
                        }
                    }
                }
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        // An answer came meanwhile (an asker gave up waiting): a backlog
        // behind a silent nameserver drains without a wait per name.
        let known = {
            let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let known = state.get(&name, Instant::now()).is_some();
            if known {
                state.inflight.remove(&name);
            }
            known
        };
        if !known {
            let result = lookup(&name);
            let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let gave_up = state.cache.get(&name).is_some_and(|c| c.timed_out);
            let answer: Answer = match result {
                Ok(addrs) => addrs.into(),
                Err(e) => {
                    if !gave_up {
                        tracing::warn!("Unable to find a corresponding IP address for {name}: {e}");
                    }
                    Answer::from([])
                }
            };
            state.put(&name, answer, false, Instant::now());
            state.inflight.remove(&name);
        }
        inner.answered.notify_all();
        inner.notify.notify_waiters();
    }
}

/// getaddrinfo, as fail2ban asks it (any family).
fn getaddrinfo(name: &str) -> Result<Vec<IpAddr>, String> {
    (name, 0u16)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .map_err(|e| e.to_string())
}

/// fail2ban's `textToIp` for a name: its addresses as failure ids, in
/// order and once each, logged as `usedns = warn` asks.
pub fn name_fids(name: &str, addrs: &[IpAddr], use_dns: UseDns) -> Vec<Fid> {
    let mut fids: Vec<Fid> = addrs
        .iter()
        .map(|ip| ipaddr::parse(&ip.to_string(), ipaddr::Family::Any, None))
        .collect();
    fids.sort();
    fids.dedup();
    if use_dns == UseDns::Warn && !fids.is_empty() {
        let list: Vec<String> = fids.iter().map(ToString::to_string).collect();
        tracing::warn!("Determined IP using DNS Lookup: {name} = {list:?}");
    }
    fids
}

/// For `ignoreip` names and the host's own names: the same cache and
/// bounds, blocking (callers run off the runtime).
impl crate::jail::ignore::Resolver for Resolver {
    fn resolve(&self, name: &str) -> Vec<Addr> {
        let mut out: Vec<Addr> = Vec::new();
        for ip in self.resolve_blocking(name).iter() {
            if let Fid::Addr(a) = ipaddr::parse_unspec(&ip.to_string()) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A lookup that counts its calls, answers `known.example` and
    /// hangs for `hang` on anything else, then fails.
    fn counting(hang: Duration) -> (Arc<AtomicUsize>, Arc<Lookup>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let lookup: Arc<Lookup> = Arc::new(move |name: &str| {
            c.fetch_add(1, Ordering::SeqCst);
            if name == "known.example" {
                return Ok(vec!["192.0.2.7".parse().unwrap()]);
            }
            std::thread::sleep(hang);
            Err("Temporary failure in name resolution".into())
        });
        (calls, lookup)
    }

    #[test]
    fn answers_are_kept_negative_ones_too() {
        let (calls, lookup) = counting(Duration::ZERO);
        let r = Resolver::new(lookup, Duration::from_secs(5));
        assert_eq!(
            &*r.resolve_blocking("known.example"),
            ["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert!(r.resolve_blocking("nx.example").is_empty());
        for _ in 0..10 {
            r.resolve_blocking("known.example");
            r.resolve_blocking("nx.example");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(r.cached("nx.example").is_some());
    }

    /// A silent nameserver: askers give up after the timeout, all askers
    /// of one name share one lookup, and the next ask is answered at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_names_wait_once_and_together() {
        let (calls, lookup) = counting(Duration::from_millis(1500));
        let r = Arc::new(Resolver::new(lookup, Duration::from_millis(300)));
        let t = Instant::now();
        let askers: Vec<_> = (0..8)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move { r.resolve("silent.example").await })
            })
            .collect();
        for a in askers {
            assert!(a.await.unwrap().is_empty());
        }
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_millis(1000),
            "{waited:?}"
        );
        let t = Instant::now();
        assert!(r.resolve("silent.example").await.is_empty());
        assert!(t.elapsed() < Duration::from_millis(50));
        // Another name is not held up by the silent one.
        assert_eq!(r.resolve("known.example").await.len(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// No lookup thread before a name waits for one; then one per name
    /// waiting, up to THREADS, each kept for the next names.
    #[test]
    fn lookup_threads_start_when_names_wait() {
        // The silent names hang longer than the test runs.
        let (calls, lookup) = counting(Duration::from_secs(5));
        let r = Resolver::new(lookup, Duration::from_millis(50));
        let threads = || r.lock().threads;
        assert_eq!(threads(), 0);
        assert_eq!(r.resolve_blocking("known.example").len(), 1);
        assert_eq!(threads(), 1);
        assert_eq!(r.resolve_blocking("known.example").len(), 1);
        assert_eq!(threads(), 1, "a kept answer needs no thread");
        for i in 0..THREADS + 2 {
            assert!(r.resolve_blocking(&format!("silent{i}.example")).is_empty());
        }
        assert_eq!(threads(), THREADS);
        assert_eq!(calls.load(Ordering::SeqCst), 1 + THREADS);
    }

    /// A lookup thread with nothing to do for IDLE ends; the next name
    /// starts one again.
    #[test]
    fn lookup_threads_end_when_idle() {
        let (calls, lookup) = counting(Duration::ZERO);
        let r = Resolver::new(lookup, Duration::from_secs(5));
        let threads = || r.lock().threads;
        assert_eq!(r.resolve_blocking("known.example").len(), 1);
        assert_eq!(threads(), 1);
        let deadline = Instant::now() + IDLE * 5;
        while threads() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(threads(), 0, "an idle lookup thread stays");
        assert!(r.resolve_blocking("nx.example").is_empty());
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the second name looked up");
        assert_eq!(threads(), 1);
    }

    #[test]
    fn least_recently_used_name_goes_first() {
        let lookup: Arc<Lookup> = Arc::new(|_: &str| Ok(vec!["192.0.2.1".parse().unwrap()]));
        let r = Resolver::new(lookup, Duration::from_secs(5));
        let now = Instant::now();
        let mut state = r.lock();
        for i in 0..KEEP_NAMES {
            state.put(&format!("n{i}.example"), Answer::from([]), false, now);
        }
        assert!(state.get("n0.example", now).is_some());
        state.put("new.example", Answer::from([]), false, now);
        assert_eq!(state.cache.len(), KEEP_NAMES);
        assert!(state.get("n0.example", now).is_some());
        assert!(state.get("n1.example", now).is_none());
        assert!(state.get("n0.example", now + KEEP_FOR).is_none());
    }

    #[test]
    fn a_name_becomes_one_failure_per_address() {
        let f = Failure {
            failregex: 0,
            fid: None,
            ip: None,
            time: 1.0,
            matches: vec!["line".into()],
            data: Default::default(),
            users: Default::default(),
            nofail: false,
            host_name: Some("two.example".into()),
        };
        let addrs: Vec<IpAddr> = vec![
            "2001:db8::1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
        ];
        let out = f.resolved(name_fids("two.example", &addrs, UseDns::Warn));
        let ids: Vec<String> = out
            .iter()
            .map(|f| f.fid.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["192.0.2.2", "2001:db8::1"]);
        assert!(out
            .iter()
            .all(|f| f.host_name.is_none() && f.matches == ["line"]));
    }
}
