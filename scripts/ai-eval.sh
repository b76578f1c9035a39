#!/bin/bash
# The AI rule generator's evaluation (issue 16): the real fail3ban-server
# and fail3ban-client learn from logs written from ai/eval/corpus.txt,
# asking a scripted OpenAI-compatible model on loopback, and the script
# prints innocent addresses banned, ignoreip addresses banned, attack
# shapes learned and banned, sensible regexes accepted, requests per shape
# for 1,000 further lines of it, and whether the floors hold (exit 1 if
# not). The body is scripts/ai-eval.py (Debian's python3, stdlib only).
#
#   scripts/ai-eval.sh            # build the release binaries, evaluate
#   scripts/ai-eval.sh --record   # and write benches/results/<date>-ai-eval.md
#
# Environment: AI_EVAL_BIN, a directory holding fail3ban-server and
# fail3ban-client to evaluate instead of building (the test
# ai::evaluation_meets_its_floors passes its own); AI_EVAL_ARGS, more
# arguments for ai-eval.py (--rounds N, --seed N, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/record.sh
# Before anything is written: the record, once created, would make it dirty.
described=$(git describe --always --dirty)
record=no
[ "${1:-}" = --record ] && record=yes
bin=${AI_EVAL_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet --bin fail3ban-server --bin fail3ban-client
    bin=$PWD/target/release
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
status=0
/usr/bin/python3 scripts/ai-eval.py --bin "$bin" ${AI_EVAL_ARGS:-} | tee "$out" || status=$?
if [ $record = yes ]; then
    stamp=$(date -u +%Y-%m-%d)
    result=$(record_path "$stamp-ai-eval")
    {
        echo "# The AI rule generator's evaluation, $stamp"
        echo
        echo "Command: \`scripts/ai-eval.sh --record\`${AI_EVAL_ARGS:+ (AI_EVAL_ARGS=$AI_EVAL_ARGS)}"
        echo
        echo "- fail3ban: $described ($("$bin/fail3ban-server" -V))"
        echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
        echo
        raw_figures "$out"
    } >"$result"
    echo "wrote $result"
fi
exit $status
