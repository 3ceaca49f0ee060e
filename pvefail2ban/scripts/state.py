"""Run on the node by python3 (pvefail2ban.facts.Fail2banState): fail2ban as it runs, printed as
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

from nodelib import RECEIVED, Fail2ban, parse_received, read_tail

LOG = "/var/log/fail2ban.log"
SHARE = "/var/lib/pve-fail2ban/share"  # cluster-wide bans: where this node keeps what it received
# The Proxmox products, by their unit files (as NodeFacts tells them; a masked unit is none)
PRODUCT_UNITS = {
    "pvedaemon.service": "pve",
    "proxmox-backup.service": "pbs",
    "proxmox-backup-proxy.service": "pbs",
    "pmgdaemon.service": "pmg",
}
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
FIELDS = {
    "Currently failed": "failed",
    "Total failed": "total_failed",
    "Currently banned": "banned",
    "Total banned": "total_banned",
    "Banned IP list": "banned_ips",
    "Journal matches": "journal_matches",
    "File list": "file_list",
}
IPTABLES_BAN = re.compile(r"^-A f2b-\S+ -s (\S+?)(?:/32|/128)? .*-j (?:REJECT|DROP)")
EVENT = re.compile(r"\] (Ban|Unban|Restore Ban) ")


def jail_status(answer):
    """fail2ban's answer to `status <jail>` ([("Filter", [...]), ("Actions", [...])]) -> flat dict."""
    jail = {"banned_ips": [], "journal_matches": None, "file_list": None}
    for _, section in answer:
        for label, value in section:
            if label in FIELDS:
                jail[FIELDS[label]] = value
    if isinstance(jail["journal_matches"], list):  # 1.0+ gives a list of " + "-joined groups
        jail["journal_matches"] = " ".join(jail["journal_matches"]) or None
    jail["banned_ips"] = [str(ip) for ip in jail["banned_ips"]]
    return jail


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


def last_events(count=10):
    """The last Ban/Unban lines of fail2ban's log (its last 4 MB: a log an attacker made huge
    costs no more)."""
    return [line.strip() for line in read_tail(LOG, 4 << 20) if EVENT.search(line)][-count:]


def received(now):
    """{jail: {address: origin node}} of the bans made here for a peer that still run."""
    found = {}
    for line in read_tail(RECEIVED, 16 << 20):
        record = parse_received(line)
        if record and (record.end == 0 or record.end > now):
            found.setdefault(record.jail, {})[record.address] = record.origin
    return found


def products():
    found = []
    for unit, product in PRODUCT_UNITS.items():
        paths = [os.path.join(d, unit) for d in UNIT_DIRS if os.path.lexists(os.path.join(d, unit))]
        masked = any(os.path.realpath(path) == "/dev/null" for path in paths)
        if paths and not masked and product not in found:
            found.append(product)
    return found


def read():
    state = {
        "running": False,
        "active": None,
        "jails": {},
        "events": last_events(),
        "shares": os.path.isdir(SHARE),
        "products": products(),
    }
    try:
        sock = Fail2ban()
        sock.ask("ping")
        state["running"] = True
    except Exception:  # not installed, not running, no socket: fail2ban does not answer
        state["active"] = run("systemctl", "is-active", "fail2ban").strip() or "inactive"
        return state
    status = sock.ask("status")
    names = [n.strip() for n in dict(status).get("Jail list", "").split(",") if n.strip()]
    origins = received(time.time())
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
        state["jails"][name] = jail
    sock.close()
    return state


if __name__ == "__main__":
    json.dump(read(), sys.stdout, sort_keys=True)
    print()
