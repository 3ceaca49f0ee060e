#!/usr/bin/python3
"""pve-fail2ban-events.service: what the admin sees of this node's bans without asking.

- Metrics: a Prometheus text file for node_exporter's textfile collector, with the metric names of
  fail2ban-prometheus-exporter (f2b_up, f2b_jail_count, f2b_jail_{failed,banned}_{current,total},
  f2b_config_jail_*), plus f2b_jail_banned_enforced (1 when the firewall holds every ban of the
  jail). Written on every ban and unban, when fail2ban stops or starts, and at least every 60 s;
  written to a temporary file in the same directory, then renamed: a scrape never sees half a file.
- Notifications: each ban (and unban, if asked) as a message to root's mail (sendmail) and/or a
  webhook (ntfy, Gotify, or plain JSON). Sent by a thread of their own with a bounded timeout: a
  ban never waits for them, and a dead endpoint costs a log line. The first event goes at once;
  what follows within BATCH_SECONDS goes as one message that counts what it folds.

fail2ban's `pve-fail2ban-events` action appends one line per event to OUTBOX (it never waits);
this daemon wakes on that (inotify) and on fail2ban's socket coming or going, and sleeps
otherwise. The configuration (root only, 0600: it may hold the webhook token) is CONFIG:
    {"node": "pve1", "metrics": "/var/lib/prometheus/node-exporter" or null,
     "notify": {"mail": "root" or "", "webhook": "https://..." or "", "format": "ntfy",
                "token": "..." or "", "unban": false} or null}
Python standard library only, with nodelib and state.py beside this file.
"""

import http.client
import json
import os
import queue
import secrets
import select
import stat
import subprocess
import sys
import syslog
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import (  # noqa: E402
    EVENTS_CONFIG,
    EVENTS_STATE,
    FAIL2BAN_LOG,
    IN_CREATE,
    IN_DELETE,
    JAIL_NAME,
    NEW_DATA,
    RECEIVED,
    RECEIVED_WINDOW,
    Fail2ban,
    Tail,
    canonical_address,
    inotify,
    jail_names,
    jail_status,
    log_event,
    parse_received,
    read_expected,
    read_tail,
    token_exposed,
    watch,
)

CONFIG = EVENTS_CONFIG
VAR = EVENTS_STATE
OUTBOX = f"{VAR}/outbox"
FAIL2BAN_RUN = "/run/fail2ban"  # its socket appears and goes away here
LOG = FAIL2BAN_LOG  # fail2ban's own log: its Ignore of the canary
PROM = "pve-fail2ban.prom"  # the file's name in the textfile directory
REFRESH = 60  # seconds: the metrics are rewritten at least this often
BATCH_SECONDS = 10  # after a message, later events are folded into one message per this window
LISTED = 20  # a folded message names this many events and counts the rest
TIMEOUT = 10  # seconds for one webhook request or one sendmail
# Cluster-wide bans: a ban this node received from a peer is told by the peer that made it, not
# again by every node. The receiver records it (end, jail, address, origin, time) just before it
# bans; a ban made this soon after such a record is that one.


def log(message):
    syslog.syslog(syslog.LOG_NOTICE, message)


# ---- metrics ------------------------------------------------------------------------------------

HELP = {
    "f2b_up": "Check if the fail2ban server is up",
    "f2b_jail_count": "Number of defined jails",
    "f2b_jail_failed_current": "Number of current failures on this jail's filter",
    "f2b_jail_failed_total": "Number of total failures on this jail's filter",
    "f2b_jail_banned_current": "Number of IPs currently banned in this jail",
    "f2b_jail_banned_total": "Total number of IPs banned by this jail (includes expired bans)",
    "f2b_config_jail_ban_time": "How long an IP is banned for in this jail (in seconds)",
    "f2b_config_jail_find_time": "How far back will the filter look for failures in this jail "
    "(in seconds)",
    "f2b_config_jail_max_retries": "The number of failures allowed until the IP is banned by "
    "this jail",
    "f2b_jail_banned_enforced": "1 when the firewall holds every IP this jail lists as banned "
    "(pve-fail2ban)",
}
JAIL_FIELDS = {
    "f2b_jail_failed_current": "failed",
    "f2b_jail_failed_total": "total_failed",
    "f2b_jail_banned_current": "banned",
    "f2b_jail_banned_total": "total_banned",
    "f2b_config_jail_ban_time": "bantime",
    "f2b_config_jail_find_time": "findtime",
    "f2b_config_jail_max_retries": "maxretry",
    "f2b_jail_banned_enforced": "enforced",
}


