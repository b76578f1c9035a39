#!/bin/bash
# Bytes per tracked failure id (issue 15, finding 6): a real
# fail3ban-server with one jail that never bans (maxretry far above one
# failure per id) is fed BENCH_IDS lines, each from a distinct
# 2001:db8:: address, in writes of 10,000 lines. Once `status` shows them
# all counted, the VmRSS growth since start divided by the ids still
# tracked (`Currently failed`) is the cost of one tracked id.
#
#   scripts/bench-failures.sh                   # 200,000 ids, no cap
#   BENCH_CAP=10000 scripts/bench-failures.sh   # the same, maxfailedids 10000
#
# Environment: BENCH_IDS (default 200000), BENCH_CAP (the jail's
# maxfailedids; default 0, no cap), BENCH_PROFILE (cargo profile;
# default release), BENCH_TIMEOUT (seconds to wait for the lines to be
# counted; default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

ids=${BENCH_IDS:-200000}
cap=${BENCH_CAP:-0}
profile=${BENCH_PROFILE:-release}
limit=${BENCH_TIMEOUT:-300}
work=$(mktemp -d /tmp/f3bench-failures.XXXXXX)

cargo build --profile "$profile" --quiet --bin fail3ban-server --bin fail3ban-client
server=$top/target/$profile/fail3ban-server
client=$top/target/$profile/fail3ban-client

cleanup() {
    [ -f "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/conf/filter.d"
cat >"$work/conf/fail2ban.conf" <<EOF
[Definition]
loglevel = INFO
logtarget = $work/server.log
socket = $work/sock
pidfile = $work/pid
dbfile = $work/db.sqlite3
EOF
cat >"$work/conf/filter.d/bench.conf" <<'EOF'
[Definition]
failregex = ^\s*\S+ sshd\[\d+\]: Failed password for \S+ from <HOST> port \d+ ssh2$
EOF
cat >"$work/conf/jail.conf" <<EOF
[spray]
enabled = true
filter = bench
logpath = $work/spray.log
maxretry = 1000
findtime = 1h
maxfailedids = $cap
EOF
echo "$(date '+%F %T') web1 syslogd: restart" >"$work/spray.log"

"$server" -f -x -c "$work/conf" >"$work/stdout" 2>&1 &
for _ in $(seq 300); do
    [ -f "$work/pid" ] && "$client" -c "$work/conf" ping >/dev/null 2>&1 && break
    sleep 0.1
done
pid=$(cat "$work/pid")
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
status() { "$client" -c "$work/conf" status spray | sed -n "s/.*$1:\t//p"; }

sleep 1
before=$(rss_kb)
start=$(date +%s.%N)
# Lines as sshd writes them, each from its own address, 10,000 a write.
python3 - "$work/spray.log" "$ids" <<'EOF'
import sys, time
path, n = sys.argv[1], int(sys.argv[2])
stamp = time.strftime("%Y-%m-%d %H:%M:%S")
with open(path, "a") as f:
    for start in range(0, n, 10000):
        f.write("".join(
            f"{stamp} web1 sshd[4242]: Failed password for root from "
            f"2001:db8::{(i >> 16) + 1:x}:{i & 0xffff:x} port 52113 ssh2\n"
            for i in range(start, min(n, start + 10000))))
        f.flush()
EOF
deadline=$(($(date +%s) + limit))
until [ "$(status 'Total failed')" = "$ids" ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "FAILED: not all $ids lines counted within ${limit}s (total $(status 'Total failed'))" >&2
        exit 1
    fi
    sleep 0.2
done
took=$(echo "$(date +%s.%N) - $start" | bc)
sleep 1
after=$(rss_kb)
tracked=$(status 'Currently failed')
dropped=$(grep -c 'maxfailedids' "$work/server.log" || true)
echo "fail3ban $(git describe --always --dirty) ids=$ids maxfailedids=$cap"
echo "counted in ${took}s; tracked (Currently failed): $tracked; warnings logged: $dropped"
echo "VmRSS before: ${before} kB, after: ${after} kB, growth: $((after - before)) kB"
echo "bytes per tracked id: $(((after - before) * 1024 / (tracked > 0 ? tracked : 1)))"
echo "bytes per line fed: $(((after - before) * 1024 / ids))"
