#!/usr/bin/python3
"""Writes link/hot-text.ld: the functions fail3ban-server runs when it starts
with every stock jail, bans an address and answers status, placed together
at the front of its code.

The kernel maps a binary's code into a process 64 KiB around each page
that is first touched. Spread over the whole 9 MB of code, the few hundred
KiB a daemon runs touch most of it; gathered in one place they touch little
else. The linker script names input sections by pattern, without the hash
part of a symbol (Rust's `17h<16 hex>E`, LLVM's `.llvm.<n>`, the crate
disambiguators of v0 names), so that it keeps working as the code changes;
a function it does not name is laid out as before.

    scripts/hot-text.py            (needs valgrind; run from the repository)

Builds the dist profile, runs the server under callgrind with the stock
jail.conf of the reference fail2ban (scripts/fetch-reference.sh), and
rewrites link/hot-text.ld. Run it again after large changes; a stale script
only costs memory, never correctness.
"""

import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(TOP, "link", "hot-text.ld")
BIN = os.path.join(TOP, "target", "dist")
REF = os.path.join(TOP, "target", "reference", "root", "etc", "fail2ban")



def stock_jails(conf):
    """The jails of a stock jail.conf, in order."""
    cp = configparser.RawConfigParser(strict=False, interpolation=None)
    cp.read(conf)
    return [s for s in cp.sections() if s not in ("INCLUDES", "DEFAULT", "Definition")]


def run(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def profile(work):
    """Runs the server under callgrind; returns the callgrind output path."""
    conf = os.path.join(work, "conf")
    logs = os.path.join(work, "logs")
    shutil.copytree(REF, conf)
    os.mkdir(logs)
    with open(os.path.join(conf, "fail2ban.local"), "w") as f:
        f.write("[Definition]\nlogtarget = %s/server.log\ndbfile = %s/db.sqlite3\n" % (work, work))
    jails = stock_jails(os.path.join(conf, "jail.conf"))
    with open(os.path.join(conf, "jail.local"), "w") as f:
        f.write("[DEFAULT]\nbackend = auto\n")
        for j in jails:
            open(os.path.join(logs, j + ".log"), "w").close()
            f.write("[%s]\nenabled = true\nbackend = auto\nlogpath = %s/%s.log\naction = dummy[target=%s/dummy]\n"
                    % (j, logs, j, work))
    out = os.path.join(work, "callgrind.out")
    sock = os.path.join(work, "sock")
    client = [os.path.join(BIN, "fail3ban-client"), "-c", conf, "-s", sock]
    server = subprocess.Popen(
        ["valgrind", "-q", "--tool=callgrind", "--callgrind-out-file=" + out,
         os.path.join(BIN, "fail3ban-server"), "-f", "-x", "-c", conf, "-s", sock,
         "-p", os.path.join(work, "pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if subprocess.run(client + ["ping"], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            sys.exit("the server did not answer within 300 s")
        time.sleep(5)
        stamp = time.strftime("%b %d %H:%M:%S")
        with open(os.path.join(logs, "sshd.log"), "a") as f:
            for port in range(40000, 40006):
                f.write("%s bench sshd[4242]: Failed password for root from 192.0.2.10 "
                        "port %d ssh2\n" % (stamp, port))
        for _ in range(120):
            if b"192.0.2.10" in subprocess.run(client + ["banned"], capture_output=True).stdout:
                break
            time.sleep(0.5)
        else:
            sys.exit("no ban within 60 s")
        for cmd in (["status"], ["status", "sshd"], ["get", "sshd", "bantime"]):
            run(*client, *cmd, stdout=subprocess.DEVNULL)
        run(*client, "stop", stdout=subprocess.DEVNULL)
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
    return out


def executed(callgrind_out):
    """Names of the functions callgrind saw run, in first-seen order."""
    names, order, seen = {}, [], set()
    for line in open(callgrind_out, errors="replace"):
        m = re.match(r"^c?fn=\((\d+)\)(?: (.*))?", line)
        if not m:
            continue
        key, name = m.groups()
        if name:
            names[key] = re.sub(r"'\d+$", "", name)
        name = names.get(key)
        if name and name not in seen:
            seen.add(name)
            order.append(name)
    return order


def symbols(binary, demangle):
    args = ["nm", "--defined-only"] + (["-C"] if demangle else []) + [binary]
    rows = subprocess.run(args, capture_output=True, text=True, check=True).stdout.splitlines()
    return [r.split(" ", 2)[2] if r.count(" ") >= 2 and r.split(" ", 2)[1] in "tTwW" else None
            for r in rows]


# Where compilers put a function `f` besides `.text.f`: LLVM a function it
# thinks cold in `.text.unlikely.f`; GCC (the C of SQLite, PCRE2, aws-lc) a
# constructor, which runs at every start, in `.text.startup.f` and a
# destructor in `.text.exit.f`.
PREFIXES = (".text.", ".text.unlikely.", ".text.startup.", ".text.exit.")

# Code a plain start runs that callgrind's run did not show (found with
# `perf record -e page-faults` on a start outside valgrind: the first
# touches of code outside .text.hot): tokio's pidfd reaper, which waits for
# the actions' shells, and std's reading of the cgroup limits, whose path
# depends on the cgroups the server starts in. Each function missed costs
# a fault-around window of code (up to 128 KiB) in every daemon.
ALWAYS = ("*pidfd_reaper*", "*3std3sys6thread4unix7cgroups*")


def pattern(sym):
    """Section patterns for `sym` that do not depend on its hashes."""
    p = re.sub(r"17h[0-9a-f]{16}E$", "17h*", sym)
    p = re.sub(r"\.llvm\.\d+$", ".llvm.*", p)
    if p.startswith("_R"):
        p = re.sub(r"Cs[0-9a-zA-Z]+_", "Cs*_", p)
    return " ".join(prefix + p for prefix in PREFIXES)


def main():
    run("./scripts/fetch-reference.sh", cwd=TOP)
    run("cargo", "build", "--quiet", "--profile", "dist", "--bin", "fail3ban-server",
        "--bin", "fail3ban-client", cwd=TOP)
    binary = os.path.join(BIN, "fail3ban-server")
    with tempfile.TemporaryDirectory(prefix="hot-text-") as work:
        ran = executed(profile(work))
    raw, plain = symbols(binary, False), symbols(binary, True)
    by_name = {}
    for sym, name in zip(raw, plain):
        if sym:
            by_name.setdefault(re.sub(r"::h[0-9a-f]{16}$", "", name), []).append(sym)
    patterns, seen = [], set()
    for p in ALWAYS:
        patterns.append(".text.%s" % p)
    for name in ran:
        for sym in by_name.get(name, []):
            p = pattern(sym)
            if p not in seen:
                seen.add(p)
                patterns.append(p)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("/* Written by scripts/hot-text.py: the code fail3ban-server runs to start,\n"
                " * ban and answer, laid out first (see the script for why). */\n")
        f.write("SECTIONS\n{\n  .text.hot : {\n")
        for p in patterns:
            f.write("    *(%s)\n" % p)
        f.write("  }\n}\nINSERT BEFORE .text;\n")
    print("%s: %d patterns from %d functions run" % (os.path.relpath(OUT, TOP), len(patterns), len(ran)))


if __name__ == "__main__":
    main()
