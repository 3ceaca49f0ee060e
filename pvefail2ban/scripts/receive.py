#!/usr/bin/python3
"""The only thing a peer's share key can do on this node (authorized_keys forced command, with
`restrict`): hand over ban requests, one per line, which this receiver validates and applies.

    receive.py ORIGIN        (ORIGIN: the sending node's name, fixed by its authorized_keys line)

Request:  ban <jail> <ip> <seconds> <age>   (seconds left of the origin's ban, -1 = for ever;
                                           age: seconds since the origin made it)
          attempt <jail> <ip> <age>         a failure the origin's jail counted (fail2ban's
                                           `Found`), age seconds ago: counted here as one of this
                                           jail's (fail2ban's `set <jail> attempt`), so that
                                           maxretry failures anywhere in the cluster ban
Answers:  ok <jail> <ip> <what>           banned here at least that long: `made` (banned now),
                                          `extended` (a ban received before now ends later) or
                                          `kept` (already banned here at least as long, or by this
                                          node itself: nothing changed)
          ok <jail> <ip> counted          (attempt) counted as a failure here
          ignored <jail> <ip> <why>       in this node's ignoreip / its own address, or lifted
                                          here (unban.py) after the origin made it: not banned;
                                          (attempt) older than this jail's findtime: not counted
          refused <why>                   malformed, or a jail that is not ours here: not retried
          later <jail> <ip> <why>         fail2ban does not answer: the sender keeps it and retries
          full <jail> <ip> <why>          no room here now (the origin's quota, the record
                                          file): the sender keeps it and tries again later

No request can shorten or lift a ban. A ban is made only where the address is not banned in that
jail yet; where it is, only a ban this receiver made for a peer can be made to last longer (never
shorter), and a ban of this node's own is left as it is (its end is this node's to decide: a
request that made it longer would also have to know it, and fail2ban tells a ban's end only in its
whole ban list). What was made is recorded in RECEIVED
(nodelib.Received) just before the ban, so this node's share daemon never sends it on (no loops),
lifts it when the origin's time is over and keeps it until then where this jail bans for less.

Bounded: a request line is at most MAX_LINE bytes (a longer one ends the connection), a connection
at most MAX_REQUESTS requests (the sender reconnects), the record file at most MAX_RECEIVED bytes,
and one peer at most MAX_PER_ORIGIN bans here at once.
Refusals are logged (journal, tag pve-fail2ban-receive). Standard library, nodelib beside this
file, and fail2ban's own address logic for its ignoreip.
"""

import fcntl
import json
import math
import os
import sys
import syslog
import time

from nodelib import (
    ATTEMPTS,
    LIFTED,
    MAX_ATTEMPTS_FILE,
    MAX_REQUEST,
    NAME,
    PEERS,
    RECEIVED,
    Fail2ban,
    Received,
    answer,
    attempt_record,
    bannable_address,
    later_end,
    parse_lifted,
    parse_received,
    parse_request,
    read_tail,
    received_line,
    shown,
)

MAX_LINE = MAX_REQUEST  # bytes of one request (nodelib: the share protocol's grammar)
MAX_REQUESTS = 50_000  # per connection
MAX_RECEIVED = 8 << 20  # bytes of RECEIVED: about 150,000 records (the share daemon compacts it)
MAX_PER_ORIGIN = 50_000  # bans one peer may hold here at once: no peer fills RECEIVED for all
COUNT_AGAIN = 5  # seconds between two counts of each peer's bans over all records (Records.count)
# failures one peer may have counted here, all its connections together: ATTEMPT_RATE a second
# after a burst of ATTEMPT_BURST (a flood of 10,000 failures in a minute on one node passes); each
# is a line of fail2ban's log here, and maxretry of them a ban of this node's own
ATTEMPT_RATE = 50
ATTEMPT_BURST = 10_000
ATTEMPT_TAKE = 100  # taken from the budget's file at a time (one locked write per 100)
LOGGED = 10  # lines logged per connection about a peer's refused or ignored requests; then counted
# ... and per origin, all its connections together (a peer that reconnects without end): LOG_RATE
# lines a second after a burst of LOG_BURST
LOG_RATE = 0.2
LOG_BURST = 30
MAX_REFUSED = 1000  # malformed requests on one connection before it is closed
# connections one peer may open here, all together: CONNECT_RATE a second after a burst of
# CONNECT_BURST (a sender keeps one open while it has something to send, and 30 s after). Over
# it, a connection is answered `later` and ends before anything else is read (no RECEIVED, no
# fail2ban): a peer that reconnects without end costs sshd and a Python start, no more
CONNECT_RATE = 0.5
CONNECT_BURST = 30


