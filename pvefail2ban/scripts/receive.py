#!/usr/bin/python3
"""The only thing a peer's share key can do on this node (authorized_keys forced command, with
`restrict`): hand over ban requests, one per line, which this receiver validates and applies.

    receive.py ORIGIN        (ORIGIN: the sending node's name, fixed by its authorized_keys line)

Request:  ban <jail> <ip> <seconds> <age>   (seconds left of the origin's ban, -1 = for ever;
                                           age: seconds since the origin made it)
Answers:  ok <jail> <ip>                  banned here (or already was)
          ignored <jail> <ip> <why>       in this node's ignoreip / its own address, or lifted
                                          here (unban.py) after the origin made it: not banned
          refused <why>                   malformed, or a jail that is not ours here: not retried
          later <jail> <ip> <why>         fail2ban does not answer: the sender keeps it and retries

What was received is written to /var/lib/pve-fail2ban/share/received (end time, jail, address,
origin, time received) just before the ban, so this node's share daemon never sends it on (no loops) and status
shows where it came from. Refusals are logged (journal, tag pve-fail2ban-receive).
Only the standard library and fail2ban's own modules are used.
"""

import fcntl
import ipaddress
import json
import math
import os
import re
import sys
import syslog
import time

CONFIG = "/etc/pve-fail2ban/share/peers.json"
RECEIVED = "/var/lib/pve-fail2ban/share/received"
LIFTED = "/var/lib/pve-fail2ban/share/lifted"  # "<address> <time>" per unban.py lift
SOCKET = "/var/run/fail2ban/fail2ban.sock"
REQUEST = re.compile(
    r"^ban ([A-Za-z0-9_.-]{1,32}) ([0-9A-Fa-f:.]{2,45}) (-1|[0-9]{1,10}) ([0-9]{1,10}(?:\.[0-9]{1,6})?)$"
)
MAX_SECONDS = 10 * 366 * 86400  # a ban longer than ten years is no ban time anyone sent


def log(message):
    syslog.syslog(syslog.LOG_WARNING, message)


def parse(line, jails):
    """(jail, address, seconds, age) of a valid request line, else raise ValueError(why)."""
    match = REQUEST.match(line)
    if not match:
        raise ValueError(f"malformed request {line[:120]!r}")
    jail, address, seconds = match.group(1), match.group(2), int(match.group(3))
    age = float(match.group(4))
    if jail not in jails:
        raise ValueError(f"jail {jail!r} is not one of ours on this node ({', '.join(jails)})")
    ip = ipaddress.ip_address(address)  # ValueError for anything that is not one address
    if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{address} is not an address anyone is banned by")
    if seconds == 0 or seconds > MAX_SECONDS:
        raise ValueError(f"ban time {seconds} out of range")
    return jail, ip.compressed, seconds, age


def lifted_after(address, banned_at):
    """True when unban.py lifted `address` here after `banned_at` (this node's clock)."""
    try:
        with open(LIFTED) as lines:
            times = [float(t) for a, t in (line.split()[:2] for line in lines) if a == address]
    except (OSError, ValueError):
        return False
    return any(t >= banned_at for t in times)


class Fail2ban:
    """This node's fail2ban-server, over its socket with fail2ban's own client class."""

    def __init__(self):
        from fail2ban.client.csocket import CSocket

        self.sock = CSocket(SOCKET, timeout=10)
        self.ignore = {}

    def ask(self, *command):
        try:
            code, answer = self.sock.send(list(command))
        except Exception:  # noqa: BLE001 - fail2ban restarted since: its new socket, once
            from fail2ban.client.csocket import CSocket

            self.sock = CSocket(SOCKET, timeout=10)
            code, answer = self.sock.send(list(command))
        if code != 0:
            raise RuntimeError(str(answer))
        return answer

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


def remember(jail, address, seconds, origin):
    now = time.time()
    end = 0 if seconds < 0 else int(now) + seconds
    with open(RECEIVED, "a") as out:
        fcntl.flock(out, fcntl.LOCK_EX)
        out.write(f"{end} {jail} {address} {origin} {math.floor(now * 1000) / 1000:.3f}\n")


def main(origin):
    try:
        with open(CONFIG) as config:
            jails = json.load(config)["jails"]
    except (OSError, ValueError, KeyError) as error:
        print(f"refused this node has no share configuration ({error})", flush=True)
        return 1
    fail2ban = None
    for raw in sys.stdin:
        line = raw.strip()
        try:
            jail, address, seconds, age = parse(line, jails)
        except ValueError as error:
            log(f"refused from {origin}: {error}")
            print(f"refused {error}", flush=True)
            continue
        try:
            fail2ban = fail2ban or Fail2ban()
            why = fail2ban.ignored(jail, address)
            if not why and lifted_after(address, time.time() - age):
                why = "lifted here (unban.py) after the origin banned it"
            if why:
                log(f"{origin} asked to ban {address} in {jail}: not banned, {why}")
                print(f"ignored {jail} {address} {why}", flush=True)
                continue
            remember(jail, address, seconds, origin)
            fail2ban.ask("set", jail, "banip", address)
        except Exception as error:  # noqa: BLE001 - fail2ban down or restarting: try again later
            fail2ban = None
            print(f"later {jail} {address} fail2ban does not answer: {error}", flush=True)
            continue
        print(f"ok {jail} {address}", flush=True)
    return 0


if __name__ == "__main__":
    syslog.openlog("pve-fail2ban-receive")
    name = sys.argv[1] if len(sys.argv) == 2 else ""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        print("refused no origin", flush=True)
        sys.exit(1)
    os.umask(0o077)
    sys.exit(main(name))
