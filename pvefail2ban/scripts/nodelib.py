"""What the node scripts of pve-fail2ban share: the canonical form of an address, fail2ban's socket,
the records of bans received from peers, reading an outbox that fail2ban's actions append to, and
waking on inotify instead of polling. Standard library only.

Installed beside the daemons in their folder (they `from nodelib import ...`); the scripts the
controller runs with `python3 -c` get this file's text put in front of theirs (operations.bundled).
The controller imports it too (pvefail2ban.scripts.nodelib): one definition of an address on both
sides of every boundary.
"""

import builtins
import io
import json
import os
import pickle
import re
import socket
import sys
import time
from collections import namedtuple

ROTATE = 1 << 20  # outbox bytes after which it is renamed (and its tail still read)
MAX_LINE = 4096  # bytes: a longer line in a file of ours is no line of ours (dropped)
IN_MODIFY, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x2, 0x80, 0x100, 0x200
NEW_DATA = IN_MODIFY | IN_CREATE | IN_MOVED_TO
SOCKET = "/var/run/fail2ban/fail2ban.sock"
FAIL2BAN_LOG = "/var/log/fail2ban.log"  # fail2ban's own log: what it found, banned, lifted
# Where pve-fail2ban keeps its things on a node, once for the node scripts and the controller
CONFIG_DIR = "/etc/pve-fail2ban"  # root only (0700)
SHARE_DIR = f"{CONFIG_DIR}/share"  # cluster-wide bans: the share key, the peers, their host keys
PEERS = f"{SHARE_DIR}/peers.json"  # {"node", "jails", "peers": [{name, address, port, hostkeys}]}
KEY = f"{SHARE_DIR}/id_ed25519"
KNOWN_HOSTS = f"{SHARE_DIR}/known_hosts"
EVENTS_CONFIG = f"{CONFIG_DIR}/events.json"  # 0600: it may hold the webhook's token
STATE_DIR = "/var/lib/pve-fail2ban"  # the check's records
SHARE_STATE = f"{STATE_DIR}/share"  # cluster-wide bans: outbox, queue, what was received
EVENTS_STATE = f"{STATE_DIR}/events"  # metrics and notifications: the outbox
RECEIVED = f"{SHARE_STATE}/received"
# "<time> <jail> <address> <origin>": a failure of a peer's counted here (receive.py writes it
# before fail2ban counts it); the share daemon reads it to charge a ban those failures alone made
# here to that peer (share.charged_to), and rotates it
ATTEMPTS = f"{SHARE_STATE}/attempts"
MAX_ATTEMPTS_FILE = 4 << 20  # bytes: a receiver records no more (the share daemon reads none)
LIFTED = f"{SHARE_STATE}/lifted"  # "<address> <time>": lifted here by unban.py at that time
RECEIVED_WINDOW = 30  # seconds: a ban made this soon after the receiver recorded it is that one
# A node's or a peer's name as our files and requests carry it ...
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# ... and a jail's: the one grammar of a jail name in fail2ban's log, our requests and our records
JAIL = r"[A-Za-z0-9_.-]{1,32}"
JAIL_NAME = re.compile(JAIL)
ADDRESS_TEXT = re.compile(r"[0-9A-Fa-f:.]{2,45}")  # what an IPv4 or IPv6 address is written with


# ---- addresses ----------------------------------------------------------------------------------