def label(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prom_text(up, jails, expected=(), canary_ages=None, canary_every=None, shared=None):
    """The Prometheus text exposition of `up` (bool) and `jails` ({name: {field: number}}, the
    fields of JAIL_FIELDS; a field missing is left out); `expected`: our jails that must run here
    (f2b_jail_expected); `canary_ages`: {jail: seconds since its canary was last seen}."""
    lines = []
    if expected:
        lines += ["# HELP f2b_jail_expected 1 for each jail of pve-fail2ban that must run here",
                  "# TYPE f2b_jail_expected gauge",
                  *(f'f2b_jail_expected{{jail="{label(j)}"}} 1' for j in sorted(expected))]  # fmt: skip
    if canary_every:
        lines += ["# HELP f2b_canary_interval_seconds Seconds between two detection canaries of a jail",
                  "# TYPE f2b_canary_interval_seconds gauge", f"f2b_canary_interval_seconds {int(canary_every)}"]  # fmt: skip
    if canary_ages:
        lines += ["# HELP f2b_jail_canary_age_seconds Seconds since the jail last saw its detection "
                  "canary (fail2ban's Ignore of it)", "# TYPE f2b_jail_canary_age_seconds gauge",
                  *(f'f2b_jail_canary_age_seconds{{jail="{label(j)}"}} {int(a)}'
                    for j, a in sorted(canary_ages.items()))]  # fmt: skip
    if shared is not None:
        lines += ["# HELP f2b_jail_failed_shared_total Failures the peers counted and sent here "
                  "(cluster-wide failures), counted here since the events daemon started",
                  "# TYPE f2b_jail_failed_shared_total counter",
                  *(f'f2b_jail_failed_shared_total{{jail="{label(j)}"}} {shared.get(j, 0)}'
                    for j in sorted(set(expected) | set(shared)))]  # fmt: skip
    for name, help_text in HELP.items():
        if name == "f2b_up":
            samples = [f"f2b_up {1 if up else 0}"]
        elif name == "f2b_jail_count":
            samples = [f"f2b_jail_count {len(jails)}"] if up else []
        else:
            field = JAIL_FIELDS[name]
            samples = [
                f'{name}{{jail="{label(jail)}"}} {int(values[field])}'
                for jail, values in sorted(jails.items())
                if values.get(field) is not None
            ]
        if samples:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]
    return "\n".join(lines) + "\n"


def expected_jails():
    """Our jails that must run here, from the deploy's record (nodelib.EXPECTED); [] where there
    is none or it is not one of ours (then no jail is said missing: status.py names that)."""
    try:
        record = read_expected()
    except ValueError:
        return []
    return record["jails"] if record else []


def read_fail2ban():
    """(up, jails) read from fail2ban's socket (nodelib.Fail2ban; the jail's shape: state.py)."""
    import state  # beside this script

    try:
        sock = Fail2ban()
        sock.ask("ping")
        names = jail_names(sock.ask("status"))
        jails = {}
        for name in names:
            try:
                jail = jail_status(sock.ask("status", name))
            except RuntimeError:
                continue  # the jail went away between the two questions
            for key in ("bantime", "findtime", "maxretry"):
                try:
                    value = sock.ask("get", name, key)
                except RuntimeError:
                    value = None
                jail[key] = int(value) if str(value).lstrip("-").isdigit() else None
            held = set(state.firewall_holds(name))
            jail["enforced"] = int(all(ip in held for ip in jail["banned_ips"]))
            jails[name] = jail
        sock.close()
        return True, jails
    except Exception:  # noqa: BLE001 - no socket, refused, a dying server: fail2ban is not up
        return False, {}


