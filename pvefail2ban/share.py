"""Cluster-wide bans: what each node needs so that a ban on one node reaches every other at once.
Pure: the nodes' settings and facts in, files and authorized_keys lines out (the flow is
pvefail2ban.tasks.share; the node side is scripts/share.py and scripts/receive.py).

How it works, on every node that shares:
- fail2ban's `pve-fail2ban-share` action (in each of our jails) appends every ban to an outbox;
- pve-fail2ban-share.service sends it at once over SSH to every peer, with a key made on the node;
- on the peer, that key may only run the receiver (authorized_keys `restrict,from=,command=`),
  which checks the request and the peer's own ignoreip, then bans for the time left;
- a ban received is recorded first, so it is never sent on (no loops);
- a peer that does not answer keeps its bans queued (on disk too) until it does.
"""

import json
from dataclasses import dataclass

from .canonical import NAME, canonical_address, host_name, public_key

# where its files live on the node (layout.py: the facts read them there too)
from .layout import MARK, PEERS_BAN, SHARE_FILES, daemon_unit  # noqa: F401 - SHARE_FILES' modes below
from .layout import SHARE_DAEMON as DAEMON
from .layout import SHARE_LIB as LIB  # noqa: F401
from .layout import SHARE_NODELIB as NODELIB
from .layout import SHARE_RECEIVER as RECEIVER
from .layout import SHARE_SERVICE as SERVICE
from .layout import SHARE_STATE_DIR as STATE_DIR
from .layout import SHARE_UNIT as UNIT
from .scripts.nodelib import CONFIG_DIR, KNOWN_HOSTS, PEERS
from .scripts.nodelib import KEY as KEY  # the share key's paths: the node scripts' own
from .scripts.nodelib import SHARE_DIR as SHARE_DIR


class ShareError(ValueError):
    """The inventory cannot share bans as it is; the message names what to change."""


@dataclass(kw_only=True)
class Member:
    """A node that shares bans, as its peers see it."""

    name: str
    address: str  # where its peers connect (the inventory's address)
    port: int  # its sshd port
    addresses: list  # the IP addresses it connects from (its own, read from it)
    hostkeys: list  # its sshd host keys, "type base64"
    key: str = None  # its share public key, "ssh-ed25519 base64"; None until made


def members(nodes):
    """The nodes that share bans, from [(name, address, settings, facts)] of every inventory node
    (facts None when they could not be read; their values are canonical, see facts.parse_node).
    Nobody shares unless two or more nodes do.

    A node that cannot be read this run (down, unreachable) stays a member as the others last
    knew it (their peers.json), so nobody drops it and its authorized_keys line stays: at the
    inventory's address, with the port and the host keys that every node's record of it agrees
    on (one node's forged record can neither add a host key nor move it elsewhere)."""
    known = {}
    for _, _, _, facts in nodes:
        for peer in (facts or {}).get("share_peers") or []:
            known.setdefault(peer["name"], []).append(peer)
    found = []
    for name, address, settings, facts in nodes:
        if not settings["cluster_bans"]:
            continue
        if facts is None:  # not read this run, or not a node we can serve
            if name in known:  # its line stays; where the records disagree it gets no bans
                last = agreed(known[name], address) or {"port": 22, "hostkeys": []}
                found.append(Member(name=name, address=address, addresses=[], **last))
            continue
        if not NAME.fullmatch(name):
            raise ShareError(
                f"{name!r}: cluster-wide bans need inventory names of letters, digits, '.', '_' "
                "and '-' (set fail2ban_cluster_bans = False for this node, or rename it)"
            )
        try:
            address = host_name(address)
        except ValueError as error:
            raise ShareError(f"{name}: its address {error}") from None
        if not 0 < len(facts["hostkeys"]) <= 16:
            continue  # its peers could not check they reach it: it shares nothing
        ips = [a for a in [_canonical(address), *facts["addresses"]] if a]
        found.append(
            Member(
                name=name,
                address=address,
                port=int((facts["sshd_ports"] or ["22"])[0]),
                addresses=list(dict.fromkeys(ips)),
                hostkeys=facts["hostkeys"],
                key=facts["share_key"],
            )
        )
    keys = [m.key for m in found if m.key]
    for member in found:  # a key two nodes claim is nobody's: each keeps its old line
        if member.key and keys.count(member.key) > 1:
            member.key = None
    return found if len(found) > 1 else []


def agreed(records, address):
    """{port, hostkeys} of a node as every record of it (canonical.peer_record) says, where each
    record puts it at `address` and they agree on the port: the host keys all of them list. None
    where they agree on nothing."""
    if not records or any(r["address"] != address for r in records):  # also a bad `address`
        return None
    if len({r["port"] for r in records}) != 1:
        return None
    keys = [k for k in records[0]["hostkeys"] if all(k in r["hostkeys"] for r in records)]
    return {"port": records[0]["port"], "hostkeys": keys} if keys else None


