#!/bin/sh
# Installs a fail3ban .deb into a clean Debian 12 root (debootstrap
# minbase) with apt, runs it there, and removes and purges it again.
#
#   scripts/deb-test.sh target/debian/fail3ban_*.deb
#
# Needs root, debootstrap and the network to the Debian mirror this
# machine's apt uses. The bootstrapped root is kept as a tarball in
# target/deb-test so that later runs start in seconds. Every server runs
# in a network namespace of its own (unshare -n): nothing here touches the
# host's firewall.
set -eu
cd "$(dirname "$0")/.."
DEB=$(readlink -f "$1")
[ -f "$DEB" ] || { echo "no package at $1" >&2; exit 2; }
REF=$(readlink -f target/reference/root)
CACHE=$(pwd)/target/deb-test
SUITE=bookworm
mkdir -p "$CACHE"

# The mirror apt uses here (deb822 or one-line sources), else Debian's.
mirror() {
    m=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)
    [ -n "$m" ] || m=$(sed -n 's/^deb[[:space:]]\+\(http[^[:space:]]*\).*/\1/p' /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1)
    echo "${m:-http://deb.debian.org/debian}" | cut -d' ' -f1
}
MIRROR=$(mirror)

TARBALL=$CACHE/$SUITE-minbase.tar
if [ ! -f "$TARBALL" ]; then
    echo "deb-test: debootstrap $SUITE from $MIRROR (once; cached in $TARBALL)"
    rm -rf "$CACHE/seed"
    debootstrap --variant=minbase "$SUITE" "$CACHE/seed" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
    tar -C "$CACHE/seed" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$CACHE/seed"
fi

ROOT=$(mktemp -d "$CACHE/root.XXXXXX")
SERVER_PID=
cleanup() {
    set +e
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    umount "$ROOT/proc" 2>/dev/null
    # Never delete through a mount that is still there.
    if grep -q " $ROOT/" /proc/mounts; then
        echo "deb-test: $ROOT still has mounts; left in place" >&2
    else
        rm -rf "$ROOT"
    fi
}
trap cleanup EXIT INT TERM
tar -C "$ROOT" -xf "$TARBALL"
mount -t proc proc "$ROOT/proc"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Every installed Debian has one; without it netbase (pulled in by
# nftables) would write it, and leave it at purge as its own.
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
fail() { echo "deb-test: FAILED: $*" >&2; [ -f "$ROOT/var/log/fail3ban.log" ] && tail -n 30 "$ROOT/var/log/fail3ban.log" >&2; exit 1; }
ok() { echo "deb-test: ok: $*"; }

# Everything on the root's disk, less what apt and dpkg keep for
# themselves (package lists, caches, their own logs and status).
files() {
    (cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./var/lib/apt -o -path ./var/cache \
        -o -path ./var/lib/dpkg -o -path ./var/log/apt -o -path ./var/log/dpkg.log \
        -o -path ./var/log/alternatives.log -o -path ./etc/ld.so.cache \) -prune -o -print | sort)
}

in_root apt-get update -q >/dev/null
files >"$CACHE/before.txt"

# apt install of the package file from inside the root, as an
# administrator does (dependencies from the archive).
install_deb() {
    cp "$DEB" "$ROOT/tmp/"
    in_root sh -c "apt-get install -y -q ./tmp/$(basename "$DEB")" >"$CACHE/install.log" 2>&1 ||
        { tail -n 20 "$CACHE/install.log" >&2; fail "apt install $1"; }
    rm -f "$ROOT/tmp/$(basename "$DEB")"
}
# apt purge, autoremove of what came with it, and the root's files against
# before.txt.
purge_to_before() {
    in_root apt-get purge -y -q fail3ban >"$CACHE/purge.log" 2>&1 || fail "apt purge $1"
    in_root apt-get autoremove --purge -y -q >>"$CACHE/purge.log" 2>&1 || fail "apt autoremove $1"
    files >"$CACHE/after.txt"
    if ! diff -u "$CACHE/before.txt" "$CACHE/after.txt" >"$CACHE/purge.diff"; then
        cat "$CACHE/purge.diff" >&2
        fail "apt purge $1 left files behind (or took some)"
    fi
}

install_deb ""
ok "apt install ./$(basename "$DEB") (dependencies from $MIRROR)"
for f in /usr/bin/fail3ban-server /usr/bin/fail3ban-client /usr/bin/fail3ban-regex \
    /etc/fail3ban/jail.conf /etc/default/fail3ban /usr/lib/systemd/system/fail3ban.service \
    /usr/share/man/man1/fail3ban-client.1.gz /var/lib/fail3ban; do
    [ -e "$ROOT$f" ] || fail "$f not installed"
