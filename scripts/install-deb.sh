#!/bin/sh
# Builds fail3ban's Debian package with cargo-deb and installs it with apt
# (as root, or through sudo). Needs Rust's cargo; fetches cargo-deb once.
set -eu
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "install-deb: needs cargo (Rust); see https://rustup.rs" >&2; exit 1; }
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.8.0
# Profile dist: the smaller, faster LTO build (Cargo.toml).
deb=$(cargo deb --profile dist | tail -n 1)
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get install -y "$deb"
if [ -e /usr/bin/fail2ban-server ]; then
    echo "install-deb: installed $deb beside fail2ban; \"fail3ban-client migrate\" switches (README: From fail2ban)"
else
    echo "install-deb: installed $deb; fail3ban-client status shows the jails"
fi
