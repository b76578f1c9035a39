#!/bin/bash
# fail3ban-regex against fail2ban-regex, side by side in one run, on two
# generated logs: a syslog auth.log with the stock sshd filter, and an nginx
# access log with date auto-detection (no datepattern) and an inline regex.
#
#   scripts/bench-regex.sh [LINES]      (default 1000000 lines per log)
#
# Checks that both tools report the same `Lines:` summary, prints lines/s and
# the ratio, and writes a dated result file under benches/results/. This is a
# benchmark, not a test: it only fails when the counts differ or a run fails.
#
# Environment: BENCH_RUNS (fail3ban-regex runs per log, median kept; default
# 3), BENCH_TIMEOUT (seconds per run; default 900), BENCH_IDS=1 to also
# compare `-o id` output, BENCH_SEED (generator seed; default 3),
# BENCH_PROFILE (the cargo profile of fail3ban-regex; default dist, as the
# Debian package ships it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/record.sh
# Before anything is written: the record, once created, would make it dirty.
described=$(git describe --always --dirty)

lines=${1:-1000000}
runs=${BENCH_RUNS:-3}
limit=${BENCH_TIMEOUT:-900}
seed=${BENCH_SEED:-3}
work=target/bench
ref=target/reference/root
py=/usr/bin/python3

./scripts/fetch-reference.sh
profile=${BENCH_PROFILE:-dist}
cargo build --profile "$profile" --quiet --bin fail3ban-regex
mkdir -p "$work" benches/results

f3=target/$profile/fail3ban-regex
f2=("$py" "$ref/usr/bin/fail2ban-regex")
export PYTHONPATH=$ref/usr/lib/python3/dist-packages
conf=$ref/etc/fail2ban

echo "generating $lines-line logs (seed $seed)"
$py scripts/gen-bench-logs.py auth "$lines" "$work/auth.log" --seed "$seed"
$py scripts/gen-bench-logs.py nginx "$lines" "$work/nginx-access.log" --seed "$seed"
# Write the fresh logs out now: the kernel's writeback of 200 MB would
# otherwise run on a core during the first timed runs.
sync

nginx_re='^<HOST> - \S+ \[\] "(?:GET|POST|HEAD) [^"]*" (?:401|404) '
# name|log|regex argument
cases=(
    "sshd|$work/auth.log|sshd"
    "nginx|$work/nginx-access.log|$nginx_re"
)

# Runs a command under a timeout; prints "wall user+sys" seconds and leaves
# its stdout in $work/out.
timed() {
    /usr/bin/time -o "$work/time" -f '%e %U %S' timeout "$limit" "$@" >"$work/out" 2>"$work/err" || {
        echo "FAILED (exit $?): $*" >&2
        tail -5 "$work/err" >&2
        return 1
    }
    tail -1 "$work/time" | awk '{ printf "%s %.2f\n", $1, $2 + $3 }'
}

summary() { grep '^Lines:' "$work/out"; }

stamp=$(date -u +%Y-%m-%d)
result=$(record_path "$stamp-$(hostname -s)-regex")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
status=0
for c in "${cases[@]}"; do
    IFS='|' read -r name log regex <<<"$c"
    args=(-c "$conf" "$log" "$regex")
    walls=()
    cpus=()
    for _ in $(seq "$runs"); do
        read -r w u < <(timed "$f3" "${args[@]}")
        walls+=("$w")
        cpus+=("$u")
    done
    s3=$(summary)
    # median of the runs (by wall time)
    mid=$(printf '%s\n' "${walls[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
    for i in "${!walls[@]}"; do [ "${walls[$i]}" = "$mid" ] && cpu3=${cpus[$i]}; done
    w3=$mid
    read -r w2 cpu2 < <(timed "${f2[@]}" "${args[@]}")
    s2=$(summary)
    same=yes
    if [ "$s2" != "$s3" ]; then
        same=NO
        status=1
        echo "MISMATCH on $name:" >&2
        echo "  fail2ban-regex: $s2" >&2
        echo "  fail3ban-regex: $s3" >&2
    fi
    ids=skipped
    if [ "${BENCH_IDS:-0}" = 1 ]; then
        timed "$f3" -o id "${args[@]}" >/dev/null && cp "$work/out" "$work/ids3"
        timed "${f2[@]}" -o id "${args[@]}" >/dev/null && cp "$work/out" "$work/ids2"
        if cmp -s "$work/ids2" "$work/ids3"; then ids=identical; else ids=DIFFERENT; status=1; fi
    fi
    n=$(echo "$s3" | awk '{ print $2 }')
    row=$(awk -v n="$n" -v w2="$w2" -v w3="$w3" -v c2="$cpu2" -v c3="$cpu3" 'BEGIN {
        l2 = n / w2; l3 = n / w3
        printf "%.0f|%.0f|%.0f|%.2f|%.2f|%.2f|%.2f", l2, l3, l3 / l2, w2, w3, c2, c3 }')
    rows+=("$name|$n|$row|$same|$ids|$s3")
    IFS='|' read -r l2 l3 ratio _ <<<"$row"
    printf '%-6s %8s lines  fail2ban-regex %9s lines/s  fail3ban-regex %10s lines/s  ratio %5sx  counts same: %s  -o id: %s\n' \
        "$name" "$n" "$l2" "$l3" "$ratio" "$same" "$ids"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
    echo "# fail3ban-regex vs fail2ban-regex, $stamp"
    echo
    echo "Produced by \`scripts/bench-regex.sh $lines\` (runs per log for fail3ban-regex: $runs, median kept; fail2ban-regex: one run)."
    echo
    echo "| log | lines | fail2ban-regex lines/s | fail3ban-regex lines/s | ratio | wall s (f2b / f3b) | cpu s (f2b / f3b) | counts same | -o id |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    for r in "${rows[@]}"; do
        IFS='|' read -r name n l2 l3 ratio w2 w3 c2 c3 same ids _ <<<"$r"
        echo "| $name | $n | $l2 | $l3 | ${ratio}x | $w2 / $w3 | $c2 / $c3 | $same | $ids |"
    done
    echo
    echo "Summaries (fail3ban-regex):"
    echo
    for r in "${rows[@]}"; do
        IFS='|' read -r name _ _ _ _ _ _ _ _ _ _ s <<<"$r"
        echo "- $name: \`$s\`"
    done
    echo
    echo "## Commands"
    echo
    echo '```'
    echo "$py scripts/gen-bench-logs.py auth $lines $work/auth.log --seed $seed"
    echo "$py scripts/gen-bench-logs.py nginx $lines $work/nginx-access.log --seed $seed"
    for c in "${cases[@]}"; do
        IFS='|' read -r name log regex <<<"$c"
        echo "$f3 -c $conf $log '$regex'"
        echo "PYTHONPATH=$PYTHONPATH ${f2[*]} -c $conf $log '$regex'"
    done
    echo '```'
    echo
    echo "## Versions and machine"
    echo
    echo "- fail3ban: $described ($(git rev-parse --abbrev-ref HEAD))"
    echo "- fail2ban: $("${f2[@]}" -V 2>&1 | head -1) (Debian 1.0.2-2, extracted by scripts/fetch-reference.sh)"
    echo "- $($py --version 2>&1), $(rustc --version)"
    echo "- $(uname -srm); nproc $(nproc); CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- load average before / after: $load_before / $load_after"
} >"$result"
echo "wrote $result"
exit $status
