#!/bin/sh
# Every test fail3ban has: style, lints, unit, integration and differential
# tests against the reference fail2ban (fetched here, pinned by sha256).
set -eu
cd "$(dirname "$0")/.."
./scripts/fetch-reference.sh || echo "WARNING: reference fail2ban unavailable; the tests that need it are reported as ignored (under CI they fail)" >&2
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings

# A test that needs what a machine may lack (root, the reference, network
# namespaces, sshd, journal or package tools: tests/prereq.rs) is
# #[ignore]d with the reason. They all run where every prerequisite is
# here, and always under CI, where a missing one fails its tests instead
# of leaving them ignored.
include=--include-ignored
if [ -z "${CI:-}" ] &&
    ! missing=$(cargo test --release --quiet --test tests -- \
        --include-ignored --exact prereq::every_prerequisite_is_here --nocapture 2>&1 >/dev/null); then
    echo "scripts/test.sh: not every prerequisite is here, so the tests that need one are reported as ignored:" >&2
    printf '%s\n' "$missing" | grep '^missing: ' >&2 || printf '%s\n' "$missing" >&2
    include=
fi
# shellcheck disable=SC2086 # $include is one word or none
cargo test --release -- --test-threads="${TEST_THREADS:-2}" $include
