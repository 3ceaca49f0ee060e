"""The plain logic of the cluster-wide day-2 operations (status, ban, unban, sync): reading a
node's fail2ban state (model.Fail2banState), judging it and planning bans. Unit-tested."""

import ipaddress
import json

from pyinfra.api import FactBase, QuoteString
from pyinfra.api.exceptions import DeployError, FactProcessError

from ..canonical import (
    HOSTNAME,
    NAME,
    bannable_address,
    canonical_address,
    canonical_network,
    printable,
    safe_path,
    shown,
)
from ..facts import DEFAULT_TIMEOUT, node_read
from ..products import ACCESS_LOGS, PRODUCTS, UNITS
from ..proxies import PROXIES
from ..scripts.nodelib import parse_expected


def parse_state(text):
    """The JSON that scripts/state.py prints on the node -> the Fail2banState dict, each jail with
    `not_enforced`: the addresses fail2ban lists as banned that the firewall does not hold. Every
    value is parsed (a jail's name, each address in canonical form, counts, ignoreip entries);
    ValueError naming the first value that is not what state.py prints: nothing of it is used."""
    if len(text) > MAX_STATE:
        raise ValueError(
            f"more than {MAX_STATE} bytes (cut there on the node): no answer of state.py"
        )
    try:
        state = json.loads(text)
    except RecursionError:
        raise ValueError(f"not the state script's JSON: {shown(text, 200)}") from None
    if not isinstance(state, dict) or not {"running", "active", "jails", "events"} <= set(state):
        raise ValueError(f"not the state script's JSON: {shown(text, 200)}")
    if not isinstance(state["jails"], dict) or not isinstance(state["events"], list):
        raise ValueError(f"not the state script's JSON: {shown(text, 200)}")
    jails = {}
    for name, jail in state["jails"].items():
        if not NAME.fullmatch(name) or not isinstance(jail, dict):
            raise ValueError(f"the node reported a jail named {shown(name)}")
        try:
            jails[name] = _jail_state(jail)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"the node reported for jail {name}: {error}") from None
    return {
        "running": state["running"] is True,
        "active": printable(state["active"], 40) if state["active"] else None,
        "jails": jails,
        "events": [printable(event, 300) for event in state["events"][-20:]],
        "shares": state.get("shares") is True,
        # the Proxmox products the node runs (their units)
        "products": [p for p in state.get("products") or [] if p in PRODUCT_JAILS],
        # what the deploy set up there (nodelib.EXPECTED), or None, with why where it is unread
        "expected": _expected(state.get("expected")),
        "expected_error": printable(state["expected_error"], 300)
        if state.get("expected_error")
        else None,
    }


