#!/bin/sh
# Installs a fail3ban .deb beside the distribution's own fail2ban in clean
# Debian roots (debootstrap minbase), as a fail2ban user would, moves from
# fail2ban with `fail3ban-client migrate`, runs fail3ban, goes back, and
# removes and purges it: Debian 12 (bookworm, fail2ban 1.0.2) and Debian 13
# (trixie, fail2ban 1.1.0), one after the other.
#
#   scripts/deb-test.sh target/debian/fail3ban_*.deb [SUITE ...]
#
# Needs root, debootstrap and the network to the Debian mirror this
# machine's apt uses. Each bootstrapped root is kept as a tarball in
# target/deb-test, and the packages apt fetched into it as a directory
# there, so that later runs start in seconds and download nothing new.
# Every server runs in a network namespace of its own (unshare -n):
# nothing here touches the host's firewall or sends a packet.
set -eu
cd "$(dirname "$0")/.."
DEB=$(readlink -f "$1")
[ -f "$DEB" ] || { echo "no package at $1" >&2; exit 2; }
shift
if [ $# -ne 1 ]; then
    suites=${*:-bookworm trixie}
    for s in $suites; do
        "$0" "$DEB" "$s" || { echo "deb-test: FAILED in $s" >&2; exit 1; }
    done
    echo "deb-test: all passed in $suites"
    exit 0
fi
SUITE=$1
CACHE=$(pwd)/target/deb-test
mkdir -p "$CACHE"

# The mirror apt uses here (deb822 or one-line sources), else Debian's.
mirror() {
    m=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)
    [ -n "$m" ] || m=$(sed -n 's/^deb[[:space:]]\+\(http[^[:space:]]*\).*/\1/p' /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1)
    echo "${m:-http://deb.debian.org/debian}" | cut -d' ' -f1
}
MIRROR=$(mirror)

# minbase and systemd (for systemd-analyze; every installed Debian has it).
TARBALL=$CACHE/$SUITE-minbase-systemd.tar
if [ ! -f "$TARBALL" ]; then
    echo "deb-test: debootstrap $SUITE from $MIRROR (once; cached in $TARBALL)"
    rm -rf "$CACHE/seed-$SUITE"
    debootstrap --variant=minbase --include=systemd "$SUITE" "$CACHE/seed-$SUITE" "$MIRROR" \
        >"$CACHE/debootstrap-$SUITE.log" 2>&1 ||
        { tail -n 20 "$CACHE/debootstrap-$SUITE.log" >&2; exit 1; }
    tar -C "$CACHE/seed-$SUITE" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$CACHE/seed-$SUITE"
fi
DEBS=$CACHE/$SUITE-debs
LOG=$CACHE/$SUITE
mkdir -p "$DEBS" "$LOG"

