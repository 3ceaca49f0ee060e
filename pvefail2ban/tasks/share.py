"""Share: cluster-wide bans (pvefail2ban.share). Each node's own share key, made on the
node; its peers' keys allowed to run the receiver and nothing else (root's authorized_keys,
edited one node at a time: on PVE that file is shared by the whole cluster); the peers and their
host keys; pve-fail2ban-share.service running. Off (or no peer): all of it taken away again."""

from dataclasses import replace

from pyinfra.operations import server

from ..facts import SCRIPTS
from ..operations import daemon_running, files_in_place, peers_authorized, share_key
from ..share import (
    KEY,
    SERVICE,
    SHARE_DIR,
    authorization,
    authorized_as_wanted,
    removal,
    share_files,
)


def authorize(node, sharing, keys, coming):
    """Root's authorized_keys: the share keys of every member, for the receiver only. Every key
    known and the lines as they should be: no operation (each costs the controller CPU per node)."""

    def request():
        return authorization([replace(m, key=keys.get(m.name) or m.key) for m in sharing])

    if not coming and authorized_as_wanted(request(), node.facts["authorized"]):
        return None
    return peers_authorized(
        name="Peers' share keys authorized on this node, for the ban receiver only",
        request=request,
        current=node.facts["authorized"],
        coming=coming,
        _serial=True,  # one node at a time: on PVE every node's authorized_keys is one file
    )


def share(node, sharing, keys, coming):
    """`sharing`: the members (share.members), the same for every node of the run;
    `keys`: {name: share public key}, filled as the keys are made; `coming`: a node of the run
    makes its key in this run (so the lines change once it exists). Returns the operations added."""
    facts, ops = node.facts, []
    if not node.plan.share:
        if facts["share_files"] or facts.get("share_activestate") == "active":
            ops.append(
                server.shell(
                    name="Cluster-wide bans switched off on this node", commands=[removal()]
                )
            )
        if not sharing and facts["authorized"]:
            ops.append(authorize(node, sharing, keys, coming))
        return [op for op in ops if op is not None]
    # Operations only where something is to do: in a run that changes nothing, each would cost
    # the controller CPU per node (pyinfra reads the call stack of every operation it adds).
    if facts["share_key"]:
        keys[node.name] = facts["share_key"]
    else:
        ops.append(
            share_key(
                name="This node's share key (made here, never leaves it)",
                keys=keys,
                directory=SHARE_DIR,
                key=KEY,
            )
        )
    placed = files_in_place(
        "Share service, receiver, peers and their host keys in place",
        share_files(
            node.name,
            [j.name for j in node.plan.jails],
            sharing,
            SCRIPTS,
            failures=node.settings["cluster_failures"],
        ),
        facts["share_files"],
        SHARE_DIR,
    )
    ops += [placed, authorize(node, sharing, keys, coming)]
    changed = placed is not None
    ops.append(
        daemon_running("Share service running with its peers", SERVICE, changed, facts, "share")
    )
    return [op for op in ops if op is not None]
