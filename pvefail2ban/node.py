"""The nodes as the deploy sees them: checked settings, facts, plan and files, read once per run
for every node (on the first turn, see turns.py) and passed to each task."""

import ipaddress
import shutil
import socket
import subprocess
from dataclasses import dataclass

from pyinfra.api.exceptions import DeployError

from .defaults import DEFAULTS
from .facts import NodeFacts
from .plan import NodeError, Plan, plan_node, unsupported
from .render import render_files
from .settings import SettingsError, check_address, validate
from .share import ShareError, members
from .turns import reach


@dataclass(kw_only=True)
class Node:
    name: str
    settings: dict  # validated settings (settings.validate)
    facts: dict = None  # NodeFacts; None when they could not be read
    plan: Plan = None  # None when the node cannot be served
    files: dict = None  # {path: bytes} to put on the node
    error: str = None  # why the node cannot be served, else None


def inventory_addresses(inventory):
    """Every node of the inventory as its peers reach it (ssh_hostname, else its name), when that is
    an address or a host name: a connector name like @docker/... or @local is nobody's address."""
    found = {h.data.get("ssh_hostname") or h.name for h in inventory}
    return sorted(a for a in found if check_address(a))


def cluster_addresses(inventory, facts):
    """Every address of every node the others may see: the inventory's, and each node's own global
    addresses (IPv4 and IPv6) as read from it. `facts`: {name: NodeFacts or None}."""
    found = set(inventory_addresses(inventory))
    for node_facts in facts.values():
        if node_facts is not None and not unsupported(
            node_facts
        ):  # a node we cannot serve is no peer
            found.update(node_facts["addresses"])
    return sorted(found, key=lambda a: (":" in a, a))


def controller_addresses():
    """This controller's global addresses (IPv4 and IPv6), as the nodes may see it besides the
    address it connects from (which the plan adds), and the /64 of its temporary (privacy) IPv6
    addresses (global_addresses)."""
    if not shutil.which("ip"):  # not Linux: the address the host name resolves to, if any
        try:
            return sorted(
                {
                    info[4][0]
                    for info in socket.getaddrinfo(socket.gethostname(), None)
                    if not ipaddress.ip_address(info[4][0]).is_loopback
                }
            )
        except OSError:
            return []
    out = subprocess.run(
        ["ip", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True, timeout=10
    ).stdout
    return global_addresses(out)


def global_addresses(ip_output):
    """`ip -o addr show scope global` -> this host's addresses as never to be banned: each stable
    address, and for IPv6 privacy addresses (`temporary`, made from a `mngtmpaddr` one) their /64.
    A workstation sends from its newest temporary address by default, and makes a new one every
    day: the one of today's run would not be tomorrow's, so the whole /64 they come from is
    covered (the trade-off, in docs/how-it-works.md: the other hosts of that /64, the admin's own
    LAN, are never banned either). Every entry canonical; anything unparsable is skipped."""
    found = set()
    for line in ip_output.splitlines():
        words = line.split()
        if len(words) < 4 or words[2] not in ("inet", "inet6"):
            continue
        try:
            interface = ipaddress.ip_interface(words[3])
        except ValueError:
            continue
        flags = set(words[4:])
        if interface.version == 6 and flags & {"temporary", "mngtmpaddr"}:
            found.add(str(ipaddress.ip_network(f"{interface.ip}/64", strict=False)))
        elif "temporary" not in flags and "deprecated" not in flags:
            found.add(str(interface.ip))
    return sorted(found, key=lambda a: (":" in a, "/" in a, a))


def settings_of(host):
    """The host's validated settings (the package's defaults under its own data); bad ones stop the
    whole run before anything changes."""
    try:
        return validate({**DEFAULTS, **host.data.dict()})
    except SettingsError as error:
        raise DeployError(f"{host.name}: {error}") from None


def read(host, fact, **arguments):
    """`host.get_fact(fact)`, bounded by the host's fail2ban_node_timeout: on the node (the
    command's own timeout and output limit, facts.node_read) and by pyinfra (`_timeout`), which
    fails that node alone with "Command timed out after Ns" and "could not load fact: <fact>"."""
    seconds = settings_of(host)["node_timeout"]
    return host.get_fact(fact, seconds=seconds, _timeout=seconds, **arguments)


def read_facts(host, in_run):
    """NodeFacts of `host`. A node of the run that cannot be read is failed by pyinfra (alone, with
    its reason); a node outside the run (--limit) is only read for its addresses, never failed."""
    if in_run:
        return read(host, NodeFacts)
    if reach(host):
        return None
    return read(host, NodeFacts, _ignore_errors=True)


def sharing_members(inventory, settings, facts):
    """share.members of the inventory: every node's settings (those outside --limit read
    here too) and facts; a node we cannot serve shares nothing. A bad name stops the run first."""
    nodes = []
    for host in inventory:
        node_facts = facts.get(host.name)
        usable = node_facts is not None and not unsupported(node_facts)
        nodes.append(
            (
                host.name,
                host.data.get("ssh_hostname") or host.name,
                settings.get(host.name) or settings_of(host),
                node_facts if usable else None,
            )
        )
    try:
        return members(nodes)
    except ShareError as error:
        raise DeployError(f"{error}; nothing was changed") from None


def node_for(host, settings, facts, peers=(), controller=(), share=False):
    """Node for `host`: its plan and files, or why it cannot be served."""
    if facts is None:  # pyinfra has failed this node alone and printed why
        return Node(
            name=host.name,
            settings=settings,
            error="its facts could not be read (pyinfra's error above)",
        )
    try:
        plan = plan_node(settings, facts, peers, controller, share, name=host.name)
    except NodeError as error:
        return Node(name=host.name, settings=settings, facts=facts, error=str(error))
    return Node(
        name=host.name,
        settings=settings,
        facts=facts,
        plan=plan,
        files=render_files(plan, settings),
    )
