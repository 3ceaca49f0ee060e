"""The day-2 operations, cluster-wide, as packaged deploys: status_fail2ban, ban_fail2ban,
unban_fail2ban, sync_fail2ban, remove_fail2ban. The root files status.py, ban.py, ... call them
with their --data arguments; your own deploy files can do the same.

Operations that need every node's state (status, sync) read it once per run, on the first turn,
for all nodes in parallel, and add each node's operations from there (turns.py).
"""

import json

from pyinfra import host, inventory, logger, state
from pyinfra.api import QuoteString, StringCommand, deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, server

from ..canonical import printable, shown
from ..events import removal
from ..facts import NodeFacts
from ..node import controller_addresses, inventory_addresses, read, settings_of
from ..operations import STAGE, peers_authorized, script_reported
from ..plan import files_to_remove
from ..scripts.nodelib import LIFTED, SHARE_STATE
from ..share import removal as unshare
from ..turns import acting_as, first_turn, in_parallel, reach
from .model import (
    Fail2banState,
    bans_to_sync,
    check_ban_allowed,
    cluster_report,
    is_ignored,
    parse_addresses,
    parse_jails,
    unreadable,
)


def _flag(value, key):
    if not isinstance(value, bool):
        raise DeployError(f"{key} = {shown(value)}: must be true or false; nothing was changed")
    return value


def fail2ban_client(*args):
    """`fail2ban-client ARGS...`, every argument quoted: never a shell string built from data."""
    return StringCommand("fail2ban-client", *(QuoteString(str(a)) for a in args))


def read_state(node):
    """Fail2banState of `node`, connecting first if needed; a node that cannot be reached or read
    gets day2.unreadable(pyinfra's reason) instead. Never fails the run."""
    failed = reach(node)
    if failed:
        return unreadable(f"cannot connect: {failed}")
    fact, seconds = Fail2banState(), settings_of(node)["node_timeout"]
    try:
        ok, output = node.run_shell_command(
            fact.command(seconds),
            print_output=state.print_fact_output,
            print_input=state.print_fact_input,
            _timeout=seconds,
        )
    except TimeoutError:
        return unreadable(f"no answer within {seconds} s (fail2ban_node_timeout)")
    if not ok:
        said = printable(" ".join(output.stderr_lines)[-300:]) or "no output"
        return unreadable(f"the state command failed: {said}")
    try:
        return fact.process(output.stdout_lines)
    except Exception as error:  # noqa: BLE001 - any parse failure is this node's alone
        return unreadable(str(error))


@deploy("fail2ban status")
def status_fail2ban(report=None):
    """Read-only report of every node of the run (all of the inventory, or --limit's), reachable or
    not: a table, and a JSON file at `report`. Ends the run itself, before pyinfra asks anything:
    exit code 0 when every node is protected, 1 otherwise (unreachable nodes included)."""
    if not first_turn():
        return
    nodes = [h for h in inventory if state.is_host_in_limit(h)]
    text, data, problems = cluster_report(in_parallel(read_state, nodes))
    print(text)
    if report:
        with open(report, "w") as out:
            json.dump(data, out, indent=2, sort_keys=True)
        print(f"  report: {report}")
    if problems:
        logger.error("not protected:\n  " + "\n  ".join(problems))
    raise SystemExit(1 if problems else 0)


@deploy("fail2ban ban everywhere")
def ban_fail2ban(ip, jails=None, force=False):
    """Ban `ip` (one address, "a,b" or a list) in `jails` (default: every login jail of ours running
    on this node: sshd and its products' jails, model.LOGIN_JAILS).
    Refuses this controller, inventory nodes and ignoreip entries unless `force`."""
    addresses = parse_addresses(ip)
    force = _flag(force, "force")
    current, facts = read(host, Fail2banState), read(host, NodeFacts)
    if current is None or facts is None:  # pyinfra has failed this node alone and said why
        return
    chosen = parse_jails(jails, current, host.name)
    check_ban_allowed(
        addresses,
        chosen,
        current,
        facts["client"],
        inventory_addresses(inventory),
        force,
        host.name,
    )
    # host.loop: each operation's place in pyinfra's order is its loop position too, so that
    # nodes that need different operations per address never order them against each other
    for jail in host.loop(chosen):
        for address in host.loop(addresses):
            status = current["jails"][jail]
            # a copy of a peer's ban is lifted at that peer's end: claimed, it is this node's own
            claim = StringCommand(
                "printf 'claim %s %s\\n'",
                QuoteString(jail),
                QuoteString(address),
                ">>",
                f"{SHARE_STATE}/outbox",
            )  # fmt: skip
            if address in status["from"]:
                server.shell(
                    name=f"{address} banned in jail {jail}: its ban received from a peer claimed",
                    commands=[claim],
                )
                continue
            if address in status["banned_ips"]:
                host.noop(f"{address} is already banned in {jail}")
                continue
            server.shell(
                name=f"{address} banned in jail {jail}",
                # claimed too where bans are shared: another node's ban of it may reach this one
                # first (every node bans at once), and this ban would then be that copy
                commands=[fail2ban_client("set", jail, "banip", address)]
                + ([claim] if current["shares"] else []),
            )


