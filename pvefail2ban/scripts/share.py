#!/usr/bin/python3
"""pve-fail2ban-share.service: every ban of our jails on this node, sent to every peer at once.

fail2ban's pve-fail2ban-share action appends one line per ban to OUTBOX (it never waits for the
network). This daemon wakes on that (inotify; no polling), and sends each ban to every peer over
SSH with this node's own share key, which the peers accept for one thing only: their receiver
(receive.py). One connection per peer at most, opened on demand, kept for LINGER seconds after
its last request; bans not yet acknowledged stay queued (also on disk, PENDING, with how far the
outbox was read) and are sent when the peer answers again (retried every RETRY_MAX seconds at
most), minus the time that has passed; a ban whose time ran out is dropped.

    ban <jail> <ip> <time of ban> <ban time>   (the action's line; ban time -1 = for ever)
    forget <ip>                                (unban.py: drop what is queued for that address)
    claim <jail> <ip>                          (ban.py: a ban received from a peer is this node's
                                               own now: never lifted at the peer's end)

Each request tells the peer the time left and how long ago the ban was made, so a peer where the
address was lifted (unban.py) after that refuses it, whatever the network delayed.

Where PEERS says "failures" (issue 24, cluster-wide counting), every failure our jails count here
(fail2ban's `Found` line in its log) is sent too, as `attempt <jail> <ip> <age>`: the peer counts it
as one of its own, so that maxretry failures anywhere in the cluster ban. A failure a peer sent is
logged there as `Attempt`, never `Found`: it is never sent on. Failures are queued per peer up to
MAX_ATTEMPTS (a flood drops the oldest), never kept on disk, and dropped once older than findtime.

Bans this node made for a peer (RECEIVED, written by the receiver just before each ban) are never
sent on, are lifted when the origin's time is over, and are kept until then where this node's jail
bans for less (fail2ban moves the end of a ban that is made again while it runs). A ban of this
node's own is never lifted here.

Only the standard library and nodelib beside it; the peers, their addresses and host keys come
from PEERS (written by the deploy).
"""

import collections
import fcntl
import json
import math
import os
import re
import select
import subprocess
import sys
import time

from nodelib import (  # beside this script
    ATTEMPTS,
    FAIL2BAN_LOG,
    JAIL,
    JAIL_NAME,
    KEY,
    KNOWN_HOSTS,
    LIFTED,
    PEERS,
    RECEIVED,
    RECEIVED_WINDOW,
    ROTATE,
    SHARE_STATE,
    Fail2ban,
    Received,
    Tail,
    attempt_request,
    ban_line,
    ban_request,
    canonical_address,
    changed_names,
    found_line,
    inotify,
    parse_answer,
    parse_attempt_record,
    parse_lifted,
    parse_received,
    read_tail,
    received_line,
)

VAR = SHARE_STATE
OUTBOX = f"{VAR}/outbox"
PENDING = f"{VAR}/pending.json"
WAKE_ON = {"outbox", "received"}  # the files whose change wakes the daemon (not its own files)
WINDOW = 200  # requests in flight per peer (one line each, well inside a pipe's buffer)
LINGER = 30  # seconds a connection stays open after its last request
RETRY_MAX = 10  # a peer (or fail2ban) that does not answer is tried again at most this much later
FULL_RETRY = 30  # a peer with no room for our bans now (`full`) is sent bans again this much later
LOGGED = 10  # answers other than ok logged per connection; the rest counted
ACK_TIMEOUT = 20  # a peer that leaves a request unanswered this long is reconnected
CONNECT_TIMEOUT = 3
CHUNK = 100  # addresses per fail2ban request when many bans are lifted at once
LIFTED_SIZE = 64 << 10  # bytes of LIFTED after which it is rewritten, one line per address ...
LIFTED_KEEP = 10_000  # ... the latest lifts only
# an outbox line of our ban action: "ban <jail> <address> <time> <bantime>"
BAN = re.compile(rf"ban ({JAIL}) (\S+) ([0-9]{{1,12}}(?:\.[0-9]+)?) (-1|[0-9]{{1,12}})")
MAX_BANNED = 100_000  # addresses known banned here (a failure of one is not sent): the newest
LOG_NAME = os.path.basename(FAIL2BAN_LOG)
MAX_ATTEMPTS = 10_000  # failures queued per peer: a flood keeps the newest, in bounded memory
# seconds a failure waits before it is sent: if it made this node ban (its maxretry-th), the ban
# is sent instead, so that the peers hold this node's ban (one ban, one notification, the origin's
# time) rather than each reaching maxretry with it and banning on its own
HOLD = 1.0