def write_atomically(directory, name, text):
    """`text` as `directory`/`name`, mode 0644, replaced in one rename: a scrape never sees half a
    file. The directory (node_exporter's, which its user may own) is opened once without following
    a symlink and everything happens inside it: a new file of an unpredictable name, made with
    O_EXCL|O_NOFOLLOW, then renamed over `name` (a symlink planted there is replaced, never
    followed). A directory that is itself a symlink is refused with a log line (once), and nothing
    is written. True when written."""
    try:  # node_exporter's package makes the directory: never made here (through whose links?)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        return refused(
            directory, f"cannot be opened as a directory without following a symlink ({error})"
        )
    temp = f".{name}.{secrets.token_hex(8)}"
    try:
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
        try:
            os.fchmod(out, 0o644)  # node_exporter reads it as its own user
            data = text.encode()
            while data:
                data = data[os.write(out, data) :]
        finally:
            os.close(out)
        os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
        return True
    except OSError as error:  # e.g. a directory planted under our name
        try:
            os.unlink(temp, dir_fd=fd)
        except OSError:
            pass
        return refused(directory, f"refused {name} ({error})")
    finally:
        os.close(fd)


_REFUSED = set()


def refused(directory, why):
    if directory not in _REFUSED:
        _REFUSED.add(directory)
        log(f"metrics not written: {directory} {why}")
    return False


# ---- the detection canary -------------------------------------------------------------------------

# seconds between two canaries of each jail, unless set (fail2ban_canary_interval, at least 10)
CANARY_EVERY = 300
CANARY_READ_AFTER = 5  # seconds: fail2ban has logged its Ignore by then (it reads within a second)
FACILITIES = {"daemon": syslog.LOG_DAEMON, "authpriv": syslog.LOG_AUTHPRIV}
PRIORITIES = {"err": syslog.LOG_ERR, "info": syslog.LOG_INFO}


def append_log(path, text):
    """Append `text` to a product's log file as root, safely: the folder belongs to the product's
    unprivileged user (PBS: backup), who could plant a symlink (root would append to any file) or a
    FIFO (the daemon would block): only a regular file, not followed, never waited for."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class Canary:
    """One synthetic failure line per jail of ours, every CANARY_EVERY seconds, where the jail's
    daemon writes (`config`: events.canary_of), from an address every jail ignores; the age of
    fail2ban's last `Ignore` of it, per jail, read from fail2ban's log. The address is ignored
    before it is counted: it never counts toward a ban, is never banned, shared or told."""

    def __init__(self, config, now):
        self.address, self.jails = config["address"], config["jails"]
        self.every = max(10, int(config.get("every") or CANARY_EVERY))
        self.seen = dict.fromkeys(self.jails, now)  # a jail never seen: its age grows from now
        self.shared = {}  # {jail: failures the peers sent, counted here since this start}
        self.sent, self.checked = 0.0, True
        self.log = Tail(LOG)
        try:  # what fail2ban logged before this start is no sign of a canary
            info = os.stat(LOG)
            self.log.resume((info.st_ino, info.st_size))
        except OSError:
            pass

    def due(self):
        """When the next canary goes (at once after a start)."""
        return self.sent + self.every

    def check_due(self):
        """When fail2ban's Ignore of the last canary is read (a few seconds after it), or None."""
        return None if self.checked else self.sent + CANARY_READ_AFTER

    def send(self, now):
        for jail, how in self.jails.items():
            if how.get("ident"):
                syslog.openlog(how["ident"], syslog.LOG_PID, FACILITIES[how["facility"]])
                syslog.syslog(PRIORITIES[how["priority"]], how["line"])
            if how.get("file"):  # a product's own log: as its API server (web proxy) writes it
                if how.get("access"):
                    stamp = time.strftime("%d/%m/%Y:%H:%M:%S %z", time.localtime(now))
                    text = f"{self.address} - - [{stamp}] {how['line']}\n"
                else:
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))
                    text = f"{stamp[:-2]}:{stamp[-2:]}: {how['line']}\n"
                try:
                    append_log(how["file"], text)
                except OSError as error:
                    log(f"canary of jail {jail} not written to {how['file']}: {error}")
        syslog.openlog("pve-fail2ban-events", syslog.LOG_PID, syslog.LOG_DAEMON)
        self.sent, self.checked = now, False

    def read(self, now):
        # fail2ban's own lines (nodelib.log_event): a failure a peer counted here (`Attempt`), and
        # the canary's failure, ignored (`Ignore <address> by ip`)
        for line in self.log.lines():
            event = log_event(line)
            if event is None:
                continue
            kind, jail, address, _ = event
            if kind == "Attempt":
                self.shared[jail] = self.shared.get(jail, 0) + 1
            elif kind == "Ignore" and address == self.address and jail in self.seen:
                self.seen[jail] = now

    def ages(self, now):
        return {jail: max(0.0, now - seen) for jail, seen in self.seen.items()}


