"""What a node says is hostile input: each value it reports is parsed here into one canonical value
(an address, a port, an SSH key, a name, a path) or refused with ValueError naming it. Nothing a
node reports reaches another node, a command or a file of ours without passing through here.

The address rules are the node scripts' own (scripts/nodelib.py): one definition on both sides.
"""

import base64
import binascii
import ipaddress
import re

from .scripts.nodelib import (
    ADDRESS_TEXT,
    NAME,
    bannable_address,
    canonical_address,
    host_address,
    shown,
)

__all__ = [
    "NAME",
    "bannable_address",
    "canonical_address",
    "host_address",
    "shown",
    "canonical_network",
    "public_key",
    "share_key",
    "port",
    "safe_path",
    "printable",
    "host_name",
    "peer_record",
]

# sshd's host key types and the share key's (always ed25519, made by the deploy)
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
BASE64 = re.compile(r"[A-Za-z0-9+/]{16,16384}={0,2}")
PATH = re.compile(r"/[A-Za-z0-9._/+-]{0,254}")
# a host name as ssh and /etc/hosts take it (underscores too), never starting with "-"
HOSTNAME = re.compile(r"(?![-.])[A-Za-z0-9_.-]{1,253}")
MAX_ADDRESSES = 256  # global addresses one node may report (bridges, VLANs, IPv6 prefixes)


def canonical_network(text):
    """An address or a network ("addr/len") -> its canonical text (a network's host bits cleared,
    IPv4-mapped folded to IPv4, no scope ID); ValueError naming the value otherwise."""
    if not isinstance(text, str) or text.count("/") > 1:
        raise ValueError(f"{shown(text)} is not an IP address or network")
    address, _, length = text.partition("/")
    if not length:
        return canonical_address(text)
    if not (ADDRESS_TEXT.fullmatch(address) and length.isascii() and length.isdigit()):
        raise ValueError(f"{shown(text)} is not an IP address or network")
    network = ipaddress.ip_network(f"{ipaddress.ip_address(address)}/{int(length)}", strict=False)
    mapped = ipaddress.ip_network("::ffff:0:0/96")
    if network.version == 6 and network.prefixlen >= 96 and network.subnet_of(mapped):
        v4 = ipaddress.ip_address(int(network.network_address) & 0xFFFFFFFF)
        network = ipaddress.ip_network(f"{v4}/{network.prefixlen - 96}")
    return str(network)


def public_key(text, types=KEY_TYPES):
    """ "<type> <base64>" of an SSH public key whose blob names that type; ValueError otherwise."""
    parts = text.split(" ") if isinstance(text, str) else []
    if len(parts) == 2 and parts[0] in types and BASE64.fullmatch(parts[1]):
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            blob = b""
        length = int.from_bytes(blob[:4], "big")
        if blob[4 : 4 + length] == parts[0].encode() and len(blob) > 4 + length:
            return f"{parts[0]} {parts[1]}"
    raise ValueError(f"{shown(text)} is not an SSH public key of type {' or '.join(types)}")


def share_key(text):
    """A node's share public key: always ed25519, made by the deploy."""
    return public_key(text, ("ssh-ed25519",))


def port(value):
    """A TCP port 1-65535 (int, or its decimal text) -> int; ValueError otherwise."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str) and text.isascii() and text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    raise ValueError(f"{shown(value)} is not a port (1-65535)")


def safe_path(text):
    """An absolute path of plain characters, without `..`: ValueError otherwise."""
    if isinstance(text, str) and PATH.fullmatch(text) and ".." not in text.split("/"):
        return text
    raise ValueError(f"{shown(text)} is not a plain absolute path")


def printable(text, limit=200):
    """`text` with everything but printable ASCII replaced by '?', cut to `limit`: for values a
    node reports that are only shown (a release, a state), never used."""
    if not isinstance(text, str):
        text = str(text)
    return "".join(c if " " <= c <= "~" else "?" for c in text[:limit])


def host_name(text):
    """A name peers can reach a node by: an address (canonical) or a DNS host name."""
    try:
        return canonical_address(text)
    except ValueError:
        pass
    if isinstance(text, str) and HOSTNAME.fullmatch(text):
        return text
    raise ValueError(f"{shown(text)} is neither an IP address nor a host name")


def peer_record(record):
    """A peer as a node's peers.json lists it -> {name, address, port, hostkeys}, every value
    parsed; ValueError otherwise."""
    if not isinstance(record, dict):
        raise ValueError(f"{shown(record)} is not a peer record")
    name = record.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"peer name {shown(name)} is not a node name")
    keys = record.get("hostkeys")
    if not isinstance(keys, list) or not 0 < len(keys) <= 16:
        raise ValueError(f"peer {name}: {shown(keys)} is not a list of host keys")
    return {
        "name": name,
        "address": host_name(record.get("address")),
        "port": port(record.get("port")),
        "hostkeys": [public_key(key) for key in keys],
    }