def log(message):
    print(message, file=sys.stderr, flush=True)  # the journal, unit pve-fail2ban-share


def ban_end(banned_at, bantime):
    """When a ban of `bantime` seconds made at `banned_at` ends; 0 = never."""
    return 0 if bantime < 0 else banned_at + bantime


def seconds_left(end, now):
    """What to send for a ban ending at `end`: -1 for ever, else whole seconds, None when over."""
    if end == 0:
        return -1
    left = math.ceil(end - now)
    return left if left > 0 else None


def renewal(record, made):
    """When the ban this node made for `record` (nodelib.Received), made or made again at `made`,
    must be made again to last until the origin's end; None when it lasts long enough (this jail
    bans at least as long, or for ever) or this jail's ban time is not known."""
    if record.here is None or record.here < 0:
        return None
    local_end = made + record.here
    if record.end and record.end <= local_end:
        return None
    return local_end - max(1.0, min(60.0, record.here / 2))


def charged_to(key, banned_at, found, attempted, findtime):
    """The peer a ban of `key` ((jail, address)) made here at `banned_at` is charged to: where a
    peer's failure was counted here for it within `findtime` (`attempted`: key -> (origin, time),
    ATTEMPTS) and no failure of this node's own of that address (`found`: address -> time of its
    last `Found`, in any jail: a proxy's jail bans in its product's name), the peers' failures
    alone made it: the origin of the last one. None: this node's own ban (one own failure among
    them is enough)."""
    attempt = attempted.get(key)
    since = banned_at - findtime - 1  # fail2ban's times are to the second
    if attempt is None or attempt[1] < since:
        return None
    own = found.get(key[1])
    return None if own is not None and own >= since else attempt[0]


def remember(memory, key, value, limit=None):
    """memory[key] = value, newest last; the oldest forgotten beyond `limit` (MAX_BANNED)."""
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > (limit or MAX_BANNED):
        del memory[next(iter(memory))]


def outbox_line(line):
    """An outbox line -> ("ban", jail, address, time, bantime), ("forget", address) or ("claim",
    jail, address), else None."""
    match = BAN.fullmatch(line)
    try:
        if match:
            address = canonical_address(match.group(2))
            return "ban", match.group(1), address, float(match.group(3)), int(match.group(4))
        words = line.split()
        if len(words) == 2 and words[0] == "forget":
            return "forget", canonical_address(words[1])
        if len(words) == 3 and words[0] == "claim" and JAIL_NAME.fullmatch(words[1]):
            return "claim", words[1], canonical_address(words[2])
    except ValueError:
        pass
    return None