# ---- notifications ------------------------------------------------------------------------------


def parse_event(line):
    """An outbox line -> {kind, jail, ip, failures, bantime} or None (start/stop, or garbage)."""
    words = line.split()
    try:
        if len(words) == 5 and words[0] == "ban" and JAIL_NAME.fullmatch(words[1]):
            if words[3].isdigit() and (words[4] == "-1" or words[4].isdigit()):
                return {
                    "kind": "ban",
                    "jail": words[1],
                    "ip": canonical_address(words[2]),
                    "failures": words[3],
                    "bantime": words[4],
                }
        if len(words) == 3 and words[0] == "unban" and JAIL_NAME.fullmatch(words[1]):
            return {"kind": "unban", "jail": words[1], "ip": canonical_address(words[2])}
    except ValueError:
        pass
    return None


def received_from_a_peer(event, now, path=RECEIVED):
    """True when `event` is a ban this node made for a peer (see RECEIVED): its record is the last
    one of that jail and address, written within RECEIVED_WINDOW seconds."""
    for line in reversed(read_tail(path, 256 << 10)):
        record = parse_received(line)
        if record and (record.jail, record.address) == (event["jail"], event["ip"]):
            return now - record.at <= RECEIVED_WINDOW
    return False


def describe(event):
    if event["kind"] == "ban":
        length = "forever" if event["bantime"] == "-1" else f"for {event['bantime']} s"
        return (
            f"banned {event['ip']} in jail {event['jail']} after {event['failures']} failures, "
            f"{length}"
        )
    return f"unbanned {event['ip']} in jail {event['jail']}"


def message(node, events, folded=0, folded_bans=0):
    """(title, text, data) of one message listing `events`; `folded` more events (of which
    `folded_bans` bans) are counted, not listed."""
    total = len(events) + folded
    bans = sum(1 for e in events if e["kind"] == "ban") + folded_bans
    if total == 1:
        title = f"fail2ban on {node}: {describe(events[0])}"
    else:
        title = f"fail2ban on {node}: {bans} bans, {total - bans} unbans"
    lines = [f"{node}: {describe(e)}" for e in events]
    if folded:
        lines.append(f"... and {folded} more ({folded_bans} bans), folded into this message")
    data = {"node": node, "events": events, "folded": folded, "count": total}
    return title, "\n".join(lines) + "\n", data


def fold(events):
    """Events waiting to be sent -> (the LISTED first, how many more, how many of those are bans)."""
    rest = events[LISTED:]
    return events[:LISTED], len(rest), sum(1 for e in rest if e["kind"] == "ban")


def webhook_request(config, title, text, data):
    """urllib Request for the webhook in its format; the token goes in a header, never the URL."""
    fmt, url, token = config["format"], config["webhook"], config.get("token") or ""
    headers = {"User-Agent": "pve-fail2ban"}
    if fmt == "ntfy":
        body = text.encode()
        headers.update({"Title": title, "Tags": "rotating_light", "Content-Type": "text/plain"})
        if token:
            headers["Authorization"] = f"Bearer {token}"
    elif fmt == "gotify":
        url = url.rstrip("/") + "/message"
        body = json.dumps({"title": title, "message": text, "priority": 5}).encode()
        headers["Content-Type"] = "application/json"
        if token:
            headers["X-Gotify-Key"] = token
    else:
        body = json.dumps({"title": title, **data}).encode()
        headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that answers with a redirect is not followed: the token goes to the URL the admin
    set and nowhere else (urllib keeps the header across hosts)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(
            req.full_url, code, f"redirect to {newurl[:200]!r} not followed", headers, fp
        )


OPENER = urllib.request.build_opener(NoRedirect)