class Full(Exception):
    """No room for this ban now: the sender keeps it and tries again later."""


MAX_SECONDS = 10 * 366 * 86400  # a ban longer than ten years is no ban time anyone sent


def log(message):
    syslog.syslog(syslog.LOG_WARNING, message)


def parse(line, jails):
    """(jail, address, seconds, age) of a valid request line, else raise ValueError(why)."""
    request = parse_request(line)
    if request[0] != "ban":
        raise ValueError(f"malformed request {shown(line, 120)}")
    _, jail, address, seconds, age = request
    if jail not in jails:
        raise ValueError(f"jail {jail!r} is not one of ours on this node ({', '.join(jails)})")
    address = bannable_address(address)  # one canonical address, as fail2ban bans it
    if seconds == 0 or seconds > MAX_SECONDS:
        raise ValueError(f"ban time {seconds} out of range")
    return jail, address, seconds, age


def parse_attempt(line, jails):
    """(jail, address, age) of a valid attempt line, else raise ValueError(why)."""
    request = parse_request(line)
    if request[0] != "attempt":
        raise ValueError(f"malformed request {shown(line, 120)}")
    _, jail, address, age = request
    if jail not in jails:
        counted = ", ".join(jails) or "none: cluster-wide failures are off"
        raise ValueError(f"jail {jail!r}: its failures are not counted here (counted: {counted})")
    return jail, bannable_address(address), age


def decide(end, banned_here, record, now):
    """What a valid request for a ban ending at `end` (0: never) does here: "made" (not banned in
    the jail: ban it), "extended" (banned by an earlier request, `record`, that ends sooner: it
    ends at `end` now) or "kept" (nothing changes: banned here at least as long, or banned by this
    node itself, which a request never touches: its end is this node's to decide)."""
    if not banned_here:
        return "made"
    if record is not None and (record.end == 0 or record.end > now):
        return "extended" if later_end(end, record.end) else "kept"
    return "kept"


class Records:
    """RECEIVED as this connection knows it ({(jail, address): Received}), read on as it grows."""

    def __init__(self):
        self.by_key, self.inode, self.offset = {}, None, 0
        self.counts, self.counted_at = {}, None  # origin -> bans that run, as of counted_at

    def count(self, origin):
        """Bans made here for `origin` that still run (a forever one included): counted over all
        records at most once a COUNT_AGAIN seconds, kept up to date with each new record between
        (one that ran out meanwhile still counts until then: the quota is met a little early)."""
        now = time.time()
        if self.counted_at is None or now - self.counted_at > COUNT_AGAIN:
            self.counts, self.counted_at = {}, now
            for record in self.by_key.values():
                if record.end == 0 or record.end > now:
                    self.counts[record.origin] = self.counts.get(record.origin, 0) + 1
        return self.counts.get(origin, 0)

    def _take(self, record):
        old = self.by_key.get((record.jail, record.address))
        if self.counted_at is not None:
            if old is not None and (old.end == 0 or old.end > self.counted_at):
                self.counts[old.origin] = self.counts.get(old.origin, 0) - 1
            self.counts[record.origin] = self.counts.get(record.origin, 0) + 1
        self.by_key[(record.jail, record.address)] = record

    def refresh(self, file):
        """Read what was added to `file` (RECEIVED, opened "a+b" and locked) since last time."""
        info = os.fstat(file.fileno())
        if info.st_ino != self.inode or info.st_size < self.offset:  # compacted or replaced
            self.by_key, self.inode, self.offset = {}, info.st_ino, 0
            self.counted_at = None
        file.seek(self.offset)
        data = file.read()
        data = data[: data.rfind(b"\n") + 1]
        self.offset += len(data)
        for line in data.decode(errors="replace").splitlines():
            record = parse_received(line)
            if record:
                self._take(record)
        return info.st_size


class Lifted:
    """LIFTED as written by unban.py, read again only when it changed."""

    def __init__(self):
        self.seen, self.times = None, {}

    def after(self, address, when):
        try:
            info = os.stat(LIFTED)
            key = (info.st_ino, info.st_size, info.st_mtime_ns)
        except OSError:
            return False
        if key != self.seen:
            self.seen, self.times = key, parse_lifted(read_tail(LIFTED))
        return self.times.get(address, -1.0) >= when