class Peer:
    def __init__(self, name, address, port):
        self.name, self.address, self.port = name, address, port
        self.queue = {}  # (jail, ip) -> (end, when it was banned here)
        self.attempts = collections.deque(maxlen=MAX_ATTEMPTS)  # (jail, ip, when), oldest first
        self.sent_attempts = 0  # numbers the attempts in flight (their keys)
        self.inflight = {}  # (jail, ip) -> when sent
        self.proc, self.buffer = None, b""
        self.next_try, self.failures, self.last_used = 0.0, 0, 0.0
        self.full_until = 0.0  # the peer said `full`: bans wait until then (failures do not)
        self.said = 0  # answers other than ok on this connection (LOGGED of them logged)

    def command(self):
        return [
            "ssh", "-F", "/dev/null", "-T", "-i", KEY, "-p", str(self.port), "-l", "root",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2", "-o", "LogLevel=ERROR",
            "--", self.address,
        ]  # fmt: skip

    def connect(self, now):
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.buffer, self.inflight, self.last_used = b"", {}, now

    def close(self, now, failed):
        if self.said > LOGGED:
            log(f"{self.name}: {self.said - LOGGED} more answers other than ok on one connection")
        self.said = 0
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=0 if failed else 2)  # a hung connection is not waited for
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
        self.proc, self.inflight, self.buffer = None, {}, b""
        if failed:
            self.failures += 1
            self.next_try = now + min(RETRY_MAX, 2 ** (self.failures - 1))

    def waiting(self, now=None):
        """Something to send now: a ban (unless the peer is full until later) or a failure."""
        bans = self.queue and (now is None or now >= self.full_until)
        return bool(bans or self.attempts)

    def send(self, now, findtime=None):
        """Send queued bans, then failures (up to WINDOW in flight); drop bans whose time ran
        out and failures older than `findtime(jail)` seconds (they would count for nothing)."""
        lines = []
        for key, (end, banned_at) in list(self.queue.items()) if now >= self.full_until else ():
            if len(self.inflight) + len(lines) >= WINDOW:
                break
            if key in self.inflight:
                continue
            left = seconds_left(end, now)
            if left is None:
                del self.queue[key]
                continue
            age = max(0.0, now - banned_at)  # the peer compares it with an unban made there
            lines.append((key, ban_request(key[0], key[1], left, age)))
        while self.attempts and len(self.inflight) + len(lines) < WINDOW:
            jail, address, when = self.attempts.popleft()
            age = max(0.0, now - when)
            if findtime is not None and age > findtime(jail):
                continue
            self.sent_attempts += 1
            key = ("attempt", self.sent_attempts)
            lines.append((key, attempt_request(jail, address, age)))
        if not lines:
            return
        try:
            self.proc.stdin.write("".join(text for _, text in lines).encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, BlockingIOError, OSError):
            self.close(now, failed=True)
            return
        for key, _ in lines:
            self.inflight[key] = now
        self.last_used = now

    def answers(self, now):
        """Read the peer's answers; False when the connection ended (its end closed, even where
        the ssh process lives on: select would wake on the closed pipe for ever)."""
        try:
            chunk = self.proc.stdout.read()
        except BlockingIOError:
            chunk = None  # nothing yet
        except OSError:
            return False
        ended = chunk == b""
        self.buffer += chunk or b""
        *complete, self.buffer = self.buffer.split(b"\n")
        self.buffer = self.buffer[-4096:]  # no answer of a receiver is that long
        for raw in complete:
            # the receiver answers every request once, in order: the oldest in flight
            key = next(iter(self.inflight), None)
            word, rest = parse_answer(raw)
            if key is None:  # more answers than requests: no receiver of ours; not read further
                log(f"{self.name} answers what was not asked ({raw[:100]!r}): connection closed")
                self.close(now, failed=True)
                return True
            if word is None or (
                word != "refused" and key[0] != "attempt" and rest.split(" ", 2)[:2] != list(key)
            ):
                # no answer of our receiver's, or one to another request: not read further; the
                # bans in flight stay queued and are sent again (said once a streak of failures)
                if not self.failures:
                    log(
                        f"{self.name} answered {raw[:100]!r} to {' '.join(map(str, key))}: "
                        "connection closed, its bans kept and sent again"
                    )
                self.close(now, failed=True)
                return True
            if word == "later":  # its fail2ban does not answer: kept, tried again
                log(f"{self.name}: {rest[:300]!r}")
                self.close(now, failed=True)
                return True
            if word == "full":  # no room there now: kept, sent again later (said once)
                if now >= self.full_until:
                    log(
                        f"{self.name} has no room for our bans now ({rest[:200]!r}): "
                        f"{len(self.queue)} kept, sent again from {FULL_RETRY} s on"
                    )
                self.full_until = now + FULL_RETRY
                if key is not None:
                    del self.inflight[key]
                continue
            if word != "ok":  # ignored or refused there: never retried, the peer logged why
                self.said += 1
                if self.said <= LOGGED:  # a few lines per connection, then a count at its close
                    log(f"{self.name} {word}: {rest[:300]!r}")
            elif self.full_until and key is not None and key[0] != "attempt":
                log(f"{self.name} takes our bans again")
                self.full_until = 0.0
            if key is not None:
                self.queue.pop(key, None)
                del self.inflight[key]
            self.failures = 0
        self.last_used = now if complete else self.last_used
        return not ended

    def due(self, now):
        """When this peer next needs the loop's attention (None: not before an event)."""
        if self.proc is None:
            if self.waiting(now):
                return max(self.next_try, now)
            return max(self.next_try, self.full_until) if self.queue else None
        times = [self.last_used + LINGER]
        if self.queue and self.full_until > now:
            times.append(self.full_until)
        if self.inflight:
            times.append(min(self.inflight.values()) + ACK_TIMEOUT)
        return min(times)