ROOT=$(mktemp -d "$CACHE/root-$SUITE.XXXXXX")
SERVER_PID=
cleanup() {
    set +e
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [ -f "$ROOT/run/fail2ban/fail2ban.pid" ] && kill "$(cat "$ROOT/run/fail2ban/fail2ban.pid")" 2>/dev/null
    # What apt fetched, for the next run (autoclean drops what the archive
    # no longer has).
    if [ -d "$ROOT/var/cache/apt/archives" ]; then
        in_root apt-get autoclean -q >/dev/null 2>&1
        rm -f "$DEBS"/*.deb
        cp "$ROOT"/var/cache/apt/archives/*.deb "$DEBS"/ 2>/dev/null
    fi
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
cp "$DEBS"/*.deb "$ROOT/var/cache/apt/archives/" 2>/dev/null || true
# No daemon starts while packages install (as in container images):
# fail2ban's init script would otherwise start it outside any network
# namespace. The test starts each daemon itself.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
fail() { echo "deb-test: $SUITE: FAILED: $*" >&2; [ -f "$ROOT/var/log/fail3ban.log" ] && tail -n 30 "$ROOT/var/log/fail3ban.log" >&2; exit 1; }
ok() { echo "deb-test: $SUITE: ok: $*"; }
# Fails unless the text ($1) has each of the other arguments.
has() {
    text=$1
    shift
    for want; do
        printf '%s\n' "$text" | grep -qF -- "$want" || fail "no \"$want\" in:
$text"
    done
}

# Everything on the root's disk, less what apt and dpkg keep for
# themselves (package lists, caches, their own logs and status).
files() {
    (cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./var/lib/apt -o -path ./var/cache \
        -o -path ./var/lib/dpkg -o -path ./var/log/apt -o -path ./var/log/dpkg.log \
        -o -path ./var/log/alternatives.log -o -path ./etc/ld.so.cache \) -prune -o -print | sort)
}

in_root apt-get update -q >"$LOG/update.log" 2>&1 || { tail -n 20 "$LOG/update.log" >&2; fail "apt-get update"; }

# ---------------------------------------------------------------------
# fail2ban as its users have it: the distribution's package with its
# recommends, a jail.local with sshd and one more jail, and a database
# with active bans that fail2ban itself wrote.
in_root apt-get install -y -q fail2ban >"$LOG/fail2ban-install.log" 2>&1 ||
    { tail -n 20 "$LOG/fail2ban-install.log" >&2; fail "apt install fail2ban"; }
F2B_VERSION=$(in_root dpkg-query -W -f='${Version}' fail2ban)
mkdir -p "$ROOT/var/log/nginx" "$ROOT/run/fail2ban"
: >"$ROOT/var/log/auth.log"
: >"$ROOT/var/log/nginx/error.log"
cat >"$ROOT/etc/fail2ban/jail.local" <<'EOF'
[DEFAULT]
# A chroot has no firewall of its own: the dummy action writes what it
# bans to /run/fail2ban/fail2ban.dummy.
banaction = dummy
banaction_allports = dummy
bantime = 1d

[sshd]
enabled = true
backend = polling
logpath = /var/log/auth.log

[nginx-http-auth]
enabled = true
backend = polling
EOF
# As fail2ban.service would (its RuntimeDirectory), in a network
# namespace of its own; the client reaches it through the socket file.
unshare --net chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    fail2ban-client start >"$LOG/fail2ban-start.log" 2>&1 ||
    { cat "$LOG/fail2ban-start.log" >&2; fail "fail2ban-client start"; }
in_root fail2ban-client set sshd banip 192.0.2.10 192.0.2.11 2001:db8::20 >/dev/null || fail "fail2ban banip sshd"
in_root fail2ban-client set nginx-http-auth banip 203.0.113.20 >/dev/null || fail "fail2ban banip nginx-http-auth"
out=$(in_root fail2ban-client status sshd)
has "$out" 192.0.2.10 192.0.2.11 2001:db8::20
in_root fail2ban-client stop >/dev/null || fail "fail2ban-client stop"
i=0
while [ -e "$ROOT/run/fail2ban/fail2ban.pid" ]; do
    i=$((i + 1))
    [ $i -lt 300 ] || fail "fail2ban did not stop"
    sleep 0.1
done
[ -s "$ROOT/var/lib/fail2ban/fail2ban.sqlite3" ] || fail "fail2ban wrote no database"
F2B_JAILS=$(in_root fail2ban-client -d 2>/dev/null | sed -n "s/^\['add', '\([^']*\)'.*/\1/p" | sort | tr '\n' ' ' | sed 's/ $//')
[ "$F2B_JAILS" = "nginx-http-auth sshd" ] || fail "fail2ban-client -d lists jails [$F2B_JAILS]"
ok "fail2ban $F2B_VERSION from $MIRROR, jails [$F2B_JAILS], 4 bans in its database, stopped"

# fail2ban's package, configuration and database, byte for byte.
fail2ban_state() {
    in_root dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' fail2ban
    in_root dpkg-query -L fail2ban | while read -r f; do
        if [ -f "$ROOT$f" ] && [ ! -L "$ROOT$f" ]; then sha256sum "$ROOT$f"; fi
    done
    (cd "$ROOT" && find etc/fail2ban var/lib/fail2ban -type f | sort | xargs sha256sum)
}
fail2ban_state >"$LOG/fail2ban.before"
fail2ban_as_before() { # $1: after what
    fail2ban_state >"$LOG/fail2ban.after"
    diff -u "$LOG/fail2ban.before" "$LOG/fail2ban.after" >&2 ||
        fail "fail2ban's package, configuration or database changed by $1"
}
files >"$LOG/before.txt"

# No path of fail3ban's package is one of fail2ban's (dpkg would refuse
# to unpack it). /lib and /usr/lib are one directory on both releases.
usr() { sed 's|^\./|/|; s|^/lib/|/usr/lib/|; s|^/bin/|/usr/bin/|; s|^/sbin/|/usr/sbin/|'; }
dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ { print $6 }' | usr | sort -u >"$LOG/fail3ban.paths"
in_root dpkg-query -L fail2ban | usr | sort -u >"$LOG/fail2ban.paths"
both=$(comm -12 "$LOG/fail3ban.paths" "$LOG/fail2ban.paths")
[ -z "$both" ] || fail "files of both fail3ban's package and fail2ban $F2B_VERSION's: $both"
ok "none of fail3ban's $(wc -l <"$LOG/fail3ban.paths") files is one of fail2ban $F2B_VERSION's $(wc -l <"$LOG/fail2ban.paths") paths"

# ---------------------------------------------------------------------
# apt install of the package file from inside the root, as an
# administrator does (dependencies from the archive, no --force).
install_deb() {
    cp "$DEB" "$ROOT/tmp/"
    in_root sh -c "apt-get install -y -q ./tmp/$(basename "$DEB")" >"$LOG/install.log" 2>&1 ||
        { tail -n 20 "$LOG/install.log" >&2; fail "apt install $1"; }
    rm -f "$ROOT/tmp/$(basename "$DEB")"
}
# apt purge, autoremove of what came with it, and the root's files against
# before.txt.
purge_to_before() {
    in_root apt-get purge -y -q fail3ban >"$LOG/purge.log" 2>&1 || fail "apt purge $1"
    in_root apt-get autoremove --purge -y -q >>"$LOG/purge.log" 2>&1 || fail "apt autoremove $1"
    files >"$LOG/after.txt"
    if ! diff -u "$LOG/before.txt" "$LOG/after.txt" >"$LOG/purge.diff"; then
        cat "$LOG/purge.diff" >&2
        fail "apt purge $1 left files behind (or took some)"
    fi
}

install_deb "beside fail2ban"
ok "apt install ./$(basename "$DEB") beside fail2ban (dependencies from $MIRROR)"
for f in /usr/bin/fail3ban-server /usr/bin/fail3ban-client /usr/bin/fail3ban-regex \
    /etc/fail3ban/jail.conf /etc/default/fail3ban /usr/lib/systemd/system/fail3ban.service \
    /usr/share/man/man1/fail3ban-client.1.gz /usr/share/man/man5/fail3ban-jail.conf.5.gz /var/lib/fail3ban; do
    [ -e "$ROOT$f" ] || fail "$f not installed"
done
# Beside fail2ban, neither enabled nor started: the switch is migrate's.
has "$(cat "$LOG/install.log")" "fail3ban.service was neither enabled nor started" "fail3ban-client migrate"
[ ! -L "$ROOT/etc/systemd/system/multi-user.target.wants/fail3ban.service" ] || fail "fail3ban.service enabled beside fail2ban"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/fail2ban.service" ] || fail "fail2ban.service no longer enabled"
ok "beside fail2ban, fail3ban.service is installed but not enabled; the installer names migrate"
fail2ban_as_before "the install of fail3ban"

out=$(in_root systemd-analyze verify --man=no /usr/lib/systemd/system/fail3ban.service 2>&1) ||
    fail "systemd-analyze verify: $out"
if printf '%s\n' "$out" | grep -q 'fail3ban\.service'; then fail "systemd-analyze verify: $out"; fi
# The stamp systemd's unit loader leaves (on tmpfs where systemd runs) is
# the test's, not the package's.
rm -f "$ROOT/run/systemd/systemd-units-load"
ok "systemd-analyze verify fail3ban.service ($(in_root dpkg-query -W -f='systemd ${Version}' systemd))"

out=$(in_root fail3ban-client -t 2>&1) || fail "fail3ban-client -t: $out"
has "$out" "OK: configuration test is successful"
# Where a syslog daemon writes /var/log/auth.log, the first install reads
# sshd from it instead of the journal.
in_root fail3ban-client -d | grep -qF "['add', 'sshd', 'auto']" || fail "sshd not on auth.log: $(in_root fail3ban-client -d | head -n 12)"
ok "fail3ban-client -t: $out; sshd reads /var/log/auth.log (backend auto)"

# ---------------------------------------------------------------------
# fail3ban on its own tree: sshd on a file log with the dummy action.
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
    as_unit ExecStart unshare --net >"$LOG/server.out" 2>&1 &
    SERVER_PID=$!
    i=0
    until in_root fail3ban-client "$@" ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 200 ] || { cat "$LOG/server.out" >&2; fail "server did not answer"; }
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG/server.out" >&2; fail "server exited"; }
        sleep 0.1
    done
}
stop_server() {
    as_unit ExecStop >/dev/null || fail "the unit's ExecStop"
    wait "$SERVER_PID" || fail "server exit status $?"
    SERVER_PID=
}
# Waits until `fail3ban-client ARGS` prints every one of WANT (a line of
# words).
wait_for() { # WANT ARGS...
    want=$1
    shift
    i=0
    while :; do
        out=$(in_root fail3ban-client "$@" 2>&1) || true
        missing=
        for w in $want; do printf '%s\n' "$out" | grep -qF -- "$w" || missing="$missing $w"; done
        [ -n "$missing" ] || return 0
        i=$((i + 1))
        [ $i -lt 200 ] || fail "fail3ban-client $*: no$missing in: $out"
        sleep 0.1
    done
}