class Here:
    """This node's fail2ban-server, over its socket (nodelib.Fail2ban)."""

    def __init__(self):
        self.server, self.ignore, self.bantimes, self.findtimes = Fail2ban(), {}, {}, {}

    def ask(self, *command):
        """fail2ban's answer. When it closed this connection (it restarted since: a deploy, a
        reload), once more on a new one, with what was read of its settings forgotten (a request
        that timed out is not sent again: it may have been done)."""
        try:
            return self.server.ask(*command)
        except ConnectionError:
            self.server.close()
            self.server, self.ignore, self.bantimes, self.findtimes = Fail2ban(), {}, {}, {}
            return self.server.ask(*command)

    def ignored(self, jail, address):
        """Why `address` is never banned in `jail` here, or None (fail2ban's own address logic)."""
        from fail2ban.server.ipdns import DNSUtils, IPAddr

        if jail not in self.ignore:
            self.ignore[jail] = (
                [str(entry) for entry in self.ask("get", jail, "ignoreip")],
                bool(self.ask("get", jail, "ignoreself")),
            )
        entries, ignoreself = self.ignore[jail]
        ip = IPAddr(address)
        if ignoreself and ip in DNSUtils.getSelfIPs():
            return "this node's own address"
        for entry in entries:
            nets = [IPAddr(entry)] if IPAddr(entry).isValid else DNSUtils.textToIp(entry, "yes")
            if any(ip.isInNet(net) for net in nets):
                return f"in this node's ignoreip ({entry})"
        return None

    def findtime(self, jail):
        """The jail's findtime here in seconds: how long a failure counts."""
        if jail not in self.findtimes:
            self.findtimes[jail] = int(self.ask("get", jail, "findtime"))
        return self.findtimes[jail]

    def bantime(self, jail):
        """The jail's ban time here in seconds (-1: for ever)."""
        if jail not in self.bantimes:
            self.bantimes[jail] = int(self.ask("get", jail, "bantime"))
        return self.bantimes[jail]


def locked_received():
    """RECEIVED opened ("a+b") and locked, the file that is there now: the share daemon compacts
    it by putting a new file in its place under the old one's lock, so a file locked after that
    is the old one, and is opened again (a few times at most: compaction is rare)."""
    for _ in range(5):
        file = open(RECEIVED, "a+b")
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            if os.fstat(file.fileno()).st_ino == os.stat(RECEIVED).st_ino:
                return file
        except OSError:
            pass
        file.close()
    raise OSError(f"{RECEIVED} is replaced again and again")


def apply(here, records, jail, address, end, origin):
    """Make, extend or keep the ban (decide), recorded first; under RECEIVED's lock, so that no
    other connection decides about the same address meanwhile. Returns what was done."""
    with locked_received() as file:
        if records.refresh(file) > MAX_RECEIVED:
            raise Full(f"{RECEIVED} is full ({MAX_RECEIVED} bytes)")
        now = time.time()
        record = records.by_key.get((jail, address))
        if record is not None and record.end and record.end <= now:
            record = None  # over: lifted, or about to be
        banned_here = bool(here.ask("get", jail, "banned", address))
        what = decide(end, banned_here, record, now)
        if what == "made" and records.count(origin) >= MAX_PER_ORIGIN:
            raise Full(f"{origin} holds {MAX_PER_ORIGIN} bans here already")
        if what == "made":
            made = math.floor(now * 1000) / 1000
            record = Received(end, jail, address, origin, made, here.bantime(jail))
        elif what == "extended":
            record = record._replace(end=end, origin=origin)  # made then: same time, same jail time
        if what != "kept":
            file.write(received_line(record).encode())
            file.flush()
        if what == "made":
            here.ask("set", jail, "banip", address)
        return what