@deploy("fail2ban unban everywhere")
def unban_fail2ban(ip):
    """Lift `ip` from every jail of this node where it is banned (also bans received from a peer),
    and from the node's queue of bans still to send (cluster-wide bans)."""
    addresses = parse_addresses(ip)
    current = read(host, Fail2banState)
    if current is None:
        return
    for address in host.loop(addresses):  # host.loop: as in ban_fail2ban
        where = [
            jail
            for jail, status in sorted(current["jails"].items())
            if address in status["banned_ips"]
        ]
        # First on every node (pyinfra runs each operation on all nodes before the next): no
        # node's queue can bring it back to a node that is unbanned next.
        if current["shares"]:
            server.shell(
                name=f"{address} no longer queued, nor taken from a peer (cluster-wide bans)",
                # lifted first: when the share daemon reads `forget`, the lift is on disk
                commands=[
                    StringCommand(
                        "printf '%s %s\\n'",
                        QuoteString(address),
                        "$(date +%s.%N) >>",
                        LIFTED,
                        "&& printf 'forget %s\\n'",
                        QuoteString(address),
                        ">>",
                        f"{SHARE_STATE}/outbox",
                    )
                ],  # fmt: skip
            )
        if not where:
            host.noop(f"{address} is not banned on {host.name}")
        for jail in host.loop(where):
            server.shell(
                name=f"{address} unbanned from jail {jail} (it was banned here)",
                commands=[fail2ban_client("set", jail, "unbanip", address)],
            )


@deploy("fail2ban sync bans")
def sync_fail2ban():
    """Every node's bans, per jail, banned on the other nodes of the run that have that jail.
    Reads every reachable node of the inventory once (also nodes outside --limit, whose bans
    count), writes only to the nodes of the run. Never spreads an address in the receiver's ignoreip."""
    if not first_turn():
        return
    states = in_parallel(read_state, list(inventory))
    for name, node_state in sorted(states.items()):
        if node_state.get("error"):
            logger.warning(f"{name}: its bans are not read ({node_state['error']})")
    # as ban.py refuses them: a node's word never bans this controller or a node of the inventory
    never = [*inventory_addresses(inventory), *controller_addresses()]  # the /64s too
    for target in inventory.get_active_hosts():
        with acting_as(target):
            for jail, address, sources in host.loop(bans_to_sync(target.name, states)):
                if is_ignored(address, never):
                    logger.warning(
                        f"{target.name}: {address} is banned in {jail} on {', '.join(sources)}, "
                        "but it is this controller or a node of the inventory: not spread"
                    )
                    continue
                server.shell(
                    name=f"{address} banned in jail {jail} (banned on {', '.join(sources)})",
                    commands=[fail2ban_client("set", jail, "banip", address)],
                )


@deploy("fail2ban removed")
def remove_fail2ban(purge=False):
    """Only the files the deploy put on the node go (never one of the fail2ban package), then
    fail2ban runs on the distribution's own configuration, or is stopped and disabled where that
    cannot run (Debian 12 without auth.log). `purge`: purge the fail2ban package instead."""
    purge = _flag(purge, "purge")
    facts = read(host, NodeFacts)
    if facts is None:
        return
    if facts["share_files"] or facts.get("share_activestate") == "active":
        server.shell(
            name="Cluster-wide bans taken away (service, key, peers)", commands=[unshare()]
        )
    if facts["events_files"] or facts.get("events_activestate") == "active":
        server.shell(
            name="Metrics and notifications taken away (service, configuration, metrics file)",
            commands=[removal(facts.get("textfile_dir"))],
        )
    if facts["authorized"]:
        others = sorted(h.name for h in inventory if not state.is_host_in_limit(h))
        peers_authorized(
            name="Our lines taken out of root's authorized_keys (no other line touched)",
            request=lambda: {"want": {}, "keep": others},
            current=facts["authorized"],
            _serial=True,  # one node at a time: on PVE every node's authorized_keys is one file
        )
    removed = [
        files.file(name=f"{path} removed", path=path, present=False)
        for path in files_to_remove({}, facts)
    ]
    files.directory(
        name="the deploy's work folder removed", path=STAGE.rsplit("/", 1)[0], present=False
    )
    if "fail2ban" not in facts["packages"]:
        return
    if purge:
        apt.packages(name="fail2ban purged", packages=["fail2ban"], present=False, purge=True)
    elif removed:
        script_reported(
            name="fail2ban on the distribution's own configuration (stopped if that cannot run here)",
            script="restore.sh",
        )