def shown(value, limit=80):
    """`value` as an error message may show it: quoted, escaped, cut."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def canonical_address(text):
    """One IP address as text -> its one canonical text: IPv4 or IPv6 as `ipaddress` writes it, no
    scope ID (`fe80::1%eth0` is refused: Python accepts almost anything after the `%`), an
    IPv4-mapped IPv6 address folded to its IPv4 address (as fail2ban bans it). Never a network.
    ValueError naming the value otherwise."""
    import ipaddress  # here: a script that never parses an address does not pay for it

    if isinstance(text, str) and ADDRESS_TEXT.fullmatch(text):
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            pass
        else:
            if ip.version == 6 and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            return str(ip)
    raise ValueError(f"{shown(text)} is not an IP address")


def bannable_address(text):
    """canonical_address of an address somebody can be banned by: not loopback, unspecified or
    multicast (nobody connects from those)."""
    import ipaddress

    address = canonical_address(text)
    ip = ipaddress.ip_address(address)
    if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{address} is not an address anyone connects from")
    return address


def host_address(text):
    """canonical_address of one host's own global address (a node's, as it reports them): not
    loopback, unspecified, multicast, link-local or reserved."""
    import ipaddress

    address = bannable_address(text)
    ip = ipaddress.ip_address(address)
    if ip.is_link_local or ip.is_reserved:
        raise ValueError(f"{address} is not a host's global address")
    return address


# ---- a webhook's URL ---------------------------------------------------------------------------


def token_exposed(url, token):
    """Why a webhook's `token` must not be sent to `url`, or None: anything but https:// to a host
    other than loopback, judged by the parsed URL (its scheme in any case, its host name whole:
    `http://127.attacker.example/` is no loopback). The one check of the controller's settings,
    the events daemon on the nodes and Alertmanager's configuration."""
    import ipaddress
    import urllib.parse

    if not token:
        return None
    try:
        parts = urllib.parse.urlsplit(url or "")
        host = parts.hostname or ""
    except ValueError:
        return f"{shown(url)} is not a URL"
    if parts.scheme.lower() == "https" and host:
        return None
    try:
        ip = ipaddress.ip_address(host)
        loopback = (getattr(ip, "ipv4_mapped", None) or ip).is_loopback  # same on every Python
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme.lower() == "http" and loopback:
        return None
    return f"the token would travel in clear text over {parts.scheme or '?'}:// to {shown(host)}"


# ---- fail2ban's socket --------------------------------------------------------------------------

END, CLOSE = b"<F2B_END_COMMAND>", b"<F2B_CLOSE_COMMAND>"  # fail2ban's protocol (protocol.CSPROTO)
MAX_ANSWER = 64 << 20  # bytes: fail2ban's longest answer (a ban list of a million) fits


class Answer(pickle.Unpickler):
    """fail2ban's answers are lists, tuples, strings and numbers (a banned address pickles as str);
    nothing else is loaded."""

    def find_class(self, module, name):
        if module == "builtins" and name in ("str", "int", "float", "list", "tuple", "dict", "set"):
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


class Fail2ban:
    """fail2ban's socket, spoken as its own client does (client/csocket.py). Its client classes are
    not imported: they cost about 30 ms of CPU per run on each node (measured), this costs none.
    `ask` raises OSError when fail2ban does not answer, RuntimeError when it refuses."""

    def __init__(self, timeout=10, path=SOCKET):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def ask(self, *command):
        self.sock.sendall(pickle.dumps(list(command), pickle.HIGHEST_PROTOCOL) + END)
        data = b""
        while not data.endswith(END):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("fail2ban closed the connection")
            data += chunk
            if len(data) > MAX_ANSWER:
                raise ConnectionError("fail2ban's answer is too long")
        try:
            code, answer = Answer(io.BytesIO(data[: -len(END)])).load()
        except pickle.UnpicklingError as error:  # an error answer carries fail2ban's exception
            raise RuntimeError(f"fail2ban refused {command}") from error
        if code != 0:
            raise RuntimeError(answer)
        return answer

    def close(self):
        try:
            self.sock.sendall(CLOSE + END)
        except OSError:
            pass
        self.sock.close()


# The fields of fail2ban's answer to `status <jail>` and their names in every jail status of ours
# (state.py, events.py, probe.py; the controller reads them: model.parse_state, jailstatus).
FIELDS = {
    "Currently failed": "failed",
    "Total failed": "total_failed",
    "Currently banned": "banned",
    "Total banned": "total_banned",
    "Banned IP list": "banned_ips",
    "Journal matches": "journal_matches",
    "File list": "file_list",
}