class Budget:
    """How many more failures `origin` may have counted here (or, `kind` "logged", lines logged
    about its requests): a token bucket (`rate` a second, at most `burst`) in a file of its own,
    which all its connections share."""

    def __init__(
        self, origin, kind="budget", rate=ATTEMPT_RATE, burst=ATTEMPT_BURST, take=ATTEMPT_TAKE
    ):
        self.path = os.path.join(os.path.dirname(RECEIVED), f"{kind}.{origin}")
        self.rate, self.burst, self.step = rate, burst, take
        self.left = 0  # taken from the file, not used yet
        self.dry_until = 0.0  # the file was empty: not read again before `take` can be

    def take(self, now):
        """True when one more may be spent now. Over the budget the file is read (and written)
        at most once per take / rate seconds, not per request."""
        if self.left == 0 and now >= self.dry_until:
            self.left = self.refill(now)
            if self.left == 0:
                self.dry_until = now + self.step / self.rate
        if self.left == 0:
            return False
        self.left -= 1
        return True

    def refill(self, now):
        with open(self.path, "a+") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            file.seek(0)
            try:
                tokens, at = (float(word) for word in file.read(64).split())
            except ValueError:  # none yet: a full bucket
                tokens, at = self.burst, now
            if not (math.isfinite(tokens) and math.isfinite(at)):
                tokens, at = 0.0, now
            tokens = min(self.burst, max(0.0, tokens) + max(0.0, now - at) * self.rate)
            taken = int(min(self.step, tokens))
            file.truncate(0)
            file.write(f"{tokens - taken:.3f} {now:.3f}\n")
        return taken


def connection_allowed(origin, now):
    """True while `origin`'s connections here are within CONNECT_RATE / CONNECT_BURST (one locked
    write of its budget file per connection; a file that cannot be written lets it in)."""
    try:
        return Budget(origin, "connections", CONNECT_RATE, CONNECT_BURST, take=1).take(now)
    except OSError:
        return True


def record_attempt(jail, address, origin, now):
    """ATTEMPTS gets the failure, before fail2ban counts it: a ban it completes is the origin's
    (share.charged_to). False where the file is full (the share daemon reads none of it)."""
    with open(ATTEMPTS, "a") as file:
        if os.fstat(file.fileno()).st_size > MAX_ATTEMPTS_FILE:
            return False
        file.write(attempt_record(now, jail, address, origin))  # one short O_APPEND write
    return True


def quota_full(records, origin):
    """True when `origin` holds MAX_PER_ORIGIN bans here (a ban its failures alone made counts)."""
    with locked_received() as file:
        records.refresh(file)
    return records.count(origin) >= MAX_PER_ORIGIN


def count_attempt(here, lifted, budget, jail, address, age, origin, records=None):
    """A failure of the origin's counted here (fail2ban's `set <jail> attempt <ip>`, which checks
    no ignoreip before fail2ban 1.1.1: checked here first, as for a ban, and sent without a
    message: each message would count once more). Not where the address is banned here already
    (fail2ban would make that ban longer: a ban of this node's own is this node's to decide), nor
    one older than an unban.py lift here, nor beyond the origin's budget or its quota of bans
    here, nor unrecorded (a ban it completes must be known as the origin's). Its answer."""
    now = time.time()
    why = here.ignored(jail, address)
    if not why and age > here.findtime(jail):
        why = f"older than this jail's findtime ({here.findtime(jail)} s)"
    # the failure's time is known to the second (fail2ban's Found line): a lift in that second
    # may have come before it, and hides it not
    if not why and lifted.after(address, now - age + 1):
        why = "lifted here (unban.py) after it was made"
    # the budget before fail2ban is asked: a flood of failures of a banned address costs it too
    if not why and not budget.take(now):
        why = f"over the origin's budget ({ATTEMPT_RATE} failures a second here)"
    if not why and here.ask("get", jail, "banned", address):
        why = "banned here already"
    if not why and records is not None and quota_full(records, origin):
        why = f"{origin} holds {MAX_PER_ORIGIN} bans here already"
    if not why and not record_attempt(jail, address, origin, now):
        why = f"{ATTEMPTS} is full ({MAX_ATTEMPTS_FILE} bytes): the share daemon reads none"
    if why:
        return answer("ignored", f"{jail} {address} {why}")
    here.ask("set", jail, "attempt", address)
    return answer("ok", f"{jail} {address} counted")


class Said:
    """The journal lines about one connection's refused and ignored requests: the first LOGGED,
    then only counted, and the count logged when the connection ends (a flood of bad requests
    costs a few lines, not one each); `once`: a line said once per connection (why it closed, a
    full quota). Every line within the origin's log budget (LOG_RATE, LOG_BURST), which all its
    connections share: a peer that reconnects without end costs a few lines a minute."""

    def __init__(self, origin):
        self.origin, self.lines, self.quiet = origin, 0, 0
        self.budget = Budget(origin, "logged", LOG_RATE, LOG_BURST, 1)

    def allowed(self):
        try:
            return self.budget.take(time.time())
        except OSError:  # its file cannot be written: the per-connection bound still holds
            return True

    def __call__(self, message, once=False):
        self.lines += 0 if once else 1
        if (once or self.lines <= LOGGED) and self.allowed():
            log(message)
        else:
            self.quiet += 1

    def close(self):
        if self.quiet and self.allowed():
            log(f"{self.origin}: {self.quiet} more refused or ignored requests on one connection")


