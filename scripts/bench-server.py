#!/usr/bin/python3
"""Timing helpers for scripts/bench-server.sh (writes to logs, waits for
the daemons, measures). Standard library only.

  bench-server.py jails JAIL_CONF
  bench-server.py latency NAME LOG STAMPS COUNT MAXRETRY NET
  bench-server.py floor COUNT STAMPS
  bench-server.py flood NAME LOG LINES RATE TIMEOUT -- CLIENT... status JAIL
  bench-server.py journal-export ENTRIES FAILURES ADDRESSES [SSHD_TENTHS] > EXPORT
  bench-server.py journal-cpu NAME PIDFILE T0 FAILURES TIMEOUT -- CLIENT... status JAIL
"""

import os
import statistics
import subprocess
import sys
import time
import zlib

FAIL = "{now} sshd[4242]: auth failure from {ip} port 22\n"
NOISE = "{now} sshd[4242]: session opened for user {n} by (uid=0)\n"


def now_text():
    return time.strftime("%Y-%m-%d %H:%M:%S")


def jails(conf):
    """The jails of a stock jail.conf, in order."""
    import configparser

    cp = configparser.RawConfigParser(strict=False, interpolation=None)
    cp.read(conf)
    for s in cp.sections():
        if s not in ("INCLUDES", "DEFAULT", "Definition"):
            print(s)


def stamped(stamps):
    """address -> time its ban action ran."""
    out = {}
    try:
        with open(stamps) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    out[parts[0]] = float(parts[1])
    except FileNotFoundError:
        pass
    return out


def latency(name, log, stamps, count, maxretry, net):
    """For `count` addresses: maxretry-1 failures, a pause, then the
    maxretry-th; the time from that write to the ban action's stamp."""
    count, maxretry = int(count), int(maxretry)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    lat = []
    for i in range(1, count + 1):
        ip = "%s.%d" % (net, i)
        line = FAIL.format(now=now_text(), ip=ip).encode()
        for _ in range(maxretry - 1):
            os.write(fd, line)
        # Let the daemon take the first failures in before timing the last.
        time.sleep(0.3)
        t0 = time.time()
        os.write(fd, FAIL.format(now=now_text(), ip=ip).encode())
        deadline = t0 + 10
        while time.time() < deadline:
            s = stamped(stamps)
            if ip in s:
                lat.append((s[ip] - t0) * 1000)
                break
            time.sleep(0.001)
        else:
            print("%s: no ban of %s within 10 s" % (name, ip), file=sys.stderr)
    os.close(fd)
    if not lat:
        print("%s latency_ms none" % name)
        return
    q = statistics.quantiles(lat, n=10, method="inclusive") if len(lat) > 1 else [lat[0]] * 9
    print(
        "%s latency_ms median %.2f p10 %.2f p90 %.2f max %.2f n %d"
        % (name, statistics.median(lat), q[0], q[8], max(lat), len(lat))
    )


def floor(count, stamps):
    """The stamping action alone: `/bin/sh -c` running the same command the
    ban action runs, started from here. No daemon can ban faster."""
    lat = []
    for _ in range(int(count)):
        t0 = time.time()
        subprocess.run(["/bin/sh", "-c", 'echo "x $(date +%%s.%%N)" > %s' % stamps])
        with open(stamps) as f:
            lat.append((float(f.read().split()[1]) - t0) * 1000)
    print("action latency_ms median %.2f min %.2f n %d" % (statistics.median(lat), min(lat), len(lat)))


