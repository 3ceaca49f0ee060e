"""Jails that cannot go toothless: a jail that runs and counts but whose firewall rules are not in
place must never be reported as protecting the node."""

import re

import pytest

from lab import attack, config
from lab.checks import banned, verified_nodes, wait_for


@pytest.fixture(scope="module")
def lab(lab_control):
    """A fresh lab whose pve8 node has no /etc/services (as a bare Debian 11 node was seen)."""
    lab_control.up(data=config.PER_NODE_COUNT)
    bare = lab_control.nodes()[0]
    bare.sh("mv /etc/services /etc/services.pvelab-off", check=True)
    return lab_control


def test_a_node_without_etc_services_is_protected(lab):
    bare, attacker = lab.nodes()[0], lab.attacker()
    assert bare.sh("getent services https")[0] != 0  # the name cannot be resolved there
    run = lab.pyinfra()
    assert run.returncode == 0, run.report
    assert "port      = 443,80,8006" in bare.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
    codes = attack.web_login(attacker, bare, "root@pam", count=3)
    # the third failure tips the ban: its own answer may come after the ban and never arrive
    assert codes[:2] == ["401", "401"] and codes[2] in ("401", "000"), codes
    assert wait_for(lambda: banned(bare, "proxmox")) == [config.ATTACKER_IP]
    assert wait_for(lambda: not attack.port_open(attacker, bare, 8006)), "banned but not refused"
    bare.sh(f"fail2ban-client set proxmox unbanip {config.ATTACKER_IP}")
    assert wait_for(lambda: attack.port_open(attacker, bare, 8006))


def test_a_jail_whose_action_failed_to_start_fails_the_node_with_fail2bans_words(lab):
    """An admin's action override that fails at jail start: fail2ban runs, its jails count, nothing
    can be banned. The run fails that node and shows fail2ban's own error line; the others verify."""
    node = lab.nodes()[1]
    node.sh(
        "printf '[Definition]\\nactionstart = false\\n' > /etc/fail2ban/action.d/nftables.local "
        "&& systemctl restart fail2ban",
        check=True,
    )
    try:
        assert wait_for(lambda: "proxmox" in node.sh("fail2ban-client status")[1])
        run = lab.pyinfra()
        assert run.returncode != 0
        assert re.search(
            rf"\[{node.name}\] NOT PROTECTED: jail sshd runs but its firewall rules are not in "
            r"place, so its bans would not be enforced: .*ERROR\s+Failed to start jail 'sshd' "
            r"action 'nftables-multiport'",
            run.text,
        ), run.report
        others = [n for n in lab.nodes() if n.name != node.name]
        assert verified_nodes(run.text, others) == [n.name for n in others]
    finally:
        node.sh("rm -f /etc/fail2ban/action.d/nftables.local && systemctl restart fail2ban")
    assert wait_for(lambda: "proxmox" in node.sh("fail2ban-client status")[1])
    assert lab.pyinfra().returncode == 0


def test_firewall_rules_removed_under_a_running_fail2ban_are_reported(lab):
    node = lab.nodes()[2]
    node.sh("nft delete table inet f2b-table", check=True)
    try:
        run = lab.pyinfra()
        assert run.returncode != 0
        assert (
            f"[{node.name}] NOT PROTECTED: jail sshd runs but its firewall rules are not in place"
            in run.text
        )
        assert "no rule for it in the nft ruleset" in run.text
    finally:
        node.sh("systemctl restart fail2ban")
    assert wait_for(lambda: "proxmox" in node.sh("fail2ban-client status")[1])
    assert lab.pyinfra().returncode == 0