done

out=$(in_root fail3ban-client -t 2>&1) || fail "fail3ban-client -t: $out"
echo "$out" | grep -q "OK: configuration test is successful" || fail "fail3ban-client -t: $out"
ok "fail3ban-client -t: $out"

# sshd on a file log with the dummy action: there is no journal and no
# firewall of its own in a chroot.
cat >"$ROOT/etc/fail3ban/jail.local" <<'EOF'
[sshd]
backend = auto
logpath = /var/log/auth-test.log
action = dummy
maxretry = 2
EOF
: >"$ROOT/var/log/auth-test.log"

# Runs a command line of the installed unit (ExecStart, ExecReload,
# ExecStop) as systemd would, with the unit's defaults and
# /etc/default/fail3ban's variables; there is no systemd in a chroot.
as_unit() { # $1: the unit's key; then what runs the chroot (e.g. unshare)
    key=$1
    shift
    cmd=$(sed -n "s/^$key=//p" "$ROOT/usr/lib/systemd/system/fail3ban.service")
    [ -n "$cmd" ] || fail "the unit has no $key"
    "$@" chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        sh -c "set -a; FAIL3BAN_CONF=/etc/fail3ban; FAIL3BAN_OPTS=; . /etc/default/fail3ban; exec $cmd"
}
# Points the service at a configuration directory, as an administrator would.
use_conf() { sed -i "s|^FAIL3BAN_CONF=.*|FAIL3BAN_CONF=$1|" "$ROOT/etc/default/fail3ban"; }

# Starts the unit's fail3ban-server (in the foreground) in the root, in a
# network namespace of its own, and waits until fail3ban-client gets an
# answer.
start_server() {
    as_unit ExecStart unshare --net >"$CACHE/server.out" 2>&1 &
    SERVER_PID=$!
    i=0
    until in_root fail3ban-client "$@" ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 200 ] || { cat "$CACHE/server.out" >&2; fail "server did not answer"; }
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$CACHE/server.out" >&2; fail "server exited"; }
        sleep 0.1
    done
}
stop_server() {
    as_unit ExecStop >/dev/null || fail "the unit's ExecStop"
    wait "$SERVER_PID" || fail "server exit status $?"
    SERVER_PID=
}

start_server
ok "the unit's ExecStart (fail3ban-server -f) started, FAIL3BAN_CONF from /etc/default/fail3ban"
out=$(in_root fail3ban-client status sshd) || fail "status sshd: $out"
echo "$out" | grep -q "Currently failed" || fail "status sshd: $out"
ok "fail3ban-client status sshd answers"

for n in 1 2; do
    echo "$(in_root date '+%b %e %H:%M:%S') deb-test sshd[4242]: Failed password for invalid user admin$n from 192.0.2.77 port 5000$n ssh2" >>"$ROOT/var/log/auth-test.log"
done
i=0
until in_root fail3ban-client status sshd | grep -q "Banned IP list:.*192.0.2.77"; do
    i=$((i + 1))
    [ $i -lt 200 ] || fail "no ban: $(in_root fail3ban-client status sshd)"
    sleep 0.1
done
grep -q "ban 192.0.2.77" "$ROOT/run/fail3ban/fail3ban.dummy" || fail "dummy action did not run"
grep -q "\[sshd\] Ban 192.0.2.77" "$ROOT/var/log/fail3ban.log" || fail "no Ban line in /var/log/fail3ban.log"
ok "two failing sshd lines: 192.0.2.77 banned, action run, logged"
as_unit ExecReload >/dev/null || fail "the unit's ExecReload"
in_root fail3ban-client status sshd | grep -q "Banned IP list:.*192.0.2.77" || fail "ban lost by reload"
ok "the unit's ExecReload: reloaded, ban kept"
stop_server
ok "the unit's ExecStop: server exited cleanly"