start_server
ok "the unit's ExecStart (fail3ban-server -f) started, FAIL3BAN_CONF from /etc/default/fail3ban"
out=$(in_root fail3ban-client status sshd) || fail "status sshd: $out"
has "$out" "Currently failed"
for n in 1 2; do
    echo "$(in_root date '+%b %e %H:%M:%S') deb-test sshd[4242]: Failed password for invalid user admin$n from 192.0.2.77 port 5000$n ssh2" >>"$ROOT/var/log/auth-test.log"
done
wait_for 192.0.2.77 status sshd
grep -q "ban 192.0.2.77" "$ROOT/run/fail3ban/fail3ban.dummy" || fail "dummy action did not run"
grep -q "\[sshd\] Ban 192.0.2.77" "$ROOT/var/log/fail3ban.log" || fail "no Ban line in /var/log/fail3ban.log"
ok "two failing sshd lines: 192.0.2.77 banned, action run, logged"
as_unit ExecReload >/dev/null || fail "the unit's ExecReload"
in_root fail3ban-client status sshd | grep -q "Banned IP list:.*192.0.2.77" || fail "ban lost by reload"
ok "the unit's ExecReload: reloaded, ban kept"
stop_server
ok "the unit's ExecStop: server exited cleanly"
# The administrator's own files are theirs: dpkg keeps them; take them
# away so that what purge leaves is the package's doing alone.
rm -f "$ROOT/etc/fail3ban/jail.local" "$ROOT/var/log/auth-test.log"

