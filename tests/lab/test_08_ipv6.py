"""IPv6 end to end on the dual-stack lab: an IPv6 attacker is banned and refused, its IPv4 address
is not thereby banned, the controller's and the peers' IPv6 addresses are never banned, status
reads IPv6 bans from the firewall, and the iptables ban action enforces them too (ip6tables)."""

import json
import re
import subprocess

import pytest

from lab import attack, config
from lab.checks import banned, wait_for

A6 = config.ATTACKER_IP6


@pytest.fixture(scope="module")
def lab(converged_lab):
    return converged_lab


def node_of(lab, variant):
    return next(n for n in lab.nodes() if n.variant == variant)


def unban_all(node):
    node.sh("fail2ban-client unban --all")


@pytest.mark.parametrize("variant", ["pve8", "pve9", "legacy"])
def test_an_ipv6_attacker_is_banned_and_refused_on_22_and_8006_and_only_over_ipv6(lab, variant):
    node, attacker = node_of(lab, variant), lab.attacker()
    unban_all(node)
    assert attack.port_open(attacker, node, 22, ip=node.ip6) and attack.port_open(
        attacker, node, 8006, ip=node.ip6
    )
    attack.ssh_login(attacker, node, "root", "guess", count=3, ip=node.ip6)
    assert wait_for(lambda: banned(node, "sshd")) == [A6]
    assert wait_for(lambda: not attack.port_open(attacker, node, 22, ip=node.ip6)), (
        "IPv6 attacker reaches sshd"
    )
    codes = attack.web_login(attacker, node, "root@pam", count=3, ip=node.ip6)
    # the third failure tips the ban: its own answer may come after the ban and never arrive
    assert codes[:2] == ["401", "401"] and codes[2] in ("401", "000"), codes
    line = f"authentication failure; rhost={A6} user=root@pam msg=Authentication failure"
    assert line in node.journal("pvedaemon")  # the web login over IPv6, logged with the IPv6 rhost
    assert wait_for(lambda: banned(node, "proxmox")) == [A6]
    assert wait_for(lambda: not attack.port_open(attacker, node, 8006, ip=node.ip6))
    # the same attacker over IPv4 is not thereby banned
    assert attack.port_open(attacker, node, 22) and attack.port_open(attacker, node, 8006)
    assert config.ATTACKER_IP not in banned(node, "sshd") + banned(node, "proxmox")
    for jail in ("sshd", "proxmox"):
        assert node.sh(f"fail2ban-client set {jail} unbanip {A6}")[0] == 0
    assert wait_for(lambda: attack.port_open(attacker, node, 22, ip=node.ip6))
    assert wait_for(lambda: attack.port_open(attacker, node, 8006, ip=node.ip6))


def test_the_controllers_and_the_peers_ipv6_addresses_are_never_banned(lab, tmp_path):
    nodes = lab.nodes()
    target, peer = nodes[0], nodes[1]
    unban_all(target)
    for jail in ("sshd", "proxmox"):
        ignored = target.sh(f"fail2ban-client get {jail} ignoreip")[1]
        for address in (config.GATEWAY6, *[n.ip6 for n in nodes]):
            assert address in ignored, (jail, address)
    # a peer fails over IPv6, by SSH and on the web UI: never banned
    for _ in range(4):
        peer.sh(
            f"sshpass -p wrong ssh -n -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            f"-o PreferredAuthentications=password -o PubkeyAuthentication=no -o ConnectTimeout=5 "
            f"root@{target.ip6} true"
        )
        peer.sh(
            f"curl -gsk -o /dev/null --max-time 5 -d 'username=root@pam&password=x' "
            f"'https://[{target.ip6}]:8006/api2/json/access/ticket'"
        )
    # the controller fails over IPv6 (an unknown key, a wrong password)
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    attack.controller_fails(target.ip6, key)
    assert wait_for(lambda: "failed" in target.sh("fail2ban-client status proxmox")[1])
    assert banned(target, "sshd") == [] and banned(target, "proxmox") == []
    journal = target.journal("pvedaemon")
    assert f"rhost={peer.ip6}" in journal and f"rhost={config.GATEWAY6}" in journal
    reach = subprocess.run(
        lab.ssh_command(target, "true", ip=target.ip6), capture_output=True, timeout=30
    )
    assert reach.returncode == 0, reach.stderr


def test_status_reads_ipv6_bans_from_the_firewall(lab, tmp_path):
    node = lab.nodes()[1]
    unban_all(node)
    assert node.sh(f"fail2ban-client set proxmox banip {A6}")[0] == 0
    report = tmp_path / "status.json"
    try:
        run = lab.pyinfra("--data", f"report={report}", deploy="status.py")
        assert run.returncode == 0, run.report
        jail = json.loads(report.read_text())["nodes"][node.name]["jails"]["proxmox"]
        assert (
            jail["banned_ips"] == [A6] and jail["firewall"] == [A6] and jail["not_enforced"] == []
        )
        node.sh(f"nft delete element inet f2b-table addr6-set-proxmox '{{ {A6} }}'", check=True)
        run = lab.pyinfra(deploy="status.py")
        assert run.returncode == 1
        assert (
            f"{node.name}: proxmox lists {A6} as banned but the firewall does not enforce it"
            in run.text
        )
    finally:
        unban_all(node)


def test_the_iptables_ban_action_enforces_ipv6_bans_with_ip6tables(lab):
    node, attacker = node_of(lab, "pve9"), lab.attacker()
    run = lab.pyinfra("--limit", node.name, "--data", "fail2ban_banaction=iptables")
    try:
        assert run.returncode == 0, run.report
        assert "iptables-multiport" in node.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
        unban_all(node)
        attack.web_login(attacker, node, "root@pam", count=3, ip=node.ip6)
        assert wait_for(lambda: banned(node, "proxmox")) == [A6]
        assert wait_for(lambda: not attack.port_open(attacker, node, 8006, ip=node.ip6))
        assert re.search(
            rf"-A f2b-proxmox -s {re.escape(A6)}/128 .*-j REJECT",
            node.sh("ip6tables -S f2b-proxmox")[1],
        )
        assert attack.port_open(attacker, node, 8006)  # IPv4 untouched
        unban_all(node)
        assert wait_for(lambda: attack.port_open(attacker, node, 8006, ip=node.ip6))
    finally:
        back = lab.pyinfra("--limit", node.name)
    assert back.returncode == 0, back.report
