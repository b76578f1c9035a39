#!/usr/bin/python3
"""Helpers for scripts/bench-bulk.sh, run inside a daemon's network
namespace. Standard library only.

  bench-bulk.py latency NAME LOG COUNT SET        ban latency to the set
  bench-bulk.py burst NAME LOG COUNT SET TIMEOUT  COUNT bans in one write
  bench-bulk.py preload DB JAIL COUNT             COUNT active bans in a db
  bench-bulk.py restore NAME COUNT SET TIMEOUT    wait for COUNT in the set

SET is `ipset:NAME` or `nft:FAMILY TABLE SET`.
"""

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time

# One sshd process per connection, as sshd logs: the stock filter keys
# its multi-line cache on the pid.
LINE = "{now} vm sshd[{pid}]: Invalid user x from {ip} port 22\n"


def now_text():
    return time.strftime("%b %d %H:%M:%S")


def v6(i):
    """The i-th address of 2001:db8::/32 used here (IPv4's documentation
    ranges are too small for 20,000)."""
    return "2001:db8::%x:%x" % (i >> 16, i & 0xFFFF)


def contains(setspec, ip):
    kind, name = setspec.split(":", 1)
    if kind == "ipset":
        cmd = ["ipset", "test", name, ip]
    else:
        cmd = ["nft", "get", "element"] + name.split() + ["{", ip, "}"]
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def count(setspec):
    kind, name = setspec.split(":", 1)
    if kind == "ipset":
        out = subprocess.run(["ipset", "list", name, "-t"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Number of entries:"):
                return int(line.split(":")[1])
        return 0
    out = subprocess.run(["nft", "list", "set"] + name.split(), capture_output=True, text=True).stdout
    return out.count("2001:db8:") + out.count("192.0.2.")


def latency(name, log, n, setspec):
    """One failure (maxretry 1) per address, then the time until the
    address is in the set; a pause between bans."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    lat = []
    for i in range(1, int(n) + 1):
        ip = "192.0.2.%d" % i
        time.sleep(0.3)
        t0 = time.time()
        os.write(fd, LINE.format(now=now_text(), pid=1000 + i, ip=ip).encode())
        while time.time() < t0 + 10:
            if contains(setspec, ip):
                lat.append((time.time() - t0) * 1000)
                break
        else:
            print("%s: %s not in the set within 10 s" % (name, ip), file=sys.stderr)
    os.close(fd)
    if not lat:
        print("%s latency_ms none" % name)
        return
    q = statistics.quantiles(lat, n=10, method="inclusive") if len(lat) > 1 else [lat[0]] * 9
    print("%s latency_ms median %.1f p90 %.1f max %.1f n %d"
          % (name, statistics.median(lat), q[8], max(lat), len(lat)))


def wait_count(name, what, n, setspec, limit, t0):
    done = 0
    while time.time() < t0 + limit:
        done = count(setspec)
        if done >= n:
            print("%s %s_s %.2f n %d" % (name, what, time.time() - t0, done))
            return
        time.sleep(0.05)
    print("%s %s_s >%d done %d of %d" % (name, what, limit, done, n))


def burst(name, log, n, setspec, limit):
    n, limit = int(n), int(limit)
    now = now_text()
    text = "".join(LINE.format(now=now, pid=100000 + i, ip=v6(0x10000 + i)) for i in range(n))
    t0 = time.time()
    with open(log, "a") as f:
        f.write(text)
    wait_count(name, "burst", n, setspec, limit, t0)


def preload(db, jail, n):
    """n active bans (a day long, from now) of jail, in fail2ban's
    tables, which fail3ban's store shares."""
    t = int(time.time())
    data = json.dumps({"matches": [], "failures": 1})
    c = sqlite3.connect(db)
    c.execute("DELETE FROM bans WHERE jail = ?", (jail,))
    c.execute("DELETE FROM bips WHERE jail = ?", (jail,))
    rows = [(jail, v6(0x20000 + i), t, 86400, 1, data) for i in range(int(n))]
    c.executemany("INSERT INTO bans(jail, ip, timeofban, bantime, bancount, data) VALUES (?,?,?,?,?,?)", rows)
    c.executemany("INSERT INTO bips(jail, ip, timeofban, bantime, bancount, data) VALUES (?,?,?,?,?,?)", rows)
    c.commit()
    c.close()


def restore(name, n, setspec, limit, t0):
    wait_count(name, "restore", int(n), setspec, int(limit), float(t0))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"latency": latency, "burst": burst, "preload": preload, "restore": restore}[cmd](*args)
