#!/bin/sh
# Fetch the reference fail2ban (Debian's package, pinned and checked) and
# extract it under target/reference without installing it. Tests run the real
# fail2ban-client and fail2ban-regex from there; nothing of it enters the repo.
set -eu

VERSION=1.0.2-2
SHA256=9717b7aeef7b00f0df4c76045cd6dab2755cbe9fc99dbfe3cd114126880ec7f7

top=$(cd "$(dirname "$0")/.." && pwd)
dest=${FAIL3BAN_REFERENCE:-$top/target/reference}
deb="$dest/fail2ban_${VERSION}_all.deb"

if [ -x "$dest/root/usr/bin/fail2ban-client" ] && [ -f "$dest/.ok" ]; then
    exit 0
fi
mkdir -p "$dest"
if [ ! -f "$deb" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "fetch-reference: no apt-get here; reference fail2ban unavailable" >&2
        exit 1
    fi
    # apt-get download drops privileges to _apt, which cannot write to a
    # root-owned target/; download in a scratch dir it can write to.
    tmp=$(mktemp -d)
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download -q "fail2ban=$VERSION" >/dev/null 2>&1) ||
        (cd "$tmp" && apt-get update -q >/dev/null 2>&1 && apt-get download -q "fail2ban=$VERSION")
    mv "$tmp"/fail2ban_*.deb "$deb"
    rm -rf "$tmp"
fi
echo "$SHA256  $deb" | sha256sum -c --quiet - || {
    echo "fetch-reference: checksum mismatch for $deb" >&2
    rm -f "$deb"
    exit 1
}
rm -rf "$dest/root"
dpkg-deb -x "$deb" "$dest/root"
touch "$dest/.ok"
echo "fetch-reference: fail2ban $VERSION in $dest/root"
