#!/bin/bash
# Bans at scale: fail3ban-server against the reference fail2ban-server
# (Debian 1.0.2), each in its own network namespace, same stock tree, the
# stock sshd filter, maxretry 1, and a stock set-based action
# (BENCH_ACTION: iptables-ipset, or nftables-multiport):
#
#   1. ban latency: from appending a failure line to the address being in
#      the firewall's set (BENCH_BANS addresses, one at a time);
#   2. a burst: 5,000 failing addresses in one write, until all are in the
#      set;
#   3. restore: 20,000 active bans preloaded into each daemon's database,
#      from the start command until all are in the set.
#
# Each wait is bounded by BENCH_TIMEOUT seconds (120): a daemon that has
# not finished by then is reported as "> 120 s, N done" and killed.
# BENCH_PROFILE picks the cargo profile of fail3ban (default dist).
#
#   scripts/bench-bulk.sh          (as root: ip netns, firewalls)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
. scripts/record.sh
# Before anything is written: the record, once created, would make it dirty.
described=$(git describe --always --dirty)

action=${BENCH_ACTION:-iptables-ipset}
bans=${BENCH_BANS:-20}
burst=${BENCH_BURST:-5000}
restore=${BENCH_RESTORE:-20000}
limit=${BENCH_TIMEOUT:-120}
work=$top/target/bench-bulk
ref=$top/target/reference/root
py=/usr/bin/python3
helper=$top/scripts/bench-bulk.py

case $action in
iptables-ipset) set4=ipset:f2b-bulk set6=ipset:f2b-bulk6 ;;
nftables-multiport) set4="nft:inet f2b-table addr-set-bulk" set6="nft:inet f2b-table addr6-set-bulk" ;;
*) echo "BENCH_ACTION: iptables-ipset or nftables-multiport" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, firewalls)" >&2; exit 1; }

./scripts/fetch-reference.sh
# The binaries as the Debian package ships them (Cargo.toml, profile dist).
profile=${BENCH_PROFILE:-dist}
cargo build --profile "$profile" --quiet --bin fail3ban-server --bin fail3ban-client
export PYTHONPATH=$ref/usr/lib/python3/dist-packages
f3_server=$top/target/$profile/fail3ban-server
f3_client=$top/target/$profile/fail3ban-client

ns() { echo "f3bulk-$1"; }
fresh_ns() { ip netns del "$(ns "$1")" 2>/dev/null || true; ip netns add "$(ns "$1")"; ip -n "$(ns "$1")" link set lo up; }
in_ns() { local w=$1; shift; ip netns exec "$(ns "$w")" "$@"; }
client() {
    local w=$1
    shift
    if [ "$w" = f2 ]; then
        $py "$ref/usr/bin/fail2ban-client" -c "$work/f2/conf" "$@"
    else
        "$f3_client" -c "$work/f3/conf" "$@"
    fi
}
kill_daemon() {
    local p
    p=$(cat "$work/$1/pid" 2>/dev/null || true)
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
    rm -f "$work/$1/pid" "$work/$1/sock"
}
cleanup() {
    for w in f2 f3; do
        kill_daemon $w
        ip netns del "$(ns $w)" 2>/dev/null || true
    done
}
trap cleanup EXIT

start() {
    local w=$1
    rm -f "$work/$w/sock" "$work/$w/pid"
    if [ "$w" = f2 ]; then
        in_ns f2 $py "$ref/usr/bin/fail2ban-server" -f -x -c "$work/f2/conf" >>"$work/f2/stdout" 2>&1 &
    else
        in_ns f3 "$f3_server" -f -x -c "$work/f3/conf" >>"$work/f3/stdout" 2>&1 &
    fi
    for _ in $(seq 600); do
        client "$w" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "FAILED: $w did not answer within 60 s" >&2
    return 1
}

# Stops a daemon, killing it if it does not end within the limit (fail2ban
# busy with thousands of single bans).
stop() {
    local w=$1 p c
    p=$(cat "$work/$w/pid" 2>/dev/null || true)
    client "$w" stop >/dev/null 2>&1 &
    c=$!
    for _ in $(seq 300); do
        [ -n "$p" ] && kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill "$c" 2>/dev/null || true
    kill_daemon "$w"
}