def serve(origin, jails, requests, counted=()):
    """Answer each line of `requests` (bytes lines, each at most MAX_LINE + 1 long); yields the
    answers. `counted`: the jails whose failures the peers' count here (none: cluster-wide
    failures are off on this node)."""
    said = Said(origin)
    try:
        yield from answers(origin, jails, requests, counted, said)
    finally:
        said.close()


def answers(origin, jails, requests, counted, say):
    """serve's answers; `say`: the connection's Said, for refused and ignored requests."""
    here, records, lifted, budget = None, Records(), Lifted(), Budget(origin)
    full, refused = False, 0  # full: said once per connection
    for count, raw in enumerate(requests):
        if count >= MAX_REQUESTS:
            say(
                f"{origin}: {MAX_REQUESTS} requests on one connection: closed (it reconnects)", True
            )
            return
        if len(raw) > MAX_LINE:
            say(
                f"refused from {origin}: a request longer than {MAX_LINE} bytes; connection closed",
                True,
            )
            yield answer("refused", "request too long")
            return
        line = raw.decode("ascii", errors="replace").rstrip("\n")
        if line.startswith("attempt "):
            try:
                jail, address, age = parse_attempt(line, counted)
                here = here or Here()
                yield count_attempt(here, lifted, budget, jail, address, age, origin, records)
            except ValueError as error:
                refused += 1
                say(f"refused from {origin}: {error}")
                yield answer("refused", str(error))
                if refused >= MAX_REFUSED:
                    say(
                        f"{origin}: {MAX_REFUSED} malformed requests on one connection: closed",
                        True,
                    )
                    return
            except Exception as error:  # noqa: BLE001 - fail2ban down: a failure is not kept
                here = None
                yield answer(
                    "later", f"{jail} {address} fail2ban does not answer: {shown(str(error), 200)}"
                )
            continue
        try:
            jail, address, seconds, age = parse(line, jails)
        except ValueError as error:
            refused += 1
            say(f"refused from {origin}: {error}")
            yield answer("refused", str(error))
            if refused >= MAX_REFUSED:
                say(f"{origin}: {MAX_REFUSED} malformed requests on one connection: closed", True)
                return
            continue
        now = time.time()
        end = 0 if seconds < 0 else int(now) + seconds
        try:
            here = here or Here()
            why = here.ignored(jail, address)
            if not why and lifted.after(address, now - age):
                why = "lifted here (unban.py) after the origin banned it"
            if why:
                say(f"{origin} asked to ban {address} in {jail}: not banned, {why}")
                yield answer("ignored", f"{jail} {address} {why}")
                continue
            what = apply(here, records, jail, address, end, origin)
        except Full as error:
            if not full:  # once per connection: the sender keeps the rest and comes back later
                say(
                    f"full for {origin}: {error}; it keeps its bans and sends them again later",
                    True,
                )
            full = True
            yield answer("full", f"{jail} {address} {error}")
            continue
        except Exception as error:  # noqa: BLE001 - fail2ban down or restarting: try again later
            here = None
            yield answer(
                "later", f"{jail} {address} fail2ban does not answer: {shown(str(error), 200)}"
            )
            continue
        yield answer("ok", f"{jail} {address} {what}")


def main(origin):
    try:
        with open(PEERS) as file:
            config = json.load(file)
        jails, counted = config["jails"], config.get("failures")
        counted = counted if isinstance(counted, list) else []
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        print(answer("refused", f"this node has no share configuration ({error})"), flush=True)
        return 1
    if not connection_allowed(origin, time.time()):
        print(answer("later", f"too many connections from {origin} now"), flush=True)
        return 0
    requests = iter(lambda: sys.stdin.buffer.readline(MAX_LINE + 1), b"")
    for line in serve(origin, jails, requests, counted):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    syslog.openlog("pve-fail2ban-receive")
    name = sys.argv[1] if len(sys.argv) == 2 else ""
    if not NAME.fullmatch(name):
        print(answer("refused", "no origin"), flush=True)
        sys.exit(1)
    os.umask(0o077)
    sys.exit(main(name))
