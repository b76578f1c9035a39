#!/bin/bash
# fail3ban-server against the reference fail2ban-server (Debian 1.0.2), side
# by side in one run, same configuration, same kind of log:
#
#   1. ban latency: time from appending the maxretry-th failure line to the
#      ban action having run (it stamps `date +%s.%N`), over BENCH_BANS
#      addresses; median, p10, p90, max;
#   2. resident memory (VmRSS) after start with every jail of the stock
#      jail.conf that both daemons start, logs pointing at files made here;
#   3. one jail fed BENCH_LINES lines at BENCH_RATE lines/s, then as fast
#      as possible, in writes of 10,000 lines (one line in ten a failure):
#      when does `status` show every failure counted;
#   4. the journal: a journal of BENCH_JOURNAL entries (one in ten an sshd
#      failure, from 1,000 addresses, among other sshd and other units'
#      entries, written with systemd-journal-remote from export format)
#      read by the stock sshd jail with `backend = systemd`: each server's
#      CPU time (utime + stime) from its start until `status sshd` shows
#      every failure counted, one daemon after the other.
#
#   scripts/bench-server.sh           all four
#   scripts/bench-server.sh journal   the journal alone (its own record)
#
# Each daemon runs in its own network namespace when `ip netns` works (as
# root), else side by side (the output says which). Every wait is bounded.
# Writes a dated result file under benches/results/.
#
# Environment: BENCH_BANS (default 30), BENCH_LINES (default 1000000),
# BENCH_RATE (default 100000), BENCH_TIMEOUT (seconds per flood; 600),
# BENCH_PROFILE (the cargo profile of fail3ban; default dist),
# BENCH_JOURNAL (entries; default 100000), BENCH_JOURNAL_SSHD (how many
# entries in ten are sshd's, the failures among them; default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
. scripts/record.sh
# Before anything is written: the record, once created, would make it dirty.
described=$(git describe --always --dirty)

bans=${BENCH_BANS:-30}
lines=${BENCH_LINES:-1000000}
rate=${BENCH_RATE:-100000}
limit=${BENCH_TIMEOUT:-600}
jentries=${BENCH_JOURNAL:-100000}
jsshd=${BENCH_JOURNAL_SSHD:-3}
mode=${1:-all}
all=()
case $mode in all | journal) ;; *) echo "usage: $0 [journal]" >&2; exit 2 ;; esac
work=$top/target/bench-server
ref=$top/target/reference/root
py=/usr/bin/python3
helper=$top/scripts/bench-server.py

./scripts/fetch-reference.sh
# The binaries as the Debian package ships them (Cargo.toml, profile dist).
profile=${BENCH_PROFILE:-dist}
cargo build --profile "$profile" --quiet --bin fail3ban-server --bin fail3ban-client
export PYTHONPATH=$ref/usr/lib/python3/dist-packages
if ! $py -c 'import pyinotify' 2>/dev/null; then
    echo "WARNING: python3-pyinotify missing: fail2ban falls back to polling (apt-get install python3-pyinotify)" >&2
fi

f3_server=$top/target/$profile/fail3ban-server
f3_client=$top/target/$profile/fail3ban-client
f2_server=("$py" "$ref/usr/bin/fail2ban-server")
f2_client=("$py" "$ref/usr/bin/fail2ban-client")

# Network namespaces, one per daemon, when we may make them.
# (Not for the journal alone: it bans nothing.)
netns=no
if [ "$mode" = all ] && [ "$(id -u)" = 0 ] && ip netns add f3bench-probe 2>/dev/null; then
    ip netns del f3bench-probe
    netns=yes
fi
isolation="each daemon in its own network namespace (ip netns)"
[ $netns = yes ] || isolation="side by side, no network namespaces (ip netns unavailable: not root or no iproute2)"
[ "$mode" = all ] || isolation="one daemon after the other, no network namespaces (nothing is banned)"
echo "isolation: $isolation"

pids=()
cleanup() {
    for w in f2 f3; do
        [ -f "$work/$w/pid" ] && kill "$(cat "$work/$w/pid")" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ $netns = yes ]; then
        ip netns del f3bench-f2 2>/dev/null || true
        ip netns del f3bench-f3 2>/dev/null || true
    fi
}
trap cleanup EXIT

in_ns() { # NAME CMD...
    local ns=$1
    shift
    if [ $netns = yes ]; then ip netns exec "f3bench-$ns" "$@"; else "$@"; fi
}

client() { # f2|f3 ARGS...
    local w=$1
    shift
    if [ "$w" = f2 ]; then
        "${f2_client[@]}" -c "$work/f2/conf" -s "$work/f2/sock" "$@"
    else
        "$f3_client" -c "$work/f3/conf" -s "$work/f3/sock" "$@"
    fi
}

