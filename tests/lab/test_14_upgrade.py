"""PVE 8 -> 9 in place, under the deploy: a protected Debian 12 node (pve8, pvedaemon simulated)
with cluster-wide bans and an active ban is upgraded the way Proxmox's upgrade guide does it
(sources switched to trixie, `apt full-upgrade`, fail2ban 1.0.2 -> 1.1.0, our files left in place),
then rebooted, then converged by one deploy run. At each step: what protects it (docs/upgrading.md).

pve1 ("upgrade": a pve8 node with Debian 13's packages in apt's cache), pve2 (pve8), pve3 (pve9);
metrics on everywhere (node_exporter and the events daemon go through the upgrade too)."""

import re
import time
import urllib.request

import pytest

from lab import attack, config
from lab.checks import banned, ops_with_changes, verified_nodes, wait_for

A, A6 = config.ATTACKER_IP, config.ATTACKER_IP6
PEER_BAN = "192.0.2.55"  # a documentation address a peer bans by hand
# Proxmox's guide (pve.proxmox.com/wiki/Upgrade_from_8_to_9): sources to trixie, then a full
# upgrade; apt keeps the files an admin changed (what answering "keep" to each prompt does)
UPGRADE = (
    "set -e; export DEBIAN_FRONTEND=noninteractive; "
    "sed -i 's/bookworm/trixie/g' /etc/apt/sources.list; apt-get update -q; "
    "apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
    "full-upgrade"
)


@pytest.fixture(scope="module")
def lab(lab_control, tmp_path_factory):
    nodes = lab_control.up(variants=["upgrade", "pve8", "pve9"])
    inventory = tmp_path_factory.mktemp("upgrade") / "inventory.py"
    data = {n.name: {"fail2ban_metrics": "on"} for n in nodes}
    lab_control.write_inventory(nodes, data, path=inventory)
    lab_control.upgrade_inventory = inventory
    run = lab_control.pyinfra(inventory=inventory)
    assert run.returncode == 0, run.report
    return lab_control


def pyinfra(lab, *args, deploy="deploy.py"):
    run = lab.pyinfra(*args, deploy=deploy, inventory=lab.upgrade_inventory)
    assert run.returncode == 0, run.report
    return run


def metrics(node):
    with urllib.request.urlopen(f"http://{node.ip}:9100/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return dict(re.findall(r"^(f2b_\S+) (\S+)$", text, re.M))


def protects(lab, node, peers):
    """What an admin checks on `node`: the ban made before the upgrade is held and enforced; a new
    attacker (over IPv6) is banned by SSH and on the web UI, here and on every peer; a peer's ban
    reaches it; its metrics say so. Lifted again with unban.py across the mixed cluster."""
    attacker = lab.attacker()
    # after a restart or a reboot fail2ban restores its bans from its database: waited for
    assert wait_for(lambda: A in banned(node, "proxmox")), node.journal("fail2ban")[-2000:]
    assert wait_for(lambda: not attack.port_open(attacker, node, 8006))
    attack.ssh_login(attacker, node, "root", "guess", count=3, ip=node.ip6)
    assert wait_for(lambda: A6 in banned(node, "sshd")), node.journal("fail2ban")
    attack.web_login(attacker, node, "root@pam", count=3, ip=node.ip6)
    assert wait_for(lambda: A6 in banned(node, "proxmox"))
    assert not attack.port_open(attacker, node, 22, ip=node.ip6)
    for peer in peers:
        assert wait_for(lambda p=peer: A6 in banned(p, "sshd") and A6 in banned(p, "proxmox"))
    peers[0].sh(f"fail2ban-client set sshd banip {PEER_BAN}", check=True)
    assert wait_for(lambda: PEER_BAN in banned(node, "sshd"))
    # fail2ban logs a ban (which the events daemon writes at once) before its action adds the
    # firewall rule: enforced within a refresh (60 s; Fail2banBanNotEnforced waits 1 min too)
    enforced = 'f2b_jail_banned_enforced{jail="proxmox"}'
    found = wait_for(
        lambda: (m := metrics(node)).get("f2b_up") == "1" and m.get(enforced) == "1" and m,
        timeout=70,
    )
    assert found, metrics(node)
    pyinfra(lab, "--data", f"ip={A6},{PEER_BAN}", deploy="unban.py")
    for each in (node, *peers):
        assert A6 not in banned(each, "sshd") + banned(each, "proxmox")
        assert PEER_BAN not in banned(each, "sshd")


def fail2ban_down_seconds(node):
    """How long fail2ban's server was down while apt upgraded it (its unit's stop to its start)."""
    text = node.sh("journalctl -q -o short-unix --no-pager -u fail2ban")[1]
    stops = [float(t) for t in re.findall(r"^(\d+\.\d+) .*Stopping fail2ban", text, re.M)]
    starts = [float(t) for t in re.findall(r"^(\d+\.\d+) .*Started fail2ban", text, re.M)]
    assert stops and starts[-1] > stops[-1], text[-2000:]
    return starts[-1] - stops[-1]


def test_a_node_stays_protected_through_the_upgrade_and_one_run_converges_it(lab):
    node, *peers = lab.nodes()
    attacker = lab.attacker()
    # an active ban, made on the node before its upgrade, held by every node
    attack.web_login(attacker, node, "root@pam", count=3)
    assert wait_for(lambda: all(A in banned(n, "proxmox") for n in (node, *peers)))

    started = time.monotonic()
    code, out = node.sh(UPGRADE, timeout=1500)
    assert code == 0, out[-3000:]
    print(f"upgrade: {time.monotonic() - started:.0f} s", end="; ")
    assert node.sh("cat /etc/debian_version")[1].startswith("13.")
    assert node.sh("fail2ban-client version")[1].strip().startswith("1.1.")
    # apt restarted fail2ban once, into 1.1.0 with our files: down for under a second, its bans
    # restored from its database
    down = fail2ban_down_seconds(node)  # a figure, printed: load decides it here (under 2 s quiet)
    print(f"fail2ban down for {down:.2f} s")
    # immediately after the upgrade, before the reboot and before any deploy run
    protects(lab, node, peers)
    assert node.sh("systemctl is-active pve-fail2ban-share pve-fail2ban-events")[1].split() == [
        "active",
        "active",
    ]

    node = lab.reboot(node)  # the guide's reboot: every daemon now on Debian 13's Python
    assert (
        "python3.13"
        in node.sh("readlink -f /proc/$(systemctl show -p MainPID --value pve-fail2ban-share)/exe")[
            1
        ]
    )
    protects(lab, node, peers)

    first = pyinfra(lab)
    assert verified_nodes(first.text, lab.nodes()) == ["pve1", "pve2", "pve3"], first.report
    assert re.search(r"\[pve1\]\s+fail2ban 1\.1\.", first.text)
    assert wait_for(lambda: A in banned(node, "proxmox"))
    assert wait_for(lambda: not attack.port_open(attacker, node, 8006))
    second = pyinfra(lab)
    assert ops_with_changes(second.text) == []
    protects(lab, node, peers)
    status = pyinfra(lab, deploy="status.py")
    for name in ("pve1", "pve2", "pve3"):
        assert re.search(rf"^{name}\s+proxmox\s+up\s", status.stdout, re.M), status.stdout