# The reference fail2ban's own /etc/fail2ban: fail3ban runs the jails
# fail2ban-client -d lists, for the tree as it is and with a jail.local of
# the kind administrators write.
jails_of_dump() { sed -n "s/^\['add', '\([^']*\)'.*/\1/p" | sort | tr '\n' ' ' | sed 's/ $//'; }
same_jails() { # $1: the tree to copy in as /etc/fail2ban; $2: what it is
    want=$(PYTHONPATH="$REF/usr/lib/python3/dist-packages" /usr/bin/python3 "$REF/usr/bin/fail2ban-client" \
        -c "$1" -d 2>/dev/null | jails_of_dump)
    [ -n "$want" ] || fail "$2: reference fail2ban-client -d lists no jails"
    rm -rf "$ROOT/etc/fail2ban"
    cp -a "$1" "$ROOT/etc/fail2ban"
    : >"$ROOT/var/log/auth.log"
    : >>"$ROOT/var/log/fail2ban.log"
    dumped=$(in_root fail3ban-client -c /etc/fail2ban -d 2>/dev/null | jails_of_dump)
    [ "$dumped" = "$want" ] || fail "$2: fail3ban-client -d jails [$dumped], fail2ban-client -d [$want]"
    use_conf /etc/fail2ban
    start_server -c /etc/fail2ban
    got=$(in_root fail3ban-client -c /etc/fail2ban status | sed -n 's/.*Jail list:[[:space:]]*//p' |
        tr -d ',' | tr ' ' '\n' | grep . | sort | tr '\n' ' ' | sed 's/ $//')
    stop_server
    use_conf /etc/fail3ban
    [ "$got" = "$want" ] || fail "$2: jails running [$got], fail2ban-client -d lists [$want]"
    ok "$2, FAIL3BAN_CONF=/etc/fail2ban: fail3ban runs jails [$got], as fail2ban-client -d lists"
}
if [ -x "$REF/usr/bin/fail2ban-client" ]; then
    same_jails "$REF/etc/fail2ban" "/etc/fail2ban as it is"
    LOCAL=$CACHE/fail2ban-local
    rm -rf "$LOCAL"
    cp -a "$REF/etc/fail2ban" "$LOCAL"
    cat >"$LOCAL/jail.local" <<'EOF'
[DEFAULT]
bantime = 1h
ignoreip = 127.0.0.1/8 ::1 198.51.100.0/24
backend = polling

[sshd]
mode = aggressive
logpath = /var/log/auth.log

[nginx-http-auth]
enabled = true
logpath = /var/log/auth.log

[apache-auth]
enabled = true
logpath = /var/log/auth.log

[postfix]
enabled = true
logpath = /var/log/auth.log

[dovecot]
enabled = true
logpath = /var/log/auth.log

[recidive]
enabled = true
EOF
    same_jails "$LOCAL" "/etc/fail2ban with a jail.local"
    rm -rf "$LOCAL"
    # fail2ban's tree and the logs it names are that setup's, not the package's.
    rm -rf "$ROOT/etc/fail2ban" "$ROOT/var/log/auth.log" "$ROOT/var/log/fail2ban.log"
elif [ "${CI:-}" = true ]; then
    fail "reference fail2ban missing under CI (scripts/fetch-reference.sh)"
else
    echo "deb-test: SKIPPED: /etc/fail2ban check: no reference fail2ban in target/reference"
fi

# The administrator's own files are theirs: dpkg keeps them; take them
# away so that what purge leaves is the package's doing alone.
rm -f "$ROOT/etc/fail3ban/jail.local" "$ROOT/var/log/auth-test.log"

in_root apt-get remove -y -q fail3ban >"$CACHE/remove.log" 2>&1 || fail "apt remove"
[ ! -e "$ROOT/usr/bin/fail3ban-server" ] || fail "remove left /usr/bin/fail3ban-server"
[ -f "$ROOT/etc/fail3ban/jail.conf" ] || fail "remove took the configuration"
[ -f "$ROOT/etc/default/fail3ban" ] || fail "remove took /etc/default/fail3ban"
[ -d "$ROOT/var/lib/fail3ban" ] || fail "remove took the ban database"
ok "apt remove: programs gone, configuration and bans kept"

purge_to_before ""
ok "apt purge (and autoremove of the recommends): the root is as before the install ($(wc -l <"$CACHE/before.txt") paths)"

# Where a syslog daemon writes /var/log/auth.log, the first install reads
# sshd from it instead of the journal; purge takes that choice away too.
: >"$ROOT/var/log/auth.log"
files >"$CACHE/before.txt"
install_deb "(with auth.log)"
in_root fail3ban-client -d | grep -qF "['add', 'sshd', 'auto']" || fail "sshd not on auth.log: $(in_root fail3ban-client -d | head -n 12)"
out=$(in_root fail3ban-client -t 2>&1) || fail "fail3ban-client -t with auth.log: $out"
ok "with /var/log/auth.log: sshd reads it (backend auto), -t says OK"
purge_to_before "(after the auth.log install)"
ok "apt purge: nothing left again"
echo "deb-test: all passed"