# An empty file of ours, the last log file of every jail of ours that reads files: fail2ban 1.0
# refuses to start at all when one jail finds none of its log files (a proxy's log after the
# proxy was purged, a log rotated away), and sshd and the web UI would lose their protection with
# it. With this one always there, fail2ban starts, and that jail alone reads nothing: it is left
# out of the file list below, so the check and status say the jail reads no live source.
NO_LOG = "/etc/fail2ban/pve-fail2ban-no-log"


def jail_status(answer):
    """fail2ban's answer to `status <jail>` ([("Filter", [...]), ("Actions", [...])]) -> flat dict
    of FIELDS (journal matches as one text, the file list and banned addresses as lists, the
    file list without NO_LOG)."""
    jail = {"banned_ips": [], "journal_matches": None, "file_list": None}
    for _, section in answer:
        for label, value in section:
            if label in FIELDS:
                jail[FIELDS[label]] = value
    if isinstance(jail["journal_matches"], list):  # 1.0+ gives a list of " + "-joined groups
        jail["journal_matches"] = " ".join(jail["journal_matches"]) or None
    if isinstance(jail["file_list"], str):
        jail["file_list"] = jail["file_list"].split()
    if isinstance(jail["file_list"], list):
        jail["file_list"] = [path for path in jail["file_list"] if path != NO_LOG] or None
    jail["banned_ips"] = [str(ip) for ip in jail["banned_ips"]]
    return jail


# The deploy's record of our jails on this node: those that must run ("jails") and those the
# settings switched off, which must not ("off"). The one judge of a node: the deploy's check, its
# status (state.py) and its metrics (events.py: f2b_jail_expected) all read this one record.
EXPECTED = "/etc/fail2ban/pve-fail2ban-jails.json"
MAX_EXPECTED = 64 << 10  # bytes of EXPECTED read: a longer file is no record of ours
MAX_JAILS = 256  # names in one list of EXPECTED
MANAGED_BY = "Managed by pve-fail2ban (pyinfra deploy): what it set up here; do not edit"


def expected_text(jails, off):
    """EXPECTED's bytes for the jails that must run and those switched off (sorted, one line)."""
    record = {"managed": MANAGED_BY, "jails": sorted(jails), "off": sorted(off)}
    return json.dumps(record, sort_keys=True) + "\n"


def parse_expected(text):
    """EXPECTED's text -> {"jails": [...], "off": [...]}; ValueError naming what is not a record
    of ours (the file is the node's: a hand edit or damage is refused, never half used)."""
    if len(text) > MAX_EXPECTED:
        raise ValueError(f"the record of our jails is longer than {MAX_EXPECTED} bytes")
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError(f"the record of our jails is not JSON: {shown(text)}") from None
    if not isinstance(record, dict) or set(record) - {"managed"} != {"jails", "off"}:
        raise ValueError(f"the record of our jails is not one of ours: {shown(text)}")
    for key in ("jails", "off"):
        names = record[key]
        if not isinstance(names, list) or len(names) > MAX_JAILS:
            raise ValueError(f"the record of our jails has {key} = {shown(names)}")
        for name in names:
            if not isinstance(name, str) or not JAIL_NAME.fullmatch(name):
                raise ValueError(f"the record of our jails names the jail {shown(name)}")
    return {"jails": list(record["jails"]), "off": list(record["off"])}