def total_failed(client):
    out = subprocess.run(client, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "Total failed:" in line:
            return int(line.split("\t")[-1])
    return -1


def flood(name, log, lines, rate, timeout, client):
    """Appends `lines` lines (one in ten a failure, from 1000 addresses) in
    writes of 10,000 lines at `rate` lines/s (0: as fast as possible), then
    waits until the jail counted every failure."""
    lines, rate, timeout = int(lines), float(rate), float(timeout)
    chunk = 10000
    fails = 0
    base = max(total_failed(client), 0)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    t0 = time.time()
    written = 0
    while written < lines:
        now = now_text()
        buf = []
        for k in range(written, min(written + chunk, lines)):
            if k % 10 == 0:
                n = (k // 10) % 1000
                buf.append(FAIL.format(now=now, ip="198.18.%d.%d" % (n // 250, n % 250 + 1)))
                fails += 1
            else:
                buf.append(NOISE.format(now=now, n="u%d" % (k % 977)))
        os.write(fd, "".join(buf).encode())
        written += len(buf)
        if rate > 0:
            ahead = t0 + written / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
    t_written = time.time()
    os.close(fd)
    seen = -1
    while time.time() - t0 < timeout:
        seen = total_failed(client) - base
        if seen >= fails:
            break
        time.sleep(0.05)
    t_done = time.time()
    ok = seen >= fails
    print(
        "%s flood rate %d lines %d failures %d counted %d written_s %.2f done_s %.2f lag_s %.2f lines_per_s %d %s"
        % (
            name,
            rate,
            lines,
            fails,
            seen,
            t_written - t0,
            t_done - t0,
            t_done - t_written,
            lines / (t_done - t0),
            "complete" if ok else "TIMEOUT",
        )
    )


def addresses(n):
    """n distinct test addresses: IPv4 from the three documentation
    networks, then IPv6 from 2001:db8::/32."""
    out = []
    for net in ("192.0.2", "198.51.100", "203.0.113"):
        out.extend("%s.%d" % (net, h) for h in range(1, 251))
    k = 0
    while len(out) < n:
        k += 1
        out.append("2001:db8::%x" % k)
    return out[:n]


def journal_export(entries, failures, naddr, sshd_tenths=3):
    """A journal in export format on stdout (for systemd-journal-remote):
    `entries` entries in the hour before now, one in entries/failures an
    sshd authentication failure from `naddr` addresses in turn; in all,
    `sshd_tenths` in ten entries from sshd (the failures among them), the
    others from cron, systemd and the kernel. Each entry has the fields a real one has (about 20)."""
    entries, failures, sshd_tenths = int(entries), int(failures), int(sshd_tenths)
    addrs = addresses(int(naddr))
    every = entries // failures
    boot = "0123456789abcdef0123456789abcdef"
    machine = "fedcba9876543210fedcba9876543210"
    t0 = int((time.time() - 3600) * 1e6)
    step = int(3000 * 1e6 / entries)
    out = sys.stdout.buffer
    fails = 0
    for i in range(entries):
        t = t0 + i * step
        pid = 1000 + i % 30000
        if i % every == 0 and fails < failures:
            ip = addrs[fails % len(addrs)]
            fails += 1
            unit, comm, exe, msg = (
                "sshd.service",
                "sshd",
                "/usr/sbin/sshd",
                "Failed password for invalid user u%d from %s port %d ssh2" % (i % 97, ip, 1024 + i % 60000),
            )
        elif i % 10 < sshd_tenths:
            unit, comm, exe = "sshd.service", "sshd", "/usr/sbin/sshd"
            msg = (
                "pam_unix(sshd:session): session opened for user u%d(uid=1000) by (uid=0)" % (i % 97)
                if i % 2
                else "pam_unix(sshd:session): session closed for user u%d" % (i % 97)
            )
        elif i % 10 < sshd_tenths + (10 - sshd_tenths) * 3 // 7:
            unit, comm, exe = "cron.service", "cron", "/usr/sbin/cron"
            msg = "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"
        elif i % 10 < 9 or sshd_tenths == 10:
            unit, comm, exe = "session-%d.scope" % (i % 50), "systemd", "/lib/systemd/systemd"
            msg = "Started session-%d.scope - Session %d of User u%d." % (i % 50, i % 50, i % 97)
        else:
            unit, comm, exe = None, None, None
            msg = "audit: type=1400 audit(%d.%03d:%d): apparmor=\"ALLOWED\" operation=\"open\"" % (
                t // 1000000,
                t // 1000 % 1000,
                i,
            )
        f = [
            ("__REALTIME_TIMESTAMP", t),
            ("__MONOTONIC_TIMESTAMP", 1000000 + i * step),
            ("_BOOT_ID", boot),
            ("_MACHINE_ID", machine),
            ("_HOSTNAME", "web1"),
            ("PRIORITY", 6),
        ]
        if unit is None:
            f += [("_TRANSPORT", "kernel"), ("SYSLOG_FACILITY", 0), ("SYSLOG_IDENTIFIER", "kernel")]
        else:
            f += [
                ("_TRANSPORT", "syslog"),
                ("SYSLOG_FACILITY", 4 if comm == "sshd" else 3),
                ("SYSLOG_IDENTIFIER", comm),
                ("SYSLOG_PID", pid),
                ("SYSLOG_TIMESTAMP", time.strftime("%b %d %H:%M:%S ", time.localtime(t / 1e6))),
                ("_PID", pid),
                ("_UID", 0),
                ("_GID", 0),
                ("_COMM", comm),
                ("_EXE", exe),
                ("_CMDLINE", "%s: [priv]" % comm),
                ("_CAP_EFFECTIVE", "1ffffffffff"),
                ("_SELINUX_CONTEXT", "unconfined"),
                ("_SYSTEMD_CGROUP", "/system.slice/%s" % unit),
                ("_SYSTEMD_UNIT", unit),
                ("_SYSTEMD_SLICE", "system.slice"),
                ("_SYSTEMD_INVOCATION_ID", "%032x" % zlib.crc32(unit.encode())),
                ("_SOURCE_REALTIME_TIMESTAMP", t - 7),
            ]
        f.append(("MESSAGE", msg))
        out.write("".join("%s=%s\n" % kv for kv in f).encode() + b"\n")


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open("/proc/%d/stat" % pid) as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def journal_cpu(name, pidfile, t0, failures, timeout, client):
    """Waits until the jail counted `failures` failures (polling `status`
    every 0.1 s); prints the server's CPU time and the time since t0 (its
    start)."""
    t0, failures, timeout = float(t0), int(failures), float(timeout)
    with open(pidfile) as fh:
        pid = int(fh.read().split()[0])
    seen = -1
    while time.time() - t0 < timeout:
        seen = total_failed(client)
        if seen >= failures:
            break
        time.sleep(0.1)
    t_done = time.time()
    cpu = proc_cpu_s(pid)
    print(
        "%s journal failures %d counted %d cpu_s %.2f wall_s %.2f %s"
        % (name, failures, seen, cpu, t_done - t0, "complete" if seen >= failures else "TIMEOUT")
    )


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "jails":
        jails(*args)
    elif cmd == "floor":
        floor(*args)
    elif cmd == "latency":
        latency(*args)
    elif cmd == "flood":
        sep = args.index("--")
        flood(*args[:sep], client=args[sep + 1 :])
    elif cmd == "journal-export":
        journal_export(*args)
    elif cmd == "journal-cpu":
        sep = args.index("--")
        journal_cpu(*args[:sep], client=args[sep + 1 :])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