def _canonical(text):
    try:
        return canonical_address(text)
    except ValueError:
        return None


def authorized_line(member):
    """The authorized_keys line that lets `member`'s share key run the receiver, nothing else.
    Built from canonical values only (sshd ends the options at the first unquoted space: a value
    with a quote or a space in it could add options, or a key of its own); ValueError otherwise."""
    addresses = [canonical_address(a) for a in member.addresses]
    if not addresses:
        raise ValueError(f"{member.name}: no address to allow its key from")
    if not NAME.fullmatch(member.name):
        raise ValueError(f"{member.name!r} is not a node name")
    key = public_key(member.key, ("ssh-ed25519",))
    origin = f'from="{",".join(addresses)}",'
    return f'restrict,{origin}command="{RECEIVER} {member.name}" {key} {MARK}{member.name}'


def authorization(sharing):
    """{"want": {name: line}, "keep": [names]} for scripts/authorize.py: a line for every member
    whose key is known; a member whose key is not (yet) known keeps its line; lines of nodes no
    longer in the inventory go. The same for every node, so a file shared by all (pmxcfs)
    converges whichever node writes it."""
    want, keep = {}, []
    for member in sharing:
        try:
            want[member.name] = authorized_line(member)
        except ValueError:  # no key yet, or one its node reported this run that is none
            keep.append(member.name)  # its line, if any, stays as it is
    keep.sort()
    return {"want": want, "keep": keep}


def authorized_as_wanted(wanted, current):
    """True when `current` (our authorized_keys lines on a node) are exactly the lines of `wanted`
    (authorization()) plus the kept lines of members whose key is not known yet."""
    kept = [line for line in current if line.rsplit("@", 1)[-1] in wanted["keep"]]
    return sorted(current) == sorted([*wanted["want"].values(), *kept])


def known_hosts(peers):
    """known_hosts lines for `peers`: their host keys as read from them (no trust on first use)."""
    lines = []
    for peer in peers:
        where = peer.address if peer.port == 22 else f"[{peer.address}]:{peer.port}"
        lines += [f"{where} {key}" for key in peer.hostkeys]
    return "".join(line + "\n" for line in lines)


def removal():
    """The shell command that takes cluster-wide bans away from a node (service, key, peers, state)."""
    return (
        f"systemctl disable --now {SERVICE} 2>/dev/null; rm -f {UNIT}; systemctl daemon-reload; "
        f"rm -rf {SHARE_DIR} {LIB} {STATE_DIR}; rmdir {CONFIG_DIR} 2>/dev/null; true"
    )


UNIT_TEXT = daemon_unit(
    "sends this node's bans to its peers.",
    "share bans with the other nodes",
    DAEMON,
    "pve-fail2ban/share",
)


# jails whose failures are never counted for the cluster: recidive counts bans, which every node
# gets already (its failures shared too would count each ban once more per node)
NOT_COUNTED = {"recidive"}


def share_files(name, jails, sharing, scripts, failures=False):
    """{path: (bytes, mode)} of the share files for node `name`; `jails`: our jails running there;
    `scripts`: the folder of the node scripts (pvefail2ban/scripts); `failures`: each failure is
    sent too (fail2ban_cluster_failures)."""
    # a peer whose host keys are not known cannot be reached safely: it gets no bans (yet)
    peers = [m for m in sharing if m.name != name and m.hostkeys]
    config = {
        "node": name,
        "jails": sorted(jails),
        # the jails whose failures this node sends and counts from its peers
        **({"failures": sorted(set(jails) - NOT_COUNTED)} if failures else {}),
        "peers": [
            {"name": p.name, "address": p.address, "port": p.port, "hostkeys": p.hostkeys}
            for p in peers
        ],
        # every other member, reached or not (no host keys yet): a ban received from one of them
        # stays until its end; one from a node no member any more is lifted (share.py)
        "members": sorted(m.name for m in sharing if m.name != name),
    }
    return {
        PEERS: (json.dumps(config, indent=1, sort_keys=True).encode() + b"\n", "600"),
        KNOWN_HOSTS: (known_hosts(peers).encode(), "600"),
        DAEMON: ((scripts / "share.py").read_bytes(), "755"),
        RECEIVER: ((scripts / "receive.py").read_bytes(), "755"),
        NODELIB: ((scripts / "nodelib.py").read_bytes(), "644"),
        PEERS_BAN: ((scripts / "peers_ban.py").read_bytes(), "755"),
        UNIT: (UNIT_TEXT.encode(), "644"),
    }