# Running jails against fail2ban-client -d of the distribution's fail2ban,
# for a copy of its tree with a jail.local of the kind administrators write.
ADMIN=/tmp/fail2ban-admin
cp -a "$ROOT/etc/fail2ban" "$ROOT$ADMIN"
cat >"$ROOT$ADMIN/jail.local" <<'EOF'
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
jails_of_dump() { sed -n "s/^\['add', '\([^']*\)'.*/\1/p" | sort | tr '\n' ' ' | sed 's/ $//'; }
running_jails() { # fail3ban-client options
    in_root fail3ban-client "$@" status | sed -n 's/.*Jail list:[[:space:]]*//p' |
        tr -d ',' | tr ' ' '\n' | grep . | sort | tr '\n' ' ' | sed 's/ $//'
}
want=$(in_root fail2ban-client -c "$ADMIN" -d 2>/dev/null | jails_of_dump)
dumped=$(in_root fail3ban-client -c "$ADMIN" -d 2>/dev/null | jails_of_dump)
[ "$dumped" = "$want" ] || fail "fail3ban-client -d jails [$dumped], fail2ban-client -d [$want]"
use_conf "$ADMIN"
start_server -c "$ADMIN"
got=$(running_jails -c "$ADMIN")
stop_server
use_conf /etc/fail3ban
rm -rf "${ROOT:?}$ADMIN"
[ "$got" = "$want" ] || fail "jails running [$got], fail2ban-client -d lists [$want]"
ok "fail2ban's tree with an administrator's jail.local: fail3ban runs jails [$got], as fail2ban-client -d lists"
fail2ban_as_before "fail3ban's runs"

# ---------------------------------------------------------------------
# The move: migrate --dry-run changes nothing; migrate, twice; the unit's
# ExecStart on /etc/fail2ban with fail2ban's bans.
F3B_DB=$ROOT/var/lib/fail3ban/fail3ban.sqlite3
db_sum() { sha256sum "$F3B_DB" 2>/dev/null || echo none; }
default_before=$(cat "$ROOT/etc/default/fail3ban")
db_before=$(db_sum)
out=$(in_root fail3ban-client migrate --dry-run 2>&1) || fail "migrate --dry-run: $out"
has "$out" "[1/4] (dry run) check /etc/fail2ban" "OK: configuration test is successful; jails: " \
    "would import up to 4 bans (4 still active) of jails [nginx-http-auth, sshd]" \
    "would set FAIL3BAN_CONF=/etc/fail2ban (now /etc/fail3ban)" "skipped: systemd is not running here" \
    "Dry run: nothing was changed"
[ "$(cat "$ROOT/etc/default/fail3ban")" = "$default_before" ] || fail "migrate --dry-run changed /etc/default/fail3ban"
[ "$(db_sum)" = "$db_before" ] || fail "migrate --dry-run changed fail3ban's database"
fail2ban_as_before "migrate --dry-run"
ok "migrate --dry-run: every step printed, nothing changed"

