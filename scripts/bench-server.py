#!/usr/bin/python3
"""Timing helpers for scripts/bench-server.sh (writes to logs, waits for
the daemons, measures). Standard library only.

  bench-server.py jails JAIL_CONF
  bench-server.py latency NAME LOG STAMPS COUNT MAXRETRY NET
  bench-server.py floor COUNT STAMPS
  bench-server.py flood NAME LOG LINES RATE TIMEOUT -- CLIENT... status JAIL
"""

import os
import statistics
import subprocess
import sys
import time

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
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