rm -rf "$work"
for w in f2 f3; do
    d=$work/$w
    mkdir -p "$d"
    cp -r "$ref/etc/fail2ban" "$d/conf"
    printf '[Definition]\nloglevel = INFO\nlogtarget = %s/server.log\nsocket = %s/sock\npidfile = %s/pid\ndbfile = %s/db.sqlite3\n' \
        "$d" "$d" "$d" "$d" >"$d/conf/fail2ban.local"
    printf '[sshd]\nenabled = false\n\n[bulk]\nenabled = true\nfilter = sshd\nport = ssh\nbackend = auto\nlogpath = %s/bulk.log\nmaxretry = 1\nbantime = 1d\nbanaction = %s\n' \
        "$d" "$action" >"$d/conf/jail.local"
    echo "$(date '+%b %d %H:%M:%S') vm syslogd: restart" >"$d/bulk.log"
    fresh_ns $w
done
out=$work/figures
: >"$out"

for w in f3 f2; do start $w; done
echo "1. ban latency ($bans bans each)"
for w in f3 f2; do
    name=fail3ban; [ $w = f2 ] && name=fail2ban
    in_ns $w $py "$helper" latency $name "$work/$w/bulk.log" "$bans" "$set4" | tee -a "$out"
done
echo "2. burst of $burst bans"
for w in f3 f2; do
    name=fail3ban; [ $w = f2 ] && name=fail2ban
    in_ns $w $py "$helper" burst $name "$work/$w/bulk.log" "$burst" "$set6" "$limit" | tee -a "$out"
    stop $w
done

echo "3. restore of $restore bans"
for w in f3 f2; do
    name=fail3ban; [ $w = f2 ] && name=fail2ban
    fresh_ns $w
    $py "$helper" preload "$work/$w/db.sqlite3" bulk "$restore"
    rm -f "$work/$w/bulk.log"
    echo "$(date '+%b %d %H:%M:%S') vm syslogd: restart" >"$work/$w/bulk.log"
    t0=$(date +%s.%N)
    start $w
    in_ns $w $py "$helper" restore $name "$restore" "$set6" "$limit" "$t0" | tee -a "$out"
    stop $w
done

field() { awk -v n="$1" -v k="$2" '$1 == n { for (i = 2; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' "$out"; }
# Seconds, or "> LIMIT s, N done" for a daemon that did not finish.
secs() {
    local v
    v=$(field "$1" "$2")
    case $v in
    \>*) echo "> $limit s, $(awk -v n="$1" -v k="$2" '$1 == n && $2 == k { print $5 }' "$out") done" ;;
    *) echo "$v" ;;
    esac
}
stamp=$(date -u +%Y-%m-%d)
result=$(record_path "$stamp-$(hostname -s)-bulk")
mkdir -p benches/results
{
    echo "# Bans at scale, fail3ban-server against fail2ban-server, $stamp"
    echo
    echo "Command: \`scripts/bench-bulk.sh\` (BENCH_ACTION=$action BENCH_BANS=$bans BENCH_BURST=$burst BENCH_RESTORE=$restore BENCH_TIMEOUT=$limit)"
    echo
    echo "- fail3ban: $described ($("$f3_server" -V))"
    echo "- fail2ban: $($py "$ref/usr/bin/fail2ban-server" -V | head -1) (Debian 1.0.2-2), $($py -V)"
    echo "- $(ipset -v 2>/dev/null | head -1), $(nft -v 2>/dev/null), $(iptables -V)"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
    echo "- each daemon in its own network namespace; stock tree, stock sshd filter, maxretry 1, action $action"
    echo
    echo "| measure | fail2ban | fail3ban |"
    echo "| --- | ---: | ---: |"
    echo "| ban latency to the address in the set, median ms ($bans bans) | $(field fail2ban median) | $(field fail3ban median) |"
    echo "| ban latency, p90 ms | $(field fail2ban p90) | $(field fail3ban p90) |"
    echo "| $burst addresses in one write: s until all in the set | $(secs fail2ban burst_s) | $(secs fail3ban burst_s) |"
    echo "| $restore active bans in the database: s from start until all in the set | $(secs fail2ban restore_s) | $(secs fail3ban restore_s) |"
    echo
    raw_figures "$out"
} >"$result"
echo "wrote $result"
cat "$result"