out=$(in_root fail3ban-client migrate 2>&1) || fail "migrate: $out"
printf '%s\n' "$out" | sed "s/^/deb-test: $SUITE:   | /"
has "$out" "[1/4] check /etc/fail2ban" "OK: configuration test is successful" \
    "Imported 4 bans (4 still active) of jails [nginx-http-auth, sshd] from /var/lib/fail2ban/fail2ban.sqlite3" \
    "FAIL3BAN_CONF=/etc/fail2ban (was /etc/fail3ban)" \
    "skipped: systemd is not running here" "Done: fail3ban.service will run /etc/fail2ban"
out=$(in_root fail3ban-client migrate 2>&1) || fail "migrate again: $out"
has "$out" "Imported 0 bans" "4 already there" "already FAIL3BAN_CONF=/etc/fail2ban"
grep -qx "FAIL3BAN_CONF=/etc/fail2ban" "$ROOT/etc/default/fail3ban" || fail "/etc/default/fail3ban: $(cat "$ROOT/etc/default/fail3ban")"
fail2ban_as_before "migrate"
ok "migrate: /etc/fail2ban tested, 4 bans imported, /etc/default/fail3ban points at it; twice: nothing more"

start_server -c /etc/fail2ban
got=$(running_jails -c /etc/fail2ban)
[ "$got" = "$F2B_JAILS" ] || fail "jails running [$got], fail2ban-client -d lists [$F2B_JAILS]"
wait_for "192.0.2.10 192.0.2.11 2001:db8::20" -c /etc/fail2ban status sshd
wait_for 203.0.113.20 -c /etc/fail2ban status nginx-http-auth
for ip in 192.0.2.10 192.0.2.11 2001:db8::20 203.0.113.20; do
    grep -qx "+$ip" "$ROOT/run/fail2ban/fail2ban.dummy" || fail "fail2ban's dummy action did not ban $ip: $(cat "$ROOT/run/fail2ban/fail2ban.dummy")"
done
stop_server
fail2ban_as_before "fail3ban running on /etc/fail2ban"
ok "the unit's ExecStart runs /etc/fail2ban: jails [$got] as fail2ban-client -d lists, fail2ban's 4 bans active, actions run"

out=$(in_root fail3ban-client migrate --undo 2>&1) || fail "migrate --undo: $out"
has "$out" "FAIL3BAN_CONF=/etc/fail3ban (was /etc/fail2ban)" "skipped: systemd is not running here"
[ "$(cat "$ROOT/etc/default/fail3ban")" = "$default_before" ] || fail "migrate --undo left /etc/default/fail3ban: $(cat "$ROOT/etc/default/fail3ban")"
fail2ban_as_before "migrate --undo"
ok "migrate --undo: /etc/default/fail3ban as installed"

# ---------------------------------------------------------------------
in_root apt-get remove -y -q fail3ban >"$LOG/remove.log" 2>&1 || fail "apt remove"
[ ! -e "$ROOT/usr/bin/fail3ban-server" ] || fail "remove left /usr/bin/fail3ban-server"
[ -f "$ROOT/etc/fail3ban/jail.conf" ] || fail "remove took the configuration"
[ -f "$ROOT/etc/default/fail3ban" ] || fail "remove took /etc/default/fail3ban"
[ -d "$ROOT/var/lib/fail3ban" ] || fail "remove took the ban database"
fail2ban_as_before "apt remove fail3ban"
ok "apt remove: programs gone, configuration and bans kept, fail2ban as it was"

purge_to_before ""
fail2ban_as_before "apt purge fail3ban"
ok "apt purge (and autoremove): the root is as before the install ($(wc -l <"$LOG/before.txt") paths), fail2ban's package, configuration and database byte for byte as they were"

# Without /var/log/auth.log (Debian's default: no syslog daemon) sshd is
# read from the journal; purge again leaves nothing.
mv "$ROOT/var/log/auth.log" "$ROOT/var/log/auth.log.away"
install_deb "(without auth.log)"
in_root fail3ban-client -d | grep -qF "['add', 'sshd', 'systemd']" || fail "sshd not on the journal: $(in_root fail3ban-client -d | head -n 12)"
mv "$ROOT/var/log/auth.log.away" "$ROOT/var/log/auth.log"
purge_to_before "(after the install without auth.log)"
fail2ban_as_before "the second purge"
ok "without /var/log/auth.log: sshd reads the journal; apt purge: nothing left again"
echo "deb-test: $SUITE: all passed"
