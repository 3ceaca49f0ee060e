#!/usr/bin/python3
"""pve-fail2ban-share.service: every ban of our jails on this node, sent to every peer at once.

fail2ban's pve-fail2ban-share action appends one line per ban to OUTBOX (it never waits for the
network). This daemon wakes on that (inotify; no polling), and sends each ban to every peer over
SSH with this node's own share key, which the peers accept for one thing only: their receiver
(receive.py). One connection per peer at most, opened on demand, kept for LINGER seconds after
its last request; bans not yet acknowledged stay queued (also on disk, PENDING) and are sent when
the peer answers again (retried every RETRY_MAX seconds at most), minus the time that has passed;
a ban whose time ran out is dropped. A ban this node received from a peer is never sent on, and is lifted when its time on the origin
is over.

    ban <jail> <ip> <time of ban> <ban time>   (the action's line; ban time -1 = for ever)
    forget <ip>                                (unban.py: drop what is queued for that address)

Each request tells the peer the time left and how long ago the ban was made, so a peer where the
address was lifted (unban.py) after that refuses it, whatever the network delayed.

Only the standard library; the peers, their addresses and host keys come from CONFIG (written by
the deploy).
"""

import fcntl
import json
import math
import os
import re
import select
import subprocess
import sys
import time

from nodelib import ROTATE, Tail, inotify  # beside this script

CONFIG = "/etc/pve-fail2ban/share/peers.json"
KEY = "/etc/pve-fail2ban/share/id_ed25519"
KNOWN_HOSTS = "/etc/pve-fail2ban/share/known_hosts"
VAR = "/var/lib/pve-fail2ban/share"
OUTBOX = f"{VAR}/outbox"
RECEIVED = f"{VAR}/received"
PENDING = f"{VAR}/pending.json"
WINDOW = 200  # requests in flight per peer (one line each, well inside a pipe's buffer)
LINGER = 30  # seconds a connection stays open after its last request
RETRY_MAX = 10  # a peer that does not answer is tried again at most this much later
ACK_TIMEOUT = 20  # a peer that leaves a request unanswered this long is reconnected
CONNECT_TIMEOUT = 3
RECEIVED_WINDOW = 30  # a ban made this soon after the receiver recorded it is the received one
BAN = re.compile(r"^ban (\S+) (\S+) ([0-9.]+) (-?[0-9]+)$")


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


class Peer:
    def __init__(self, name, address, port):
        self.name, self.address, self.port = name, address, port
        self.queue = {}  # (jail, ip) -> (end, when it was banned here)
        self.inflight = {}  # (jail, ip) -> when sent
        self.proc, self.buffer = None, b""
        self.next_try, self.failures, self.last_used = 0.0, 0, 0.0

    def command(self):
        return [
            "ssh", "-F", "/dev/null", "-T", "-i", KEY, "-p", str(self.port), "-l", "root",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2", "-o", "LogLevel=ERROR",
            self.address,
        ]  # fmt: skip

    def connect(self, now):
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.buffer, self.inflight, self.last_used = b"", {}, now

    def close(self, now, failed):
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

    def send(self, now):
        """Send queued bans (up to WINDOW in flight); drop those whose time ran out."""
        lines = []
        for key, (end, banned_at) in list(self.queue.items()):
            if len(self.inflight) + len(lines) >= WINDOW:
                break
            if key in self.inflight:
                continue
            left = seconds_left(end, now)
            if left is None:
                del self.queue[key]
                continue
            age = max(0.0, now - banned_at)  # the peer compares it with an unban made there
            lines.append((key, f"ban {key[0]} {key[1]} {left} {age:.3f}\n"))
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
        """Read the peer's answers; False when the connection ended."""
        try:
            chunk = self.proc.stdout.read()
        except (BlockingIOError, OSError):
            chunk = b""
        if chunk is None:
            chunk = b""
        ended = chunk == b"" and self.proc.poll() is not None
        self.buffer += chunk
        *complete, self.buffer = self.buffer.split(b"\n")
        for raw in complete:
            # the receiver answers every request once, in order: the oldest in flight
            key = next(iter(self.inflight), None)
            word, _, rest = raw.decode(errors="replace").partition(" ")
            if word == "later":  # its fail2ban does not answer: kept, tried again
                log(f"{self.name}: {rest}")
                self.close(now, failed=True)
                return True
            if word != "ok":  # ignored or refused there: never retried, the peer logged why
                log(f"{self.name} {word}: {rest}")
            if key is not None:
                self.queue.pop(key, None)
                del self.inflight[key]
            self.failures = 0
        self.last_used = now if complete else self.last_used
        return not ended

    def due(self, now):
        """When this peer next needs the loop's attention (None: not before an event)."""
        if self.proc is None:
            return max(self.next_try, now) if self.queue else None
        times = [self.last_used + LINGER]
        if self.inflight:
            times.append(min(self.inflight.values()) + ACK_TIMEOUT)
        return min(times)


