"""The lab's fixed names and numbers, in one place."""

import os
from pathlib import Path

from pvefail2ban.products import PRODUCTS as PRODUCT_LIST

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = Path(__file__).resolve().parent / "context"
# Per-checkout state: the lab's SSH key, known_hosts and generated inventory (git-ignored).
# Labs of different namespaces run side by side (`pytest -n`: one per test worker, gw0, gw1, ...),
# each with its own containers, network, addresses and state; "" is the default lab.
NAMESPACE = os.environ.get("PVELAB_NS", "")
STATE_DIR = Path(os.environ.get("PVELAB_STATE_DIR", ROOT / ".lab" / NAMESPACE))

LABEL = "pvelab"  # every container, network and image the lab creates carries this label
NS_LABEL, NS_VALUE = "pvelab.ns", NAMESPACE or "default"  # ... and its namespace's
IMAGES = "pvelab"  # the images are shared by every namespace: pvelab/<name>:latest
PREFIX = "pvelab" + (f"-{NAMESPACE}" if NAMESPACE else "")  # containers and network names


def network_of(namespace):
    """(name, IPv4 /24, IPv6 /64) of a namespace's lab network: 10.213.77.0/24 for the default
    lab, .78 for gw0, .79 for gw1, ... (PVELAB_SUBNET / PVELAB_SUBNET6 move the default lab)."""
    number = int("".join(c for c in namespace if c.isdigit()) or 0) + 1 if namespace else 0
    prefix = "pvelab" + (f"-{namespace}" if namespace else "")
    subnet, subnet6 = f"10.213.{77 + number}.0/24", f"fd42:7ab:{77 + number}::/64"
    if not namespace:
        subnet = os.environ.get("PVELAB_SUBNET", subnet)
        subnet6 = os.environ.get("PVELAB_SUBNET6", subnet6)
    return f"{prefix}-net", subnet, subnet6


NETWORK, SUBNET, SUBNET6 = network_of(NAMESPACE)
GATEWAY = SUBNET.rsplit(".", 1)[0] + ".1"  # the controller (this machine) as the nodes see it
NODE_IP_BASE = 11  # node k gets .(10+k)
ATTACKER_IP = SUBNET.rsplit(".", 1)[0] + ".200"
# IPv6 beside it (a ULA /64): node k at ::1k (hex), the attacker at ::200, the controller at ::1.
GATEWAY6 = SUBNET6.split("/")[0] + "1"
ATTACKER_IP6 = SUBNET6.split("/")[0] + "200"
# Seconds the simulated PVE waits before it answers a failed login (PVE: 3). The test suite sets
# a short one (tests/conftest.py); one test checks the real delay.
FAIL_DELAY = float(os.environ.get("PVELAB_FAIL_DELAY", "3"))

VARIANTS = {
    # variant: (Debian release, description)
    "pve8": ("bookworm", "Debian 12, journald only, like a fresh PVE 8 node"),
    "pve9": ("trixie", "Debian 13, journald only, like a fresh PVE 9 node"),
    "legacy": ("bookworm", "Debian 12 + rsyslog writing auth.log/daemon.log, like PVE 7"),
    "pbs": ("bookworm", "Debian 12, journald only, Proxmox Backup Server (8007), no PVE"),
    "pmg": ("bookworm", "Debian 12, journald only, Proxmox Mail Gateway (8006), no PVE"),
    "pvepbs": ("bookworm", "Debian 12, journald only, PVE 8 and PBS on the same host"),
    "pdm": ("trixie", "Debian 13, journald only, Proxmox Datacenter Manager (8443), no PVE"),
    "mon": (
        "bookworm",
        "Debian 12, no Proxmox product: an admin's monitoring host (monitoring.py)",
    ),
    "upgrade": ("bookworm", "a pve8 node with Debian 13's packages in apt's cache, to upgrade"),
    "proxy": ("bookworm", "a pve8 node with nginx, HAProxy and Caddy in apt's cache, to front it"),
}
# The Proxmox products each variant runs (their simulated daemons and units), and those units.
PRODUCTS = {
    "pve8": "pve",
    "pve9": "pve",
    "legacy": "pve",
    "pbs": "pbs",
    "pmg": "pmg",
    "pvepbs": "pve pbs",
    "pdm": "pdm",
    "mon": "",
    "upgrade": "pve",
    "proxy": "pve",
}
# the units of each product, as the deploy knows them (pvefail2ban/products.py)
UNITS = {p.key: [u.removesuffix(".service") for u in p.units] for p in PRODUCT_LIST}
# The release the simulated PBS stands for, in its Debian changelog (what the deploy reads): the
# simulator's behaviour before proxmox-rest-server 1.0.5 (a client's Forwarded header chooses the
# logged address) comes with a release dated before the fix; the default, with one after it.
PBS_RELEASES = {
    "old": ("3.2.4-1", "Mon, 27 May 2024 15:01:02 +0200"),
    "fixed": ("4.1.99~lab-1", "Wed, 01 Jul 2026 12:00:00 +0200"),
}
PDM_RELEASE = ("1.1.99~lab", "Wed, 01 Jul 2026 12:00:00 +0200")  # a native package: no revision
DEFAULT_VARIANTS = ("pve8", "pve9", "legacy")
MAX_NODES = 30

# Packages of every node image (and the attacker): systemd as PID 1, sshd, both firewall tools
# (PVE ships both), python3 for the pvedaemon simulator, clients for the attacker. No fail2ban.
BASE_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "openssh-client",
    "iptables",
    "nftables",
    "python3",
    "iproute2",
    "procps",
    "ca-certificates",
    "openssl",
    "curl",
    "sshpass",
    "less",
]
MIRROR = os.environ.get("PVELAB_MIRROR", "http://deb.debian.org/debian")

# Lab user of the simulated PVE API.
PVE_USER = "root@pam"
PVE_PASSWORD = "lab-secret"

# The settings of the labs whose tests measure each node's own count (the third failure there tips
# the ban): with one count for the cluster, the attacker's failures of one test would count on every
# node for findtime and make a later test's first failure its third. Cluster-wide counting has a
# lab of its own (tests/lab/test_16_cluster_failures.py); the other labs keep the defaults.
PER_NODE_COUNT = {"fail2ban_cluster_failures": False}
