"""The plain logic of the cluster-wide day-2 operations (status, ban, unban, sync): reading a
node's fail2ban state (facts.Fail2banState), judging it and planning bans. Unit-tested."""

import ipaddress
import json

from pyinfra.api.exceptions import DeployError


def parse_state(text):
    """The JSON that scripts/state.py prints on the node -> the Fail2banState dict, each jail with
    `not_enforced`: the addresses fail2ban lists as banned that the firewall does not hold.
    ValueError on anything else."""
    state = json.loads(text)
    if not isinstance(state, dict) or not {"running", "active", "jails", "events"} <= set(state):
        raise ValueError(f"not the state script's JSON: {text[:200]!r}")
    state.setdefault("shares", False)
    state.setdefault("products", [])  # the Proxmox products the node runs (their units)
    for jail in state["jails"].values():
        jail.setdefault("from", {})  # {address: the peer it was received from}
        held = set(jail["firewall"])
        jail["not_enforced"] = [ip for ip in jail["banned_ips"] if ip not in held]
    return state


def parse_addresses(value, key="ip"):
    """--data ip=... (one address, comma-separated, or a list) -> [canonical addresses]; else DeployError
    naming the bad value."""
    items = [i for i in value.split(",") if i.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise DeployError(
            f"{key} = {value!r}: give one address or a list (--data {key}=192.0.2.7); "
            "nothing was changed"
        )
    out = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_address(str(item).strip())))
        except ValueError:
            raise DeployError(
                f"{key} = {value!r}: {item!r} is not an IP address; nothing was changed"
            ) from None
    return out


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
            rows.append([node, "-", "UNREACHABLE", "", "", "", "", state["error"]])
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


# Our login jails: sshd everywhere, one per Proxmox product a node runs (its `products`).
LOGIN_JAILS = ("sshd", "proxmox", "pbs", "pmg")
PRODUCT_JAILS = {"pve": "proxmox", "pbs": "pbs", "pmg": "pmg"}


def expected_jails(state):
    """The jails a node must run: sshd, and the jail of each Proxmox product it runs."""
    return ["sshd", *(PRODUCT_JAILS[p] for p in state.get("products", []) if p in PRODUCT_JAILS)]


def status_problems(states):
    problems = []
    for node, state in sorted(states.items()):
        if state.get("error"):
            problems.append(f"{node}: unreachable or unreadable: {state['error']}")
            continue
        if not state["running"]:
            problems.append(f"{node}: fail2ban is not running")
            continue
        problems += [
            f"{node}: jail {j} is missing" for j in expected_jails(state) if j not in state["jails"]
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
    running there: sshd, proxmox, pbs, pmg)."""
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
            raise DeployError(f"jails = {value!r}: give jail names, e.g. --data jails=sshd,proxmox")
    missing = [j for j in wanted if j not in state["jails"]]
    if missing:
        raise DeployError(
            f"jails = {value!r}: jail {missing[0]!r} does not run on {node} "
            f"(it runs: {', '.join(sorted(state['jails'])) or 'none'}); nothing was changed"
        )
    return [str(j).strip() for j in wanted]


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