# Starts daemon $1 on its tree; waits (bounded) until it answers.
start() {
    local w=$1
    rm -f "$work/$w/sock" "$work/$w/pid"
    if [ "$w" = f2 ]; then
        in_ns f2 "${f2_server[@]}" -f -x -c "$work/f2/conf" -s "$work/f2/sock" -p "$work/f2/pid" \
            >"$work/f2/stdout" 2>&1 &
    else
        in_ns f3 "$f3_server" -f -x -c "$work/f3/conf" -s "$work/f3/sock" -p "$work/f3/pid" \
            >"$work/f3/stdout" 2>&1 &
    fi
    pids+=($!)
    for _ in $(seq 600); do
        if [ -f "$work/$w/pid" ] && client "$w" ping >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "FAILED: $w did not answer within 60 s" >&2
    tail -20 "$work/$w/stdout" "$work/$w/server.log" >&2 || true
    return 1
}

stop() {
    local w=$1 pid
    pid=$(cat "$work/$w/pid" 2>/dev/null || true)
    client "$w" stop >/dev/null 2>&1 || true
    for _ in $(seq 200); do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$(cat "$work/$1/pid")/status"; }

# A minimal tree: fail2ban.conf, a filter and a stamping action; the jails
# come from $2 (jail.conf text).
small_tree() { # f2|f3 JAILS
    local w=$1 d=$work/$1
    rm -rf "$d"
    mkdir -p "$d/conf/filter.d" "$d/conf/action.d" "$d/logs"
    cat >"$d/conf/fail2ban.conf" <<EOF
[Definition]
loglevel = INFO
logtarget = $d/server.log
syslogsocket = auto
socket = $d/sock
pidfile = $d/pid
allowipv6 = auto
dbfile = $d/db.sqlite3
dbpurgeage = 1d
EOF
    cat >"$d/conf/filter.d/bench.conf" <<'EOF'
[Definition]
failregex = ^ sshd\[\d+\]: auth failure from <HOST> port \d+$
datepattern = {^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S
EOF
    cat >"$d/conf/action.d/stamp.conf" <<'EOF'
[Definition]
actionban = echo "<ip> $(date +%%s.%%N)" >> <stamps>
[Init]
stamps = /dev/null
EOF
    printf '%s\n' "$2" >"$d/conf/jail.conf"
}

stock_tree() { # f2|f3
    local w=$1 d=$work/$1
    rm -rf "$d"
    mkdir -p "$d/logs"
    cp -r "$ref/etc/fail2ban" "$d/conf"
    printf '[Definition]\nlogtarget = %s/server.log\ndbfile = %s/db.sqlite3\n' "$d" "$d" >"$d/conf/fail2ban.local"
    for j in "${all[@]}"; do : >"$d/logs/$j.log"; done
}

# 4: the journal. The stock tree and sshd jail, reading one journal
# directory; no bans (maxretry out of reach), so what is measured is
# reading, formatting and matching the entries.
journal_bench() {
    local w d jdir=$work/journal fails=$((jentries / 10)) t0
    rm -rf "$jdir"
    mkdir -p "$jdir"
    $py "$helper" journal-export "$jentries" "$fails" 1000 "$jsshd" >"$work/journal.export"
    /lib/systemd/systemd-journal-remote --output="$jdir/bench.journal" - <"$work/journal.export" 2>/dev/null
    rm -f "$work/journal.export"
    # libsystemd's own share, the floor of any reader built on it.
    if cc -O2 -o "$work/journal-floor" benches/journal-floor.c -l:libsystemd.so.0 2>/dev/null; then
        "$work/journal-floor" "$jdir" | tee -a "$out"
    else
        echo "WARNING: no C compiler or libsystemd: the libsystemd floor is not measured" >&2
    fi
    for w in f3 f2; do
        d=$work/$w
        stock_tree "$w"
        # ignoreself off: the bench's addresses are test addresses, which a
        # machine may have (this one's eth0 is 192.0.2.2/24): one of its
        # own would never be counted, and the wait for every failure hang.
        printf '[DEFAULT]\nfindtime = 1d\nmaxretry = 1000000000\nignoreself = false\n[sshd]\nenabled = true\nbackend = systemd[journalpath=%s]\naction = dummy[target=%s/dummy]\n' \
            "$jdir" "$d" >"$d/conf/jail.local"
        echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
        t0=$(date +%s.%N)
        start "$w"
        if [ "$w" = f2 ]; then
            $py "$helper" journal-cpu fail2ban "$d/pid" "$t0" "$fails" "$limit" -- \
                "${f2_client[@]}" -c "$d/conf" -s "$d/sock" status sshd | tee -a "$out"
        else
            $py "$helper" journal-cpu fail3ban "$d/pid" "$t0" "$fails" "$limit" -- \
                "$f3_client" -c "$d/conf" -s "$d/sock" status sshd | tee -a "$out"
        fi
        stop "$w"
    done
}
journal_field() { awk -v n="$1" -v k="$2" '$1 == n && $2 == "journal" { for (i = 2; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' "$out"; }
journal_rows() {
    local f2cpu f3cpu
    f2cpu=$(journal_field fail2ban cpu_s)
    f3cpu=$(journal_field fail3ban cpu_s)
    echo "| journal, $jentries entries ($((jentries / 10)) sshd failures, $jsshd in 10 from sshd), stock sshd jail, backend = systemd: CPU s from start until every failure counted | $f2cpu | $f3cpu ($(awk -v a="$f2cpu" -v b="$f3cpu" 'BEGIN { if (b > 0) printf "%.0fx less", a / b; else print "-" }')) |"
    echo "| journal: seconds from start until every failure counted | $(journal_field fail2ban wall_s) | $(journal_field fail3ban wall_s) |"
    echo "| journal: libsystemd alone (benches/journal-floor.c: the same matches, every field, the time), CPU s | | $(journal_field libsystemd cpu_s) |"
}
header() { # TITLE COMMAND
    echo "# $1, $stamp"
    echo
    echo "Command: $2"
    echo
    echo "- fail3ban: $described ($("$f3_server" -V), cargo profile $profile)"
    echo "- fail2ban: $("$py" "$ref/usr/bin/fail2ban-server" -V | head -1) (Debian 1.0.2-2), $($py -V), pyinotify $($py -c 'import pyinotify; print(pyinotify.__version__)' 2>/dev/null || echo missing), python3-systemd $(dpkg-query -W -f '${Version}' python3-systemd 2>/dev/null || echo missing)"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r), libsystemd $(dpkg-query -W -f '${Version}' libsystemd0 2>/dev/null || echo unknown)"
    echo "- isolation: $isolation"
    echo "- load average before each journal run: see the raw figures (other jobs share the machine)"
    echo
}
stamp=$(date -u +%Y-%m-%d)

mkdir -p "$work" benches/results
out=$work/figures
: >"$out"
if [ "$mode" = journal ]; then
    journal_bench
    result=$(record_path "$stamp-$(hostname -s)-journal")
    {
        header "fail3ban-server against fail2ban-server on the journal" "\`scripts/bench-server.sh journal\` (BENCH_JOURNAL=$jentries BENCH_JOURNAL_SSHD=$jsshd BENCH_PROFILE=$profile)"
        echo "| measure | fail2ban | fail3ban |"
        echo "| --- | ---: | ---: |"
        journal_rows
        echo
        raw_figures "$out"
    } >"$result"
    echo "wrote $result"
    cat "$result"
    exit 0
fi
if [ $netns = yes ]; then
    ip netns add f3bench-f2
    ip netns add f3bench-f3
fi

# 1 and 3: one jail for latency, one for the flood.
for w in f2 f3; do
    d=$work/$w
    small_tree "$w" "[DEFAULT]
backend = auto
findtime = 1d
bantime = 1h
ignoreself = false
[lat]
enabled = true
filter = bench
maxretry = 3
logpath = $d/logs/lat.log
action = stamp[stamps=$d/stamps]
[flood]
enabled = true
filter = bench
maxretry = 1000000000
logpath = $d/logs/flood.log
action = stamp[stamps=$d/flood-stamps]"
    : >"$d/logs/lat.log"
    : >"$d/logs/flood.log"
done
start f2
start f3
echo "ban latency ($bans bans each)"
$py "$helper" latency fail3ban "$work/f3/logs/lat.log" "$work/f3/stamps" "$bans" 3 192.0.2 | tee -a "$out"
$py "$helper" latency fail2ban "$work/f2/logs/lat.log" "$work/f2/stamps" "$bans" 3 192.0.2 | tee -a "$out"
$py "$helper" floor "$bans" "$work/floor-stamp" | tee -a "$out"

for r in "$rate" 0; do
    echo "flood: $lines lines at $r lines/s (0: as fast as possible)"
    $py "$helper" flood fail3ban "$work/f3/logs/flood.log" "$lines" "$r" "$limit" -- \
        "$f3_client" -c "$work/f3/conf" -s "$work/f3/sock" status flood | tee -a "$out"
    $py "$helper" flood fail2ban "$work/f2/logs/flood.log" "$lines" "$r" "$limit" -- \
        "${f2_client[@]}" -c "$work/f2/conf" -s "$work/f2/sock" status flood | tee -a "$out"
done
f3_flood_rss=$(rss_kb f3)
f2_flood_rss=$(rss_kb f2)
echo "fail3ban flood_rss_kb $f3_flood_rss" | tee -a "$out"
echo "fail2ban flood_rss_kb $f2_flood_rss" | tee -a "$out"
stop f3
stop f2

# 2: memory with the stock tree and every jail of jail.conf that both start.
mapfile -t all < <($py "$helper" jails "$ref/etc/fail2ban/jail.conf")
jail_local() { # f2|f3 JAILS...
    local w=$1 d=$work/$1
    shift
    {
        printf '[DEFAULT]\nbackend = auto\n'
        for j in "$@"; do
            printf '[%s]\nenabled = true\nbackend = auto\nlogpath = %s/logs/%s.log\naction = dummy[target=%s/dummy]\n' \
                "$j" "$d" "$j" "$d"
        done
    } >"$d/conf/jail.local"
}
running() { client "$1" status | sed -n 's/.*Jail list:\t//p' | tr -d ' ' | tr ',' '\n' | sort; }
# fail2ban answers ping before its jails are configured (asynchronously):
# waits until the jail list is non-empty and the same for a second.
settled() { # f2|f3
    local last="" now
    for _ in $(seq 120); do
        now=$(running "$1" 2>/dev/null || true)
        if [ -n "$now" ] && [ "$now" = "$last" ]; then return 0; fi
        last=$now
        sleep 1
    done
    echo "WARNING: $1's jail list did not settle within 120 s" >&2
}

for w in f2 f3; do stock_tree "$w"; jail_local "$w" "${all[@]}"; done
start f2
start f3
settled f2
settled f3
common=$(comm -12 <(running f2) <(running f3))
if [ "$(running f2)" != "$common" ] || [ "$(running f3)" != "$common" ]; then
    echo "jails started by one daemon only: fail2ban: $(comm -23 <(running f2) <(running f3) | tr '\n' ' ')fail3ban: $(comm -13 <(running f2) <(running f3) | tr '\n' ' ')"
    stop f3
    stop f2
    mapfile -t keep <<<"$common"
    for w in f2 f3; do jail_local "$w" "${keep[@]}"; done
    start f2
    start f3
    settled f2
    settled f3
fi
njails=$(running f3 | wc -l)
[ "$(running f2 | wc -l)" = "$njails" ] || echo "WARNING: fail2ban runs $(running f2 | wc -l) jails, fail3ban $njails" >&2
sleep 5
f3_rss=$(rss_kb f3)
f2_rss=$(rss_kb f2)
echo "stock jails enabled: $njails of ${#all[@]}" | tee -a "$out"
echo "fail3ban rss_kb $f3_rss" | tee -a "$out"
echo "fail2ban rss_kb $f2_rss" | tee -a "$out"
stop f3
stop f2
journal_bench

# The record.
field() { awk -v n="$1" -v k="$2" '$1 == n && $2 != "flood" { for (i = 2; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' "$out"; }
flood() { awk -v n="$1" -v r="$2" -v k="$3" '$1 == n && $2 == "flood" && $4 == r { for (i = 2; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' "$out"; }
result=$(record_path "$stamp-$(hostname -s)-server")
{
    header "fail3ban-server against fail2ban-server" "\`scripts/bench-server.sh\` (BENCH_BANS=$bans BENCH_LINES=$lines BENCH_RATE=$rate BENCH_JOURNAL=$jentries BENCH_JOURNAL_SSHD=$jsshd BENCH_PROFILE=$profile)"
    echo "| measure | fail2ban | fail3ban |"
    echo "| --- | ---: | ---: |"
    echo "| ban latency, median ms ($bans bans) | $(field fail2ban median) | $(field fail3ban median) |"
    echo "| ban latency, p90 ms | $(field fail2ban p90) | $(field fail3ban p90) |"
    echo "| ban latency, max ms | $(field fail2ban max) | $(field fail3ban max) |"
    echo "| the ban action alone (sh + date, no daemon), median ms | $(field action median) | $(field action median) |"
    echo "| RSS after start, $njails stock jails, KiB | $f2_rss | $f3_rss |"
    echo "| flood at $rate lines/s: lines/s until every failure counted | $(flood fail2ban "$rate" lines_per_s) | $(flood fail3ban "$rate" lines_per_s) |"
    echo "| flood at $rate lines/s: seconds behind the writer at the end | $(flood fail2ban "$rate" lag_s) | $(flood fail3ban "$rate" lag_s) |"
    echo "| flood as fast as possible: lines/s until every failure counted | $(flood fail2ban 0 lines_per_s) | $(flood fail3ban 0 lines_per_s) |"
    echo "| RSS after both floods (2,000,000 lines, 1,000 failing addresses), KiB | $f2_flood_rss | $f3_flood_rss |"
    journal_rows
    echo
    raw_figures "$out"
} >"$result"
echo "wrote $result"
cat "$result"