class Share:
    def __init__(self, config, fail2ban=Fail2ban):
        self.peers = [Peer(p["name"], p["address"], p["port"]) for p in config["peers"]]
        members = config.get("members")  # every other member, reached or not (share.py)
        self.members = (
            {m for m in members if isinstance(m, str)} if isinstance(members, list) else set()
        )
        self.fail2ban = fail2ban  # how to reach this node's fail2ban (nodelib.Fail2ban)
        self.received = {}  # (jail, ip) -> nodelib.Received: bans made here for a peer
        self.made = {}  # (jail, ip) -> when that ban was made here, or made again (renewal)
        self.consumed = set()  # received bans whose own ban line was seen (a later one is ours)
        self.outbox, self.inbox = Tail(OUTBOX), Tail(RECEIVED)
        counted = config.get("failures")  # the jails whose failures are sent
        self.counted = set(counted) if isinstance(counted, list) else set()
        # cluster-wide failures: fail2ban's log read from its end now (what it said before this
        # start is sent already, or too old to count), failures sent while younger than findtime
        self.failures = Tail(FAIL2BAN_LOG) if self.counted else None
        self.findtimes = {}  # jail -> (its findtime here in seconds, when asked: monotonic)
        self.held = collections.deque(maxlen=MAX_ATTEMPTS)  # (read at, (jail, ip, when)): HOLD
        self.banned = {}  # (jail, ip) -> None: banned here, as fail2ban's log says (oldest first)
        self.found = {}  # ip -> time of this node's own last failure of it (`Found`, any jail)
        self.attempted = {}  # (jail, ip) -> (origin, time) of a peer's last failure counted here
        self.charged = {}  # (jail, ip) -> (end, banned at): bans here a peer's failures made
        self.attempts = Tail(ATTEMPTS) if self.counted else None
        if self.attempts is not None:  # those counted before this start are older than now
            try:
                info = os.stat(ATTEMPTS)
                self.attempts.resume((info.st_ino, info.st_size))
            except OSError:
                pass
        if self.failures is not None:
            try:
                info = os.stat(FAIL2BAN_LOG)
                self.failures.resume((info.st_ino, info.st_size))
            except OSError:
                pass
        self.compacted = 0  # RECEIVED's size after it was last rewritten
        self.retry_at = 0.0  # fail2ban did not answer: lifting and renewing wait until then
        self.saved, self.saved_at, self.unsaved = None, 0.0, False
        self.load()

    def load(self):
        try:
            with open(PENDING) as saved:
                pending = json.load(saved)
            queues = pending.get("peers", pending)  # releases before 0.4 saved the queues alone
            for peer in self.peers:
                for jail, ip, end, banned_at in queues.get(peer.name, []):
                    peer.queue[(jail, ip)] = (end, banned_at)
            self.outbox.resume(pending.get("outbox"))  # what was read is not sent again
        except (OSError, ValueError, TypeError, AttributeError):
            return

    def save(self, now):
        """The queues on disk, at most once a second while bans are queued (a flood), at once
        when nothing is left; whatever a restart loses is read again from the outbox."""
        busy = any(p.queue for p in self.peers)
        if busy and now - self.saved_at < 1:
            self.unsaved = True
            return
        self.unsaved, self.saved_at = False, now
        queues = {p.name: sorted([*k, *v] for k, v in p.queue.items()) for p in self.peers}
        text = json.dumps({"peers": queues, "outbox": self.outbox.position()}, sort_keys=True)
        if text == self.saved:
            return
        with open(PENDING + ".new", "w") as out:
            out.write(text)
        os.replace(PENDING + ".new", PENDING)
        self.saved = text

    def take_received(self, lines):
        for line in lines:
            record = parse_received(line)
            if record is None:
                continue
            key = (record.jail, record.address)
            old = self.received.get(key)
            if old is None or old.at != record.at:  # a ban made anew (not a later end of one)
                self.consumed.discard(key)
                self.made[key] = record.at
            self.received[key] = record

    def came_from_a_peer(self, key, banned_at):
        """True when the ban of `key` at `banned_at` is the receiver's: it records each ban just
        before it makes it, and that ban is the first of `key` after the record. A later ban of
        the same address here is this node's own."""
        got = self.received.get(key)
        if got is None or key in self.consumed or not -1 < banned_at - got.at < RECEIVED_WINDOW:
            return False
        self.consumed.add(key)
        return True

    def read_outbox(self, now):
        lines = self.outbox.lines()
        # then what was received: a received ban is recorded before it is made, so the record of
        # every ban line just read is in the file by now; so are the failures that made it
        self.take_received(self.inbox.lines())
        self.compact_received()
        self.read_failures(now)
        rewrite = False
        for line in lines:
            entry = outbox_line(line)
            if entry and entry[0] == "ban":
                _, jail, ip, banned_at, bantime = entry
                if self.came_from_a_peer((jail, ip), banned_at):
                    continue  # sending it on would loop
                if self.charge((jail, ip), banned_at, bantime):
                    continue  # a peer's word: its ban here, not sent on
                log(f"{jail} banned {ip} here: sending it to {len(self.peers)} peer(s)")
                if self.drop_received(lambda key, jail=jail, ip=ip: key == (jail, ip)):
                    rewrite = True  # its own ban now: never lifted here early
                end = ban_end(banned_at, bantime)
                if seconds_left(end, now) is None:
                    continue
                for peer in self.peers:
                    peer.queue[(jail, ip)] = (end, banned_at)
            elif entry and entry[0] == "claim":  # ban.py: the ban of a copy is this node's own now
                charged = self.charged.get(entry[1:])  # before the record goes with it
                rewrite |= self.drop_received(lambda key, k=entry[1:]: key == k)
                if charged and seconds_left(charged[0], now) is not None:
                    for peer in self.peers:  # ban.py's ban here: the admin's, sent as any
                        peer.queue[entry[1:]] = charged
            elif entry and entry[0] == "forget":
                ip = entry[1]
                for peer in self.peers:
                    for key in [k for k in peer.queue if k[1] == ip]:
                        del peer.queue[key]
                rewrite |= self.drop_received(lambda key, ip=ip: key[1] == ip)
        if rewrite:  # banned here again later, it is shared again; lifted here, never again
            self.compact_received(force=True)
            self.compact_lifted()
        self.outbox.rotate()

    def charge(self, key, banned_at, bantime):
        """Where the peers' failures alone made this ban (charged_to), record it as the ban of
        the last one's origin, as the receiver records a ban it makes for a peer: it counts in that
        peer's quota here, status shows it as that peer's, it is never sent on, and it is lifted at
        its end or when that peer leaves. True when charged."""
        if self.attempts is None or key[0] not in self.counted:
            return False
        origin = charged_to(key, banned_at, self.found, self.attempted, self.findtime(key[0]))
        if origin is None:
            return False
        end = math.ceil(ban_end(banned_at, bantime))  # a record's end is whole seconds
        record = Received(end, key[0], key[1], origin, math.floor(banned_at * 1000) / 1000, None)
        with open(RECEIVED, "a") as out:  # under the receivers' lock, as they write
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(received_line(record))
        self.take_received([received_line(record)])
        self.consumed.add(key)
        remember(self.charged, key, (end, banned_at))
        log(f"{key[0]} banned {key[1]} here on failures of {origin}'s alone: {origin}'s ban")
        return True

    def read_attempts(self):
        """The peers' failures counted here since the last read (ATTEMPTS), the file rotated."""
        if self.attempts is None:
            return
        for line in self.attempts.lines():
            record = parse_attempt_record(line)
            if record:
                at, jail, ip, origin = record
                remember(self.attempted, (jail, ip), (origin, at))
        self.attempts.rotate()

    def drop_received(self, which):
        keys = [key for key in self.received if which(key)]
        for key in keys:
            del self.received[key]
            self.made.pop(key, None)
            self.consumed.discard(key)
            self.charged.pop(key, None)
        return bool(keys)

    def maintain(self, now):
        """Lift the bans made for a peer whose time on the origin is over, and make again those
        that must outlast this jail's ban time; fail2ban not answering: again RETRY_MAX later. A
        jail fail2ban does not know (switched off since) takes its records along, and no other
        jail waits for it."""
        if now < self.retry_at:
            return
        # over: at the origin's end, or the origin is no peer any more (its word counts no more)
        names = self.members | {peer.name for peer in self.peers}
        over = [
            k for k, r in self.received.items() if (r.end and r.end <= now) or r.origin not in names
        ]
        renew = [
            k
            for k, r in self.received.items()
            if not (r.end and r.end <= now) and (renewal(r, self.made[k]) or now + 1) <= now
        ]
        if not over and not renew:
            return
        try:
            server = self.fail2ban()
        except OSError as error:
            log(
                f"fail2ban does not answer ({error}): bans received from peers are kept, lifted later"
            )
            self.retry_at = now + RETRY_MAX
            return
        try:
            for jail in sorted({jail for jail, _ in over + renew}):
                try:
                    self.lift(server, jail, [ip for j, ip in over if j == jail])
                    for key in [k for k in renew if k[0] == jail]:
                        self.renew(server, key, now)
                except RuntimeError as error:  # fail2ban refused: e.g. the jail is gone
                    log(f"jail {jail}: {error}; its bans received from peers are forgotten")
                    self.drop_received(lambda key, j=jail: key[0] == j)
        except OSError as error:
            log(
                f"fail2ban does not answer ({error}): bans received from peers are kept, lifted later"
            )
            self.retry_at = now + RETRY_MAX
        finally:
            server.close()

    def lift(self, server, jail, ips):
        for start in range(0, len(ips), CHUNK):
            chunk = set(ips[start : start + CHUNK])
            server.ask("set", jail, "unbanip", *chunk)
            self.drop_received(lambda key, j=jail, c=chunk: key[0] == j and key[1] in c)

    def renew(self, server, key, now):
        jail, ip = key
        if not server.ask("get", jail, "banned", ip):  # ran out early (fail2ban restarted from its
            record = self.received[key]._replace(at=math.floor(now * 1000) / 1000)  # database)
            with open(RECEIVED, "a") as out:  # recorded first, as the receiver does: not sent on
                fcntl.flock(out, fcntl.LOCK_EX)
                out.write(received_line(record))
            self.take_received([received_line(record)])
        server.ask("set", jail, "banip", ip)  # a running ban ends this jail's ban time from now
        self.made[key] = now

    def compact_received(self, force=False):
        """Rewrite RECEIVED with the bans still to lift or keep, when it has grown to twice its
        size after the last rewrite (or `force`): each rewrite is one write, never a loop."""
        try:
            size = os.path.getsize(RECEIVED)
        except OSError:
            return
        if not force and size <= max(ROTATE, 2 * self.compacted):
            return
        with open(RECEIVED, "r+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            self.take_received(self.inbox.lines())  # what came meanwhile, under the receivers' lock
            data = "".join(received_line(r) for r in self.received.values()).encode()
            # a new file in its place, never the old one rewritten: a reader's offset in the old
            # one (a receiver's connection, the events daemon) would point into other records;
            # a new inode is read whole (receive.locked_received, nodelib.Tail)
            with open(RECEIVED + ".new", "wb") as new:
                os.fchmod(new.fileno(), os.fstat(file.fileno()).st_mode & 0o777)
                new.write(data)
                new.flush()
                position = (os.fstat(new.fileno()).st_ino, len(data))
            os.replace(RECEIVED + ".new", RECEIVED)
            self.compacted = len(data)
        self.inbox = Tail(RECEIVED)
        self.inbox.resume(position)

    def compact_lifted(self):
        """LIFTED, once large, rewritten with the last lift of each address (LIFTED_KEEP at most)."""
        try:
            if os.path.getsize(LIFTED) < LIFTED_SIZE:
                return
        except OSError:
            return
        times = sorted(
            parse_lifted(read_tail(LIFTED, LIFTED_SIZE * 16)).items(), key=lambda t: t[1]
        )
        with open(LIFTED + ".new", "w") as out:
            out.writelines(f"{address} {when:.3f}\n" for address, when in times[-LIFTED_KEEP:])
        os.replace(LIFTED + ".new", LIFTED)

    def findtime(self, jail):
        """The jail's findtime here (seconds): a failure older than that counts for nothing.
        Asked of fail2ban again after a minute (a deploy may change it without restarting us);
        when fail2ban does not answer, what it said last (or its default) for that minute."""
        value, asked = self.findtimes.get(jail, (None, -math.inf))
        if time.monotonic() - asked > 60:
            server = None
            try:
                server = self.fail2ban()
                value = int(server.ask("get", jail, "findtime"))
            except Exception:  # noqa: BLE001 - fail2ban restarting
                value = 600 if value is None else value
            finally:
                if server is not None:
                    server.close()
            self.findtimes[jail] = (value, time.monotonic())
        return value

    def read_failures(self, now):
        """Queue for every peer each failure our jails counted here since the last read, a
        moment (HOLD) after it was read: not one of an address banned here by then (the peers
        have that ban, or have it made by the ban)."""
        if self.failures is None:
            return
        self.read_attempts()
        for line in self.failures.lines():
            found = found_line(line, self.counted)
            if found:
                self.held.append((now, found))
                remember(self.found, found[1], found[2])
                continue
            change = ban_line(line)
            if change and change[0] == "Unban":
                self.banned.pop(change[1:], None)
            elif change:
                self.banned[change[1:]] = None
                while len(self.banned) > MAX_BANNED:  # bounded: the oldest forgotten
                    del self.banned[next(iter(self.banned))]
        while self.held and self.held[0][0] + HOLD <= now:
            _, found = self.held.popleft()
            if found[:2] in self.banned:
                continue  # it made this node ban, or came after: the ban is what the peers get
            for peer in self.peers:
                peer.attempts.append(found)

    def step(self, now):
        for peer in self.peers:
            if peer.proc is None and peer.waiting(now) and now >= peer.next_try:
                peer.connect(now)
            if peer.proc is None:
                continue
            if peer.inflight and now - min(peer.inflight.values()) > ACK_TIMEOUT:
                log(f"{peer.name}: no answer for {ACK_TIMEOUT}s, reconnecting")
                peer.close(now, failed=True)
                continue
            if not peer.waiting(now) and now - peer.last_used > LINGER:
                peer.close(now, failed=False)
                continue
            peer.send(now, self.findtime)  # the receiver checks its own findtime too
        self.save(now)

    def timeout(self, now):
        times = [t for t in (p.due(now) for p in self.peers) if t is not None]
        later = [r.end for r in self.received.values() if r.end]
        later += [t for t in (renewal(r, self.made[k]) for k, r in self.received.items()) if t]
        times += [max(t, self.retry_at) for t in later]
        times += [self.saved_at + 1] if self.unsaved else []
        times += [self.held[0][0] + HOLD] if self.held else []
        return max(0.0, min(times) - now) if times else None


def main():
    os.umask(0o077)
    os.makedirs(VAR, mode=0o700, exist_ok=True)
    with open(PEERS) as config:
        share = Share(json.load(config))
    log(f"sharing bans with {', '.join(p.name for p in share.peers) or 'no peer'}")
    watch = inotify(VAR)
    logs = inotify(os.path.dirname(FAIL2BAN_LOG)) if share.failures is not None else None
    while True:
        now = time.time()
        share.read_outbox(now)
        share.read_failures(now)
        share.maintain(now)
        share.step(now)
        wait = share.timeout(now)
        if watch is None or (share.failures is not None and logs is None):
            wait = 0.5 if wait is None else min(wait, 0.5)
        deadline = None if wait is None else time.monotonic() + wait
        while True:  # until a file of WAKE_ON changes, a peer answers or it is time
            readers = [w for w in (watch, logs) if w is not None] + [
                p.proc.stdout for p in share.peers if p.proc is not None
            ]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select(readers, [], [], left)
            ours = watch in ready and not changed_names(watch) & WAKE_ON
            other_log = logs in ready and LOG_NAME not in changed_names(logs)
            if ready and all((r is watch and ours) or (r is logs and other_log) for r in ready):
                continue  # only our own files, or another log than fail2ban's, changed
            break
        now = time.time()
        for peer in share.peers:
            if peer.proc is not None and peer.proc.stdout in ready and not peer.answers(now):
                peer.close(now, failed=bool(peer.queue))


if __name__ == "__main__":
    main()
