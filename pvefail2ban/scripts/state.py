"""Run on the node by python3 (pvefail2ban.day2.model.Fail2banState): fail2ban as it runs, printed as
one JSON object (its shape: see Fail2banState).

fail2ban-server is asked over its socket as fail2ban-client asks it (nodelib.Fail2ban), which
answers in Python structures, not text to split. The firewall is asked what it really
holds (nftables sets as JSON, iptables chains), and the last Ban/Unban lines come from the log.
Only the standard library and nodelib (beside it, or put in front of it by the controller).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

from nodelib import (
    FAIL2BAN_LOG,
    RECEIVED,
    SHARE_STATE,
    Fail2ban,
    jail_names,
    jail_status,
    log_event,
    parse_received,
    read_expected,
    read_tail,
)

LOG = FAIL2BAN_LOG
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
IPTABLES_BAN = re.compile(r"^-A f2b-\S+ -s (\S+?)(?:/32|/128)? .*-j (?:REJECT|DROP)")


def nft_elements(text):
    """Addresses in an `nft -j list set` answer (plain elements, prefixes and ranges)."""
    found = []
    for item in json.loads(text).get("nftables", []):
        for elem in item.get("set", {}).get("elem", []) or []:
            value = elem.get("elem", {}).get("val", elem) if isinstance(elem, dict) else elem
            if isinstance(value, dict) and "prefix" in value:
                value = f"{value['prefix']['addr']}/{value['prefix']['len']}"
            found.append(str(value))
    return found


def iptables_bans(text):
    """Banned addresses in an `iptables -S f2b-<jail>` answer."""
    return [m.group(1) for m in map(IPTABLES_BAN.match, text.splitlines()) if m]


def run(*command):
    """stdout of `command`, or "" when it fails or is not installed."""
    if not shutil.which(command[0]):
        return ""
    done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    return done.stdout if done.returncode == 0 else ""


def firewall_holds(jail):
    """Every address the firewall refuses for `jail`: nftables sets and iptables/ip6tables chains."""
    held = []
    for name in (f"addr-set-{jail}", f"addr6-set-{jail}"):
        text = run("nft", "-j", "list", "set", "inet", "f2b-table", name)
        held += nft_elements(text) if text else []
    for tool in ("iptables", "ip6tables"):
        held += iptables_bans(run(tool, "-w", "-S", f"f2b-{jail}"))
    return sorted(set(held))


def shared_failures(log):
    """{jail: failures the peers sent and fail2ban counted here} in `log` (the lines of fail2ban's
    log, tail_of_log): fail2ban's own `Attempt` lines."""
    found = {}
    for line in log:
        event = log_event(line)
        if event and event[0] == "Attempt":
            found[event[1]] = found.get(event[1], 0) + 1
    return found


def tail_of_log():
    """fail2ban's log, the lines of its last 4 MB (since its rotation at most): a log an attacker
    made huge costs no more."""
    return read_tail(LOG, 4 << 20)


def last_events(log, count=10):
    """The last Ban/Unban lines of `log` (tail_of_log)."""
    changes = ("Ban", "Restore Ban", "Unban")  # of an address, or a network banned by hand
    return [line.strip() for line in log if (log_event(line) or ("",))[0] in changes][-count:]


def received(now):
    """{jail: {address: origin node}} of the bans made here for a peer that still run."""
    found = {}
    for line in read_tail(RECEIVED, 16 << 20):
        record = parse_received(line)
        if record and (record.end == 0 or record.end > now):
            found.setdefault(record.jail, {})[record.address] = record.origin
    return found


def products(units):
    """The products whose unit files exist and are not masked; `units`: {unit: product}, given by
    the controller (products.UNITS)."""
    found = []
    for unit, product in units.items():
        paths = [os.path.join(d, unit) for d in UNIT_DIRS if os.path.lexists(os.path.join(d, unit))]
        masked = any(os.path.realpath(path) == "/dev/null" for path in paths)
        if paths and not masked and product not in found:
            found.append(product)
    return found


def read(units):
    log = tail_of_log()
    state = {
        "running": False,
        "active": None,
        "jails": {},
        "events": last_events(log),
        "shares": os.path.isdir(SHARE_STATE),
        "products": products(units),
    }
    try:  # what the deploy set up here: the judge's record (None: no deploy of this release)
        state["expected"] = read_expected()
    except ValueError as error:
        state["expected"], state["expected_error"] = None, str(error)[:300]
    try:
        sock = Fail2ban()
        sock.ask("ping")
        state["running"] = True
    except Exception:  # not installed, not running, no socket: fail2ban does not answer
        state["active"] = run("systemctl", "is-active", "fail2ban").strip() or "inactive"
        return state
    names = jail_names(sock.ask("status"))
    origins, shared = received(time.time()), shared_failures(log)
    for name in names:
        try:
            answer = sock.ask("status", name)
            ignoreip = sock.ask("get", name, "ignoreip")
        except RuntimeError:
            continue  # the jail went away between the two questions
        jail = jail_status(answer)
        jail["ignoreip"] = [str(entry) for entry in ignoreip]
        jail["firewall"] = firewall_holds(name)
        jail["from"] = {
            ip: origin for ip, origin in origins.get(name, {}).items() if ip in jail["banned_ips"]
        }
        jail["peers_failed"] = shared.get(name, 0)
        state["jails"][name] = jail
    sock.close()
    return state


if __name__ == "__main__":
    json.dump(
        read(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}), sys.stdout, sort_keys=True
    )
    print()
