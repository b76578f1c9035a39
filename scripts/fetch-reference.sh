#!/bin/sh
# Fetch the reference fail2bans (Debian's packages, pinned and checked) and
# extract them under target/reference without installing them. Tests run the
# real fail2ban-client and fail2ban-regex from there; nothing of them enters
# the repo.
#
#   root/        fail2ban 1.0.2-2 (Debian 12, bookworm), from the machine's apt
#   root-1.1.0/  fail2ban 1.1.0-8 (Debian 13, trixie), from the same Debian
#                archive through a private apt configuration whose only
#                source is trixie, so that the machine's sources stay as
#                they are
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dest=${FAIL3BAN_REFERENCE:-$top/target/reference}
mkdir -p "$dest"

# The machine's Debian archive (the repository apt labels "Debian"), for the
# private configuration that reads trixie from it.
archive() {
    apt-get indextargets --format '$(REPO_URI) $(LABEL)' 2>/dev/null |
        awk '$2 == "Debian" { print $1; exit }'
}

# fetch VERSION SHA256 ROOT [SUITE]: downloads fail2ban=VERSION (with the
# machine's apt, or with a private one on SUITE), checks it and extracts it
# into $dest/ROOT.
fetch() {
    version=$1 sha256=$2 root=$3 suite=${4:-}
    deb="$dest/fail2ban_${version}_all.deb"
    if [ -x "$dest/$root/usr/bin/fail2ban-client" ] && [ -f "$dest/$root.ok" ]; then
        return 0
    fi
    if [ ! -f "$deb" ]; then
        if ! command -v apt-get >/dev/null 2>&1; then
            echo "fetch-reference: no apt-get here; reference fail2ban $version unavailable" >&2
            return 1
        fi
        # apt-get download drops privileges to _apt, which cannot write to a
        # root-owned target/; download in a scratch dir it can write to.
        tmp=$(mktemp -d)
        chmod 777 "$tmp"
        if [ -z "$suite" ]; then
            (cd "$tmp" && apt-get download -q "fail2ban=$version" >/dev/null 2>&1) ||
                (cd "$tmp" && apt-get update -q >/dev/null 2>&1 && apt-get download -q "fail2ban=$version")
        else
            uri=$(archive)
            uri=${uri:-http://deb.debian.org/debian/}
            mkdir -p "$tmp/apt/parts" "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial"
            echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$tmp/apt/sources.list"
            # Every path apt reads or writes for the package lists is the
            # scratch dir's: the machine's sources, lists and cache are
            # neither read nor changed.
            set -- -q -o "Dir::Etc::SourceList=$tmp/apt/sources.list" \
                -o "Dir::Etc::SourceParts=$tmp/apt/parts" \
                -o "Dir::Etc::Preferences=/dev/null" \
                -o "Dir::Etc::PreferencesParts=$tmp/apt/parts" \
                -o "Dir::State::Lists=$tmp/apt/lists" \
                -o "Dir::State::status=/dev/null" \
                -o "Dir::Cache=$tmp/apt/cache"
            apt-get "$@" update >/dev/null
            (cd "$tmp" && apt-get "$@" download "fail2ban=$version")
        fi
        mv "$tmp"/fail2ban_*.deb "$deb"
        rm -rf "$tmp"
    fi
    echo "$sha256  $deb" | sha256sum -c --quiet - || {
        echo "fetch-reference: checksum mismatch for $deb" >&2
        rm -f "$deb"
        return 1
    }
    rm -rf "${dest:?}/$root"
    dpkg-deb -x "$deb" "$dest/$root"
    touch "$dest/$root.ok"
    echo "fetch-reference: fail2ban $version in $dest/$root"
}

# The first extraction marked itself with .ok before there were two.
[ -f "$dest/.ok" ] && [ ! -f "$dest/root.ok" ] && mv "$dest/.ok" "$dest/root.ok"

status=0
fetch 1.0.2-2 9717b7aeef7b00f0df4c76045cd6dab2755cbe9fc99dbfe3cd114126880ec7f7 root || status=1
fetch 1.1.0-8 ac35080546f1a1581163b2ebcb9796b08eb4abca3d3643082b76dce505cbd6d8 root-1.1.0 trixie || status=1
exit $status