def read_expected():
    """EXPECTED as parse_expected gives it; None where there is none (no deploy of this release
    yet); ValueError where it is not a record of ours."""
    try:
        with open(EXPECTED, "rb") as file:
            data = file.read(MAX_EXPECTED + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ValueError(f"the record of our jails cannot be read: {error}") from None
    return parse_expected(data.decode(errors="replace"))


def jail_names(status):
    """The jails fail2ban's answer to `status` lists, in its order."""
    return [n.strip() for n in dict(status).get("Jail list", "").split(",") if n.strip()]


# ---- fail2ban's own log lines we read (FAIL2BAN_LOG) ---------------------------------------------

# fail2ban's own line, whole ("%(asctime)s %(name)-24s[%(process)d]: %(levelname)-7s %(message)s"):
# "2026-11-29 02:32:20,175 fail2ban.filter         [8763]: INFO    [sshd] Found 192.0.2.1 -
# 2026-11-29 02:32:20". Text an attacker wrote is quoted inside other lines of it, never at the
# start of a whole line. What it says of an address, by kind: its logger, and how the line ends
# (" - <time>" of the failure, " by <how>" it was ignored, or nothing).
LOG_KINDS = {
    "Found": ("filter", "when"),  # a failure this node saw in a jail's source
    "Attempt": ("filter", "when"),  # a failure a peer sent (`set <jail> attempt`)
    "Ignore": ("filter", "by"),  # a failure of an ignored address (the canary's: by ip)
    "Ban": ("actions", None),
    "Restore Ban": ("actions", None),  # a ban restored from fail2ban's database at its start
    "Unban": ("actions", None),  # by hand, or when the ban's time is over
}
LOG_LINE = re.compile(  # ASCII only: fail2ban's own format, no other digits or spaces
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ fail2ban\.(filter|actions)\s+\[\d+\]: \w+\s+"
    rf"\[({JAIL})\] ({'|'.join(LOG_KINDS)}) ({ADDRESS_TEXT.pattern}(?:/\d{{1,3}})?)"
    r"(?: - (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)| by (\w{1,16}(?: rule)?))?$",
    re.ASCII,
)  # an address may be a network banned by hand (`banip 192.0.2.0/24`); "by ignoreself rule"
WHEN = "%Y-%m-%d %H:%M:%S"  # the failure's time at the end of a Found or Attempt line


def log_event(line):
    """(kind, jail, address as written, the failure's time or how it was ignored, or None) of one
    of fail2ban's own lines of a kind LOG_KINDS names, else None."""
    match = LOG_LINE.match(line)
    if not match:
        return None
    _, logger, jail, kind, address, when, how = match.groups()
    if (logger, "when" if when else "by" if how else None) != LOG_KINDS[kind]:
        return None
    return kind, jail, address, when or how


def log_event_line(kind, jail, address, end=None, stamp="2026-11-29 02:32:20,175", pid=8763):
    """fail2ban's own line that log_event reads as (kind, jail, address, end): its grammar written
    the other way, for the tests and the lab."""
    logger, tail = LOG_KINDS[kind]
    level = "NOTICE" if logger == "actions" else "INFO"
    ending = f" - {end}" if tail == "when" else f" by {end}" if tail == "by" else ""
    return (
        f"{stamp} {'fail2ban.' + logger:<24}[{pid}]: {level:<7} [{jail}] {kind} {address}{ending}"
    )


def found_line(line, jails):
    """(jail, address, epoch of the failure) of fail2ban's `Found` line of one of `jails`, else
    None (a received failure is logged `Attempt`: never sent on)."""
    event = log_event(line)
    if event is None or event[0] != "Found" or event[1] not in jails:
        return None
    try:
        address = bannable_address(event[2])  # as the receiver takes it
        when = time.mktime(time.strptime(event[3], WHEN))
    except (ValueError, OverflowError):
        return None
    return event[1], address, when


def ban_line(line):
    """("Ban" | "Unban", jail, address) of fail2ban's line saying it banned (or restored a ban
    of) or unbanned an address, else None."""
    event = log_event(line)
    if event is None or event[0] not in ("Ban", "Restore Ban", "Unban"):
        return None
    try:
        address = canonical_address(event[2])
    except ValueError:
        return None
    return ("Unban" if event[0] == "Unban" else "Ban"), event[1], address


# ---- the share protocol: a sender's requests (share.py), the receiver's answers (receive.py) -----

# One line each way, in order: "ban <jail> <address> <seconds left, -1: for ever> <age>" (the
# origin's ban, age seconds after it was made) and "attempt <jail> <address> <age>" (a failure the
# origin saw); every request gets one answer "<word> <text>", word of ANSWERS.
AGE = r"[0-9]{1,10}(?:\.[0-9]{1,6})?"
BAN_REQUEST = re.compile(rf"ban ({JAIL}) ({ADDRESS_TEXT.pattern}) (-1|[0-9]{{1,10}}) ({AGE})")
ATTEMPT_REQUEST = re.compile(rf"attempt ({JAIL}) ({ADDRESS_TEXT.pattern}) ({AGE})")
MAX_REQUEST = 128  # bytes of one request line (the longest valid one is about 110)
ANSWERS = (
    "ok",  # made, extended, kept or counted
    "ignored",  # not banned or counted there, and why (an address it never bans, ...)
    "refused",  # malformed or not allowed: never sent again
    "later",  # its fail2ban does not answer: kept and sent again
    "full",  # no room for this peer's bans there now: kept and sent again later
)


def ban_request(jail, address, seconds, age):
    return f"ban {jail} {address} {int(seconds)} {age:.3f}\n"


def attempt_request(jail, address, age):
    return f"attempt {jail} {address} {age:.3f}\n"


def parse_request(line):
    """A request line (without its newline) -> ("ban", jail, address as written, seconds, age) or
    ("attempt", jail, address as written, age); ValueError naming it for anything else."""
    match = BAN_REQUEST.fullmatch(line)
    if match:
        return "ban", match.group(1), match.group(2), int(match.group(3)), float(match.group(4))
    match = ATTEMPT_REQUEST.fullmatch(line)
    if match:
        return "attempt", match.group(1), match.group(2), float(match.group(3))
    raise ValueError(f"malformed request {shown(line, 120)}")


def answer(word, text):
    """The receiver's answer line (without its newline)."""
    assert word in ANSWERS, word
    return f"{word} {text}"


def parse_answer(raw):
    """An answer line (bytes) -> (word of ANSWERS, or None for anything else, the rest as text)."""
    word, _, rest = raw.decode(errors="replace").partition(" ")
    return (word if word in ANSWERS else None), rest


# ---- bans received from peers -------------------------------------------------------------------

# A line of RECEIVED, written by the receiver (receive.py) when it makes a ban for a peer, or moves
# the end of one it made: "<end> <jail> <address> <origin> <time made> [<jail's bantime here>]".
# end: when the origin's ban ends (0: never). Only bans the receiver made are recorded: the share
# daemon lifts them at that end, and keeps them that long where this jail's ban time is shorter.
Received = namedtuple("Received", "end jail address origin at here")


def parse_received(line):
    """A RECEIVED line -> Received, or None for anything else (a damaged line is skipped)."""
    parts = line.split()
    if len(parts) not in (5, 6) or not parts[0].isdigit():
        return None
    try:
        at = float(parts[4])
        here = int(parts[5]) if len(parts) == 6 else None
        address = canonical_address(parts[2])
    except ValueError:
        return None
    if not (JAIL_NAME.fullmatch(parts[1]) and NAME.fullmatch(parts[3])):
        return None
    return Received(int(parts[0]), parts[1], address, parts[3], at, here)


def received_line(record):
    here = "" if record.here is None else f" {record.here}"
    return f"{record.end} {record.jail} {record.address} {record.origin} {record.at:.3f}{here}\n"


def attempt_record(at, jail, address, origin):
    """An ATTEMPTS line."""
    return f"{at:.3f} {jail} {address} {origin}\n"


def parse_attempt_record(line):
    """An ATTEMPTS line -> (time, jail, address, origin), or None for anything else."""
    parts = line.split()
    if len(parts) != 4 or not (JAIL_NAME.fullmatch(parts[1]) and NAME.fullmatch(parts[3])):
        return None
    try:
        at = float(parts[0])
        address = canonical_address(parts[2])
    except ValueError:
        return None
    return (at, parts[1], address, parts[3]) if at == at and abs(at) < 1e11 else None


def later_end(a, b):
    """True when a ban ending at `a` lasts longer than one ending at `b` (0: never ends)."""
    return a != b and (a == 0 or (b != 0 and a > b))


def parse_lifted(lines):
    """{address: the last time it was lifted here} from LIFTED lines (damaged lines skipped)."""
    found = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            address, when = canonical_address(parts[0]), float(parts[1])
        except ValueError:
            continue
        found[address] = max(when, found.get(address, 0.0))
    return found


def read_tail(path, limit=1 << 20, containing=None):
    """The complete lines of the last `limit` bytes of `path` ([] when it cannot be read);
    `containing`: only those that hold this text (the others are never decoded)."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - limit))
            data = file.read(limit)
    except OSError:
        return []
    lines = data.split(b"\n")
    lines = lines[1:-1] if size > limit else lines[:-1]
    if containing is not None:
        needle = containing.encode()
        lines = [line for line in lines if needle in line] if needle in data else []
    return [line.decode(errors="replace") for line in lines]


# ---- outboxes and waking ------------------------------------------------------------------------


class Tail:
    """New complete lines appended to a file, from where the last read stopped (survives a rename).
    A line still being written is kept until its end arrives; a line longer than MAX_LINE is
    dropped whole (never its tail taken for a line: text written into it may look like one)."""

    def __init__(self, path):
        self.path, self.file, self.old, self.partial = path, None, None, b""
        self.skipping = False  # in a line dropped for its length, or begun before the start

    def _complete(self, data):
        data, self.partial = self.partial + data, b""
        if self.skipping:  # up to the end of that line
            end = data.find(b"\n")
            if end < 0:
                return []
            data, self.skipping = data[end + 1 :], False
        *lines, rest = data.split(b"\n")
        if len(rest) > MAX_LINE:
            rest, self.skipping = b"", True
        self.partial = rest
        return [line.decode(errors="replace") for line in lines if len(line) <= MAX_LINE]

    def lines(self):
        found = []
        if self.old is not None:  # writers that opened the renamed file just before it moved
            found += self._complete(self.old.read())
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = None
        if self.file is not None and (ino is None or os.fstat(self.file.fileno()).st_ino != ino):
            found += self._complete(self.file.read())
            self.file.close()
            self.file = None
            self.partial = b""  # the rest of an unfinished line of the old file never comes
            self.skipping = False
        if self.file is None and ino is not None:
            self.file = open(self.path, "rb")
        if self.file is not None:
            found += self._complete(self.file.read())
        return found

    def position(self):
        """(inode, offset) up to which the current file has been read, or None."""
        if self.file is None:
            return None
        return os.fstat(self.file.fileno()).st_ino, self.file.tell() - len(self.partial)

    def resume(self, position):
        """Go on from `position` (of position()) when the file is still that one: what was read
        before a restart is not read again."""
        if not position:
            return
        try:
            file = open(self.path, "rb")
        except FileNotFoundError:
            return
        if (
            os.fstat(file.fileno()).st_ino != position[0]
            or os.fstat(file.fileno()).st_size < position[1]
        ):
            file.close()
            return
        if position[1] > 0:  # in the middle of a line: from the next one
            file.seek(position[1] - 1)
            self.skipping = file.read(1) != b"\n"
        file.seek(position[1])
        self.file = file

    def rotate(self):
        """Start a fresh file once this one is large and fully read."""
        if self.file is None or self.file.tell() < ROTATE or self.partial:
            return
        if self.old is not None:
            self.old.close()
        os.rename(self.path, self.path + ".old")
        self.old, self.file = self.file, None


def inotify(path, mask=NEW_DATA):
    """An inotify descriptor watching `path` (for new data, by default), or None where there is
    none."""
    try:
        fd = _libc().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0 or not watch(fd, path, mask):
            return None
        return fd
    except (OSError, AttributeError):
        return None


def watch(fd, path, mask):
    """Add `path` to inotify descriptor `fd`; False when it cannot be watched (e.g. not there)."""
    return _libc().inotify_add_watch(fd, path.encode(), mask) >= 0


def changed_names(fd):
    """The names of the files the events waiting on inotify descriptor `fd` are about (a watched
    directory's entries; "" for the watched path itself). Reads every event waiting."""
    names = set()
    while True:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return names
        if not data:
            return names
        offset = 0
        while offset + 16 <= len(data):  # struct inotify_event: wd, mask, cookie, len, name
            length = int.from_bytes(data[offset + 12 : offset + 16], sys.byteorder)
            names.add(
                data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode(errors="replace")
            )
            offset += 16 + length


def _libc():
    import ctypes  # here: only the daemons wait on inotify

    return ctypes.CDLL(None, use_errno=True)