def _expected(value):
    """The record of our jails as state.py sent it -> parse_expected's dict, or None."""
    if value is None:
        return None
    try:
        return parse_expected(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise ValueError(f"the node reported {error}") from None


def _jail_state(jail):
    banned_ips = [canonical_address(ip) for ip in jail.get("banned_ips") or []]
    held = {_held(entry) for entry in jail.get("firewall") or []}
    origins = jail.get("from") or {}
    return {
        **{key: _count(jail.get(key, 0)) for key in COUNTS},
        "banned_ips": banned_ips,
        "journal_matches": printable(jail["journal_matches"], 500)
        if jail.get("journal_matches")
        else None,
        "file_list": [safe_path(path) for path in jail.get("file_list") or []] or None,
        "ignoreip": [_ignore_entry(entry) for entry in jail.get("ignoreip") or []],
        "firewall": sorted(held),
        # {address: the peer it was received from}
        "from": {canonical_address(ip): _name(origin) for ip, origin in origins.items()},
        "not_enforced": [ip for ip in banned_ips if ip not in held],
    }


COUNTS = ("failed", "total_failed", "peers_failed", "banned", "total_banned")


def _count(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{shown(value)} is not a count")
    return value


def _name(value):
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a node name")
    return value


def _held(entry):
    """An address the firewall refuses (canonical), or a network (nftables prefixes)."""
    held = canonical_network(entry)
    return (
        held[: -len("/32")]
        if held.endswith("/32")
        else held[: -len("/128")]
        if held.endswith("/128")
        else held
    )


def _ignore_entry(entry):
    """An ignoreip entry as fail2ban reports it: an address, a network or a host name."""
    if isinstance(entry, str) and len(entry) <= 260:
        try:
            return canonical_network(entry)
        except ValueError:
            if HOSTNAME.fullmatch(entry):
                return entry
    raise ValueError(
        f"ignoreip entry {shown(entry)} is neither an address, a network nor a host name"
    )


def parse_addresses(value, key="ip"):
    """--data ip=... (one address, comma-separated, or a list) -> [canonical addresses]
    (nodelib.bannable_address: no network, no scope ID, IPv4-mapped folded); else DeployError naming
    the bad value."""
    items = [i for i in value.split(",") if i.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or len(items) > 10_000:
        raise DeployError(
            f"{key} = {shown(value)}: give one address or a list (--data {key}=192.0.2.7); "
            "nothing was changed"
        )
    out = []
    for item in items:
        try:
            out.append(bannable_address(item.strip() if isinstance(item, str) else item))
        except ValueError as error:
            raise DeployError(f"{key} = {shown(value)}: {error}; nothing was changed") from None
    return list(dict.fromkeys(out))


def is_ignored(address, ignoreip):
    """True when `address` falls in any ignoreip entry (addresses and CIDRs; host names are skipped)."""
    ip = ipaddress.ip_address(address)
    for entry in ignoreip:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def status_rows(states):
    """{node: state} -> table rows, one per node and jail."""
    rows = []
    for node, state in sorted(states.items()):
        if state.get("error"):
            rows.append([node, "-", "UNREACHABLE", "", "", "", "", "", state["error"]])
            continue
        if not state["running"]:
            rows.append(
                [
                    node,
                    "-",
                    "DOWN",
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"fail2ban {state.get('active') or 'not running'}",
                ]
            )
            continue
        for name, jail in sorted(state["jails"].items()):
            flag = (
                ("NOT ENFORCED: " + " ".join(jail["not_enforced"])) if jail["not_enforced"] else ""
            )
            rows.append(
                [
                    node,
                    name,
                    "up",
                    str(jail.get("failed", 0)),
                    str(jail.get("total_failed", 0)),
                    str(jail.get("peers_failed", 0)),
                    str(jail.get("banned", 0)),
                    str(jail.get("total_banned", 0)),
                    " ".join(
                        f"{ip} (from {jail['from'][ip]})" if ip in jail["from"] else ip
                        for ip in jail["banned_ips"]
                    )
                    + (f"  {flag}" if flag else ""),
                ]
            )
    return rows


def format_table(
    rows,
    header=(
        "node",
        "jail",
        "state",
        "failed",
        "total failed",
        "from peers",
        "banned",
        "total banned",
        "banned addresses",
    ),
):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


# Our login jails: sshd everywhere, one per Proxmox product a node runs (its `products`), one per
# reverse proxy in front of one (proxies.py), one per product's web proxy access log (API tokens).
LOGIN_JAILS = (
    "sshd",
    *(p.jail for p in PRODUCTS),
    *(p.jail for p in PROXIES),
    *(a.jail for a in ACCESS_LOGS),
)
PRODUCT_JAILS = {p.key: p.jail for p in PRODUCTS}


def expected_jails(state):
    """(jails that must run, jails that must not) on a node: the deploy's record of what it set up
    there (nodelib.EXPECTED), the record the deploy's check and the metrics judge by. A node no
    deploy of this release has reached has none: sshd, and the jail of each product it runs."""
    if state.get("expected"):
        return state["expected"]["jails"], state["expected"]["off"]
    products = state.get("products", [])
    return ["sshd", *(PRODUCT_JAILS[p] for p in products if p in PRODUCT_JAILS)], []


def status_problems(states):
    problems = []
    for node, state in sorted(states.items()):
        if state.get("error"):
            problems.append(f"{node}: unreachable or unreadable: {state['error']}")
            continue
        if not state["running"]:
            problems.append(f"{node}: fail2ban is not running")
            continue
        if state.get("expected_error"):
            problems.append(f"{node}: {state['expected_error']} (deploy.py writes it anew)")
        must, off = expected_jails(state)
        problems += [f"{node}: jail {j} is missing" for j in must if j not in state["jails"]]
        problems += [
            f"{node}: jail {j} runs, but the deploy's settings switched it off"
            for j in off
            if j in state["jails"]
        ]
        problems += [  # ours only: a jail of the admin's may read the whole journal
            f"{node}: jail {j} reads no live source (no journal match, no existing log file)"
            for j, jail in sorted(state["jails"].items())
            if j in LOGIN_JAILS and not jail["journal_matches"] and not jail["file_list"]
        ]
        problems += [
            f"{node}: {j} lists {ip} as banned but the firewall does not enforce it"
            for j, jail in state["jails"].items()
            for ip in jail["not_enforced"]
        ]
    return problems


def unreadable(reason):
    """The state of a node that could not be read, as status reports it (UNREACHABLE)."""
    return {"error": reason, "running": False, "active": None, "jails": {}, "events": []}


def cluster_report(states):
    """{node: state} -> (text to print, JSON-able report, problems). Every node appears, read or not."""
    lines = ["", format_table(status_rows(states))]
    for name, node_state in sorted(states.items()):
        lines += [f"  {name}: {event}" for event in node_state["events"][-5:]]
    problems = status_problems(states)
    return "\n".join(lines), {"nodes": states, "problems": problems}, problems


def parse_jails(value, state, node):
    """--data jails=... -> jail names that run on the node (default: every login jail of ours
    running there: LOGIN_JAILS)."""
    if value in (None, ""):
        wanted = [j for j in LOGIN_JAILS if j in state["jails"]]
        if not wanted:
            raise DeployError(
                f"no jail of ours ({', '.join(LOGIN_JAILS)}) runs on {node} (it runs: "
                f"{', '.join(sorted(state['jails'])) or 'none'}); nothing was changed"
            )
    else:
        wanted = value.split(",") if isinstance(value, str) else value
        if not isinstance(wanted, (list, tuple)) or not wanted:
            raise DeployError(
                f"jails = {shown(value)}: give jail names, e.g. --data jails=sshd,proxmox"
            )
        wanted = [j.strip() if isinstance(j, str) else j for j in wanted]
        bad = [j for j in wanted if not isinstance(j, str) or not NAME.fullmatch(j)]
        if bad:
            raise DeployError(
                f"jails = {shown(value)}: {shown(bad[0])} is not a jail name; nothing was changed"
            )
    missing = [j for j in wanted if j not in state["jails"]]
    if missing:
        raise DeployError(
            f"jails = {shown(value)}: jail {missing[0]!r} does not run on {node} "
            f"(it runs: {', '.join(sorted(state['jails'])) or 'none'}); nothing was changed"
        )
    return list(dict.fromkeys(wanted))


def check_ban_allowed(addresses, jails, state, controller, peers, force, node):
    """DeployError (nothing changed anywhere) when an address is one we must never ban, unless forced."""
    if force:
        return
    for address in addresses:
        reason = None
        if address == controller:
            reason = "it is this controller's address (you would lock yourself out)"
        elif address in peers:
            reason = "it is a node of the inventory (cluster peers must reach each other)"
        else:
            ignored = [
                j for j in jails if is_ignored(address, state["jails"][j].get("ignoreip", []))
            ]
            if ignored:
                reason = f"it is in the ignoreip of jail {ignored[0]} on {node}"
        if reason:
            raise DeployError(
                f"refusing to ban {address}: {reason}. Nothing was changed; "
                "add --data force=true to ban it anyway"
            )


def bans_to_sync(node, states):
    """[(jail, address, [nodes where it is banned])] that `node` lacks; ignored addresses are skipped."""
    mine = states[node]
    if not mine["running"]:  # also a node that could not be read
        return []
    todo = []
    for jail, status in sorted(mine["jails"].items()):
        sources = {}
        for other, state in sorted(states.items()):
            if other != node and state["running"] and jail in state["jails"]:
                for address in state["jails"][jail]["banned_ips"]:
                    sources.setdefault(address, []).append(other)
        for address in sorted(sources):
            if address not in status["banned_ips"] and not is_ignored(
                address, status.get("ignoreip", [])
            ):
                todo.append((jail, address, sources[address]))
    return todo


# fail2ban's state, read by python3 on the node (fail2ban needs python3; without it, fail2ban is
# not installed and the node says so in the same JSON shape). The products' units: products.UNITS.
MAX_STATE = 16 << 20  # bytes of state.py's answer: a node's ban lists after a flood of 100,000


def state_command(seconds=DEFAULT_TIMEOUT):
    """scripts/state.py's one command, bounded (facts.node_read)."""
    return node_read(
        "state.py",
        QuoteString(json.dumps(UNITS, sort_keys=True)),
        absent='{"running": false, "active": "not installed", "jails": {}, "events": []}',
        seconds=seconds,
        limit=MAX_STATE,
    )


class Fail2banState(FactBase):
    """fail2ban as it runs on the node, read-only: the JSON that scripts/state.py prints there,
    checked by model.parse_state::

    {
        "running": True,          # fail2ban-server answers ping on its socket
        "active": None,           # `systemctl is-active fail2ban` when it does not answer
        "jails": {"sshd": {"failed": 0, "total_failed": 3, "banned": 1, "total_banned": 1,
                           "banned_ips": ["192.0.2.7"], "journal_matches": "...", "file_list": None,
                           "ignoreip": ["127.0.0.1/8"], "firewall": ["192.0.2.7"],
                           "not_enforced": [],
                           "from": {"192.0.2.7": "pve2"}}},  # bans received from that peer
        "shares": True,           # this node shares bans (cluster-wide bans)
        "products": ["pve"],      # the Proxmox products it runs (products.UNITS)
        "events": ["2026-11-24 23:01:54,344 ... [sshd] Ban 192.0.2.7"],  # last Ban/Unban lines
    }
    """

    def command(self, seconds=DEFAULT_TIMEOUT):
        return state_command(seconds)

    def process(self, output):
        try:
            return parse_state("\n".join(output))
        except Exception as error:  # noqa: BLE001 - whatever a node says fails that node alone
            raise FactProcessError(f"unexpected output from the node: {error}") from error
