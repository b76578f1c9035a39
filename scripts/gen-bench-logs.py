#!/usr/bin/python3
"""Generates the benchmark logs: a syslog auth.log with sshd traffic and an
nginx access log (combined format).

Deterministic: the same seed and line count give the same bytes, so runs on
different days and machines measure the same input. Only documentation
addresses appear (RFC 5737 and RFC 3849).

    gen-bench-logs.py auth  LINES OUT [--seed N]
    gen-bench-logs.py nginx LINES OUT [--seed N]
"""

import argparse
import datetime
import random

NETS4 = ["192.0.2.", "198.51.100.", "203.0.113."]
USERS = ["root", "admin", "test", "oracle", "postgres", "ubuntu", "git", "user",
         "guest", "ftpuser", "deploy", "pi", "support", "mysql", "jenkins"]
STAFF = ["alice", "bob", "deploy", "carol"]
HOSTS = ["bastion", "web01", "db-02"]
KEYS = ["ED25519 SHA256:Qk3L9mXv0cTgq5Yb2n1f8s6eW4rP7hJ0aZuD3kVxN2o",
        "RSA SHA256:9aFq2w6ZrT1yX8uH4kLp0mNs5dC3vB7gJe2iO6tR1qU"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        # Attackers keep coming back: a small pool makes repeat offenders.
        self.attackers = [self.addr() for _ in range(400)]
        self.friends = [self.addr() for _ in range(20)]

    def addr(self):
        r = self.r
        if r.random() < 0.1:
            return "2001:db8:%x::%x" % (r.randrange(1, 0xffff), r.randrange(1, 0xffff))
        return r.choice(NETS4) + str(r.randrange(1, 255))


def syslog_time(t):
    return t.strftime("%b ") + ("%2d" % t.day) + t.strftime(" %H:%M:%S")


def auth_sessions(g):
    """Yields (program, pid, [messages]) for one ssh connection or one piece
    of unrelated system noise."""
    r = g.r
    pid = 1000
    while True:
        pid = pid + r.randrange(1, 40)
        if pid > 4000000:
            pid = 1000
        x = r.random()
        port = r.randrange(1024, 65535)
        if x < 0.30:
            ip = r.choice(g.attackers)
            user = r.choice(USERS)
            invalid = user not in ("root", "git", "deploy")
            msgs = ["Connection from %s port %d on 192.0.2.1 port 22 rdomain \"\"" % (ip, port)]
            if invalid:
                msgs.append("Invalid user %s from %s port %d" % (user, ip, port))
            msgs.append("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
                        "tty=ssh ruser= rhost=%s%s" % (ip, "" if invalid else "  user=" + user))
            for _ in range(r.randrange(1, 4)):
                msgs.append("Failed password for %s%s from %s port %d ssh2"
                            % ("invalid user " if invalid else "", user, ip, port))
            end = r.random()
            if end < 0.3:
                msgs.append("error: maximum authentication attempts exceeded for %s%s from %s "
                            "port %d ssh2 [preauth]" % ("invalid user " if invalid else "", user, ip, port))
                msgs.append("Disconnecting %s user %s %s port %d: Too many authentication "
                            "failures [preauth]" % ("invalid" if invalid else "authenticating", user, ip, port))
            elif end < 0.7:
                msgs.append("Received disconnect from %s port %d:11: Bye Bye [preauth]" % (ip, port))
                msgs.append("Disconnected from %s user %s %s port %d [preauth]"
                            % ("invalid" if invalid else "authenticating", user, ip, port))
            else:
                msgs.append("Connection closed by %s user %s %s port %d [preauth]"
                            % ("invalid" if invalid else "authenticating", user, ip, port))
            yield ("sshd", pid, msgs)
        elif x < 0.42:
            ip = r.choice(g.attackers)
            msgs = [r.choice([
                "Connection closed by %s port %d [preauth]" % (ip, port),
                "Received disconnect from %s port %d:11: Bye Bye [preauth]" % (ip, port),
                "Did not receive identification string from %s port %d" % (ip, port),
                "Unable to negotiate with %s port %d: no matching key exchange method found. "
                "Their offer: diffie-hellman-group1-sha1 [preauth]" % (ip, port),
                "banner exchange: Connection from %s port %d: invalid format" % (ip, port),
                "error: kex_exchange_identification: Connection closed by remote host",
                "Connection reset by %s port %d [preauth]" % (ip, port),
            ])]
            yield ("sshd", pid, msgs)
        elif x < 0.52:
            ip = r.choice(g.friends)
            user = r.choice(STAFF)
            how = r.choice(["publickey", "publickey", "password"])
            accepted = "Accepted %s for %s from %s port %d ssh2" % (how, user, ip, port)
            if how == "publickey":
                accepted += ": " + r.choice(KEYS)
            msgs = [accepted,
                    "pam_unix(sshd:session): session opened for user %s(uid=1000) by (uid=0)" % user]
            if r.random() < 0.5:
                msgs.append("Received disconnect from %s port %d:11: disconnected by user" % (ip, port))
                msgs.append("Disconnected from user %s %s port %d" % (user, ip, port))
            msgs.append("pam_unix(sshd:session): session closed for user %s" % user)
            yield ("sshd", pid, msgs)
        elif x < 0.70:
            user = r.choice(["root", "www-data"])
            yield ("CRON", pid, [
                "pam_unix(cron:session): session opened for user %s(uid=0) by (uid=0)" % user,
                "(%s) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)" % user,
                "pam_unix(cron:session): session closed for user %s" % user])
        elif x < 0.80:
            s = r.randrange(1, 9999)
            user = r.choice(STAFF)
            yield ("systemd-logind", 612, [
                "New session %d of user %s." % (s, user),
                "Session %d logged out. Waiting for processes to exit." % s,
                "Removed session %d." % s])
        elif x < 0.90:
            user = r.choice(STAFF)
            yield ("systemd", 1, [r.choice([
                "Started session-%d.scope - Session %d of User %s." % (pid, pid, user),
                "Starting user@1000.service - User Manager for UID 1000...",
                "Started user@1000.service - User Manager for UID 1000.",
                "logrotate.service: Deactivated successfully.",
                "Finished logrotate.service - Rotate log files.",
            ])])
        else:
            user = r.choice(STAFF)
            yield ("sudo", None, [
                "   %s : TTY=pts/%d ; PWD=/home/%s ; USER=root ; COMMAND=/usr/bin/systemctl "
                "restart nginx" % (user, r.randrange(0, 4), user),
                "pam_unix(sudo:session): session opened for user root(uid=0) by %s(uid=1000)" % user,
                "pam_unix(sudo:session): session closed for user root"])


def gen_auth(lines, out, seed):
    g = Gen(seed)
    r = g.r
    t = datetime.datetime(2026, 10, 20, 0, 0, 0)
    # A few connections are open at once, so their lines interleave as in a
    # real auth.log (and multi-line ids are tracked across other lines).
    sessions = auth_sessions(g)
    active = []
    n = 0
    with open(out, "w") as f:
        while n < lines:
            if len(active) < 6 and (not active or r.random() < 0.3):
                prog, pid, msgs = next(sessions)
                active.append([prog, pid, r.choice(HOSTS[:1] * 8 + HOSTS[1:]), msgs, 0])
            s = active[r.randrange(len(active))]
            prog, pid, host, msgs, i = s
            t += datetime.timedelta(seconds=r.choice([0, 0, 1, 1, 2, 3]))
            tag = prog if pid is None else "%s[%d]" % (prog, pid)
            f.write("%s %s %s: %s\n" % (syslog_time(t), host, tag, msgs[i]))
            n += 1
            s[4] += 1
            if s[4] >= len(msgs):
                active.remove(s)


AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
PAGES = ["/", "/index.html", "/about", "/blog/2026/10/release-notes", "/static/app.css",
         "/static/app.js", "/static/logo.svg", "/favicon.ico", "/api/v1/items?page=2",
         "/feed.xml", "/contact"]
PROBES = ["/wp-login.php", "/.env", "/phpmyadmin/index.php", "/admin/config.php",
          "/.git/config", "/cgi-bin/luci", "/xmlrpc.php", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php"]


def gen_nginx(lines, out, seed):
    g = Gen(seed)
    r = g.r
    t = datetime.datetime(2026, 10, 20, 0, 0, 0)
    with open(out, "w") as f:
        for _ in range(lines):
            t += datetime.timedelta(seconds=r.choice([0, 0, 0, 1, 1, 2]))
            stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000")
            x = r.random()
            user = "-"
            if x < 0.85:
                ip = r.choice(g.friends) if r.random() < 0.5 else g.addr()
                method, path, status = r.choice(["GET"] * 9 + ["POST"]), r.choice(PAGES), 200
                if r.random() < 0.05:
                    status = r.choice([301, 304])
                size = r.randrange(200, 60000)
                ref = r.choice(["-", "https://www.example.com/", "https://www.example.org/search?q=x"])
                agent = r.choice(AGENTS)
            elif x < 0.93:
                ip = r.choice(g.attackers)
                method, path, status = r.choice(["GET", "POST", "HEAD"]), r.choice(PROBES), 404
                size, ref, agent = 153, "-", r.choice(AGENTS[3:] + ["python-requests/2.31.0"])
            else:
                ip = r.choice(g.attackers)
                user = r.choice(USERS)
                method, path, status = "GET", "/admin/", 401
                size, ref, agent = 179, "-", "Mozilla/5.0 zgrab/0.x"
            f.write('%s - %s [%s] "%s %s HTTP/1.1" %d %d "%s" "%s"\n'
                    % (ip, user, stamp, method, path, status, size, ref, agent))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["auth", "nginx"])
    p.add_argument("lines", type=int)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=3)
    a = p.parse_args()
    (gen_auth if a.kind == "auth" else gen_nginx)(a.lines, a.out, a.seed)


if __name__ == "__main__":
    main()