class Share:
    def __init__(self, config):
        self.peers = [Peer(p["name"], p["address"], p["port"]) for p in config["peers"]]
        self.received = {}  # (jail, ip) -> (end, origin)
        self.ended = set()  # received bans lifted at their origin's end
        self.consumed = set()  # received bans whose own ban line was seen (a later one is ours)
        self.outbox, self.inbox = Tail(OUTBOX), Tail(RECEIVED)
        self.saved, self.saved_at, self.unsaved = None, 0.0, False
        self.load()

    def load(self):
        try:
            with open(PENDING) as saved:
                pending = json.load(saved)
        except (OSError, ValueError):
            return
        for peer in self.peers:
            for jail, ip, end, banned_at in pending.get(peer.name, []):
                peer.queue[(jail, ip)] = (end, banned_at)

    def save(self, now):
        """The queues on disk, at most once a second while bans are queued (a flood), at once
        when nothing is left; whatever a restart loses is read again from the outbox."""
        busy = any(p.queue for p in self.peers)
        if busy and now - self.saved_at < 1:
            self.unsaved = True
            return
        self.unsaved, self.saved_at = False, now
        pending = {p.name: sorted([*k, *v] for k, v in p.queue.items()) for p in self.peers}
        text = json.dumps(pending, sort_keys=True)
        if text == self.saved:
            return
        with open(PENDING + ".new", "w") as out:
            out.write(text)
        os.replace(PENDING + ".new", PENDING)
        self.saved = text

    def take_received(self, lines):
        for line in lines:
            parts = line.split()
            if len(parts) == 5 and parts[0].isdigit():
                self.received[(parts[1], parts[2])] = (int(parts[0]), parts[3], float(parts[4]))
                self.consumed.discard((parts[1], parts[2]))

    def came_from_a_peer(self, key, banned_at):
        """True when the ban of `key` at `banned_at` is the receiver's: it records each ban just
        before it makes it, and that ban is the first of `key` after the record. A later ban of
        the same address here is this node's own."""
        got = self.received.get(key)
        if got is None or key in self.consumed or not -1 < banned_at - got[2] < RECEIVED_WINDOW:
            return False
        self.consumed.add(key)
        return True

    def read_received(self, now):
        self.take_received(self.inbox.lines())
        self.end_received(now)
        for key, (end, *_) in list(self.received.items()):
            if end and end < now - 60:
                del self.received[key]
                self.ended.discard(key)
        self.compact_received()

    def end_received(self, now):
        """Lift received bans whose time on the origin is over (this node's jail may ban longer):
        one fail2ban-client call per jail for all that ended."""
        over = {}
        for key, (end, *_) in self.received.items():
            if end and end <= now and key not in self.ended:
                over.setdefault(key[0], []).append(key)
        for jail, keys in over.items():
            ips = [ip for _, ip in keys]
            subprocess.run(
                ["fail2ban-client", "set", jail, "unbanip", *ips], capture_output=True, timeout=60
            )
            self.ended.update(keys)

    def compact_received(self, now=False):
        """Rewrite the received file without what ended, once it has grown large (or `now`)."""
        try:
            if os.path.getsize(RECEIVED) < ROTATE and not now:
                return
        except OSError:
            return
        with open(RECEIVED, "r+") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            self.take_received(self.inbox.lines())  # what came meanwhile, under the receivers' lock
            file.seek(0)
            file.truncate()
            file.writelines(
                f"{e} {k[0]} {k[1]} {o} {t:.3f}\n" for k, (e, o, t) in self.received.items()
            )
            file.flush()
        self.inbox = Tail(RECEIVED)
        self.inbox.lines()

    def read_outbox(self, now):
        self.read_received(now)  # a received ban is recorded before it is banned: read it first
        for line in self.outbox.lines():
            match = BAN.match(line)
            if match:
                jail, ip, banned_at, bantime = match.groups()
                if self.came_from_a_peer((jail, ip), float(banned_at)):
                    continue  # sending it on would loop
                log(f"{jail} banned {ip} here: sending it to {len(self.peers)} peer(s)")
                if self.received.pop((jail, ip), None):  # its own ban now: not lifted early
                    self.compact_received(now=True)
                end = ban_end(float(banned_at), int(bantime))
                if seconds_left(end, now) is None:
                    continue
                for peer in self.peers:
                    peer.queue[(jail, ip)] = (end, float(banned_at))
            elif line.startswith("forget "):
                ip = line.split()[1]
                for peer in self.peers:
                    for key in [k for k in peer.queue if k[1] == ip]:
                        del peer.queue[key]
                self.received = {k: v for k, v in self.received.items() if k[1] != ip}
                self.compact_received(now=True)  # banned here again later, it is shared again
        self.outbox.rotate()

    def step(self, now):
        for peer in self.peers:
            if peer.proc is None and peer.queue and now >= peer.next_try:
                peer.connect(now)
            if peer.proc is None:
                continue
            if peer.inflight and now - min(peer.inflight.values()) > ACK_TIMEOUT:
                log(f"{peer.name}: no answer for {ACK_TIMEOUT}s, reconnecting")
                peer.close(now, failed=True)
                continue
            if not peer.queue and now - peer.last_used > LINGER:
                peer.close(now, failed=False)
                continue
            peer.send(now)
        self.save(now)

    def timeout(self, now):
        times = [t for t in (p.due(now) for p in self.peers) if t is not None]
        times += [e for k, (e, *_) in self.received.items() if e and k not in self.ended]
        times += [self.saved_at + 1] if self.unsaved else []
        return max(0.0, min(times) - now) if times else None


def main():
    os.umask(0o077)
    os.makedirs(VAR, mode=0o700, exist_ok=True)
    with open(CONFIG) as config:
        share = Share(json.load(config))
    log(f"sharing bans with {', '.join(p.name for p in share.peers) or 'no peer'}")
    watch = inotify(VAR)
    while True:
        now = time.time()
        share.read_outbox(now)
        share.step(now)
        wait = share.timeout(now)
        if watch is None:
            wait = 0.5 if wait is None else min(wait, 0.5)
        readers = ([watch] if watch is not None else []) + [
            p.proc.stdout for p in share.peers if p.proc is not None
        ]
        ready, _, _ = select.select(readers, [], [], wait)
        now = time.time()
        if watch in ready:
            os.read(watch, 65536)
        for peer in share.peers:
            if peer.proc is not None and peer.proc.stdout in ready and not peer.answers(now):
                peer.close(now, failed=bool(peer.queue))


if __name__ == "__main__":
    main()