def send(config, node, events, folded=0, folded_bans=0):
    """One message to every channel configured; each failure is one log line."""
    title, text, data = message(node, events, folded, folded_bans)
    exposed = config.get("webhook") and token_exposed(config["webhook"], config.get("token"))
    if exposed:
        log(f"notification not sent to the webhook: {exposed}")
    elif config.get("webhook"):
        try:
            with OPENER.open(webhook_request(config, title, text, data), timeout=TIMEOUT):
                pass
        except (OSError, urllib.error.URLError, ValueError, http.client.HTTPException) as error:
            log(f"notification not delivered to the webhook: {error!r}"[:500])
    if config.get("mail"):
        mail = EmailMessage()
        mail["To"], mail["From"], mail["Subject"] = config["mail"], "root", title
        mail.set_content(text)
        try:
            done = subprocess.run(
                ["/usr/sbin/sendmail", "-oi", "-t"],
                input=mail.as_bytes(),
                capture_output=True,
                timeout=TIMEOUT * 3,
            )
            if done.returncode != 0:
                log(f"notification mail not accepted by sendmail: {done.stderr.decode()[-200:]}")
        except (OSError, subprocess.TimeoutExpired) as error:
            log(f"notification mail not sent: {error}")


def notifier(config, node, events):
    """Thread: send what `events` (a Queue) brings; the first at once, then at most one message
    per BATCH_SECONDS, folding what came meanwhile."""
    while True:
        waiting = [events.get()]
        while True:
            try:
                waiting.append(events.get_nowait())
            except queue.Empty:
                break
        try:
            send(config, node, *fold(waiting))
        except Exception as error:  # noqa: BLE001 - whatever goes wrong, the next ban is told
            log(f"notification not sent: {error!r}")
        time.sleep(BATCH_SECONDS)


# ---- the daemon ---------------------------------------------------------------------------------


def main():
    with open(CONFIG) as config_file:
        config = json.load(config_file)
    node, directory, notify = config["node"], config.get("metrics"), config.get("notify")
    os.makedirs(VAR, mode=0o700, exist_ok=True)
    fd = inotify(VAR, NEW_DATA)
    watching_run = fd is not None and watch(fd, FAIL2BAN_RUN, IN_CREATE | IN_DELETE)
    events = queue.Queue()
    if notify:
        threading.Thread(target=notifier, args=(notify, node, events), daemon=True).start()
    outbox = Tail(OUTBOX)
    log(f"metrics {'in ' + directory if directory else 'off'}; notifications "
        f"{'to ' + ', '.join(k for k in ('mail', 'webhook') if notify and notify.get(k)) if notify else 'off'}")  # fmt: skip
    canary = Canary(config["canary"], time.time()) if directory and config.get("canary") else None
    dirty, last = True, 0.0
    while True:
        for line in outbox.lines():
            dirty = True
            event = parse_event(line)
            if event and notify and (event["kind"] == "ban" or notify.get("unban")):
                if not (event["kind"] == "ban" and received_from_a_peer(event, time.time())):
                    events.put(event)
        if canary and time.time() >= canary.due():
            canary.send(time.time())
        if canary and canary.check_due() is not None and time.time() >= canary.check_due():
            canary.checked, dirty = True, True  # its Ignore is read with the next metrics
        now = time.monotonic()
        if directory and (dirty or now - last >= REFRESH):
            up, jails = read_fail2ban()
            expected = expected_jails()
            ages = None
            if canary:
                canary.read(time.time())
                ages = canary.ages(time.time())
            every = canary.every if canary else None
            shared = canary.shared if canary else None
            write_atomically(directory, PROM, prom_text(up, jails, expected, ages, every, shared))
            dirty, last = False, now
            if fd is not None and not watching_run:  # fail2ban made its run directory since
                watching_run = watch(fd, FAIL2BAN_RUN, IN_CREATE | IN_DELETE)
        outbox.rotate()
        wait = max(0.0, REFRESH - (time.monotonic() - last)) if directory else None
        if canary:  # the canary's own time, and its Ignore read a few seconds after it
            times = [canary.due()] + ([canary.check_due()] if canary.check_due() else [])
            wait = min(wait, max(0.0, min(times) - time.time()))
        if fd is None:  # no inotify: look twice a second
            wait = 0.5 if wait is None else min(wait, 0.5)
        ready, _, _ = select.select([fd] if fd is not None else [], [], [], wait)
        if ready:
            time.sleep(0.2)  # a burst (fail2ban stopping every jail, a flood) is read as one
            try:
                os.read(fd, 65536)
            except BlockingIOError:
                pass
            dirty = True


if __name__ == "__main__":
    main()
