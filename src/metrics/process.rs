//! The process' own numbers, read from /proc at scrape time under the
//! names every Prometheus client uses for them.

/// Memory, CPU time, descriptors and start time of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub resident_memory_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    /// Seconds since the epoch.
    pub start_time_seconds: f64,
}

/// This process' sample; `None` without /proc. Blocking (reads files):
/// call it off the runtime threads.
pub fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    // SAFETY: sysconf only reads a constant of the system.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    from_stat(&stat, boot, ticks as f64, page as u64, open_fds)
}

/// The btime line of /proc/stat: the boot time in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A sample from /proc/PID/stat (see proc(5)): the fields after the
/// command name, which may itself hold spaces and parentheses.
fn from_stat(stat: &str, boot: f64, ticks: f64, page: u64, open_fds: u64) -> Option<ProcessSample> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime, start, rss) = (field(14)?, field(15)?, field(22)?, field(24)?);
    Some(ProcessSample {
        resident_memory_bytes: rss * page,
        cpu_seconds: (utime + stime) as f64 / ticks,
        open_fds,
        start_time_seconds: boot + start as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_a_hostile_name() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 12345678 300 18446744073709551615";
        let s = from_stat(stat, 1_700_000_000.0, 100.0, 4096, 7).unwrap();
        assert_eq!(s.resident_memory_bytes, 300 * 4096);
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.open_fds, 7);
    }

    #[test]
    fn own_process() {
        let s = sample().expect("/proc");
        assert!(s.resident_memory_bytes > 0 && s.open_fds > 0);
        assert!(boot_time("cpu 1\nbtime 1700000000\n") == Some(1_700_000_000.0));
    }
}
