"""The lab itself: every variant boots like a PVE node, and pvedaemon writes what PVE writes."""

import json
import re
import subprocess
import uuid

import pytest

from lab import attack, config

ATTACKER = f"::ffff:{config.ATTACKER_IP}"


def by_variant(nodes, variant):
    return next(n for n in nodes if n.variant == variant)


def token():
    return uuid.uuid4().hex[:8]


def pvedaemon_lines(node, marker):
    """pvedaemon's journal lines (short format) containing `marker`."""
    return [line for line in node.journal("pvedaemon").splitlines() if marker in line]


def test_default_lab_is_one_node_of_each_variant(nodes):
    assert [n.variant for n in nodes] == ["pve8", "pve9", "legacy"]
    assert [n.name for n in nodes] == ["pve1", "pve2", "pve3"]


@pytest.mark.parametrize(
    "variant,release,rsyslog",
    [("pve8", "12.", False), ("pve9", "13.", False), ("legacy", "12.", True)],
)
def test_variant_boots_like_its_pve_release(nodes, variant, release, rsyslog):
    node = by_variant(nodes, variant)
    assert node.sh("systemctl is-system-running")[1].strip() == "running"
    assert node.sh("cat /etc/debian_version")[1].startswith(release)
    assert node.sh("ps -p 1 -o comm=")[1].strip() == "systemd"
    for tool in ("iptables", "nft", "python3", "sshd"):
        assert node.sh(f"command -v {tool}")[0] == 0, tool
    assert node.sh("dpkg -s fail2ban")[0] != 0, "fail2ban must not be preinstalled"
    assert (node.sh("dpkg -s rsyslog")[0] == 0) is rsyslog
    assert (node.sh("test -e /var/log/daemon.log")[0] == 0) is rsyslog


def test_controller_reaches_every_node_by_key_with_checked_host_keys(lab, nodes):
    for node in nodes:
        out = subprocess.run(
            lab.ssh_command(node, "echo", "$SSH_CLIENT"), capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == config.GATEWAY


def test_nodes_have_their_own_host_keys(nodes):
    keys = {node.sh("cat /etc/ssh/ssh_host_ed25519_key.pub")[1] for node in nodes}
    assert len(keys) == len(nodes)


def test_attacker_reaches_every_node(attacker, nodes):
    for node in nodes:
        assert attack.port_open(attacker, node, 22), node.name
        assert attack.port_open(attacker, node, 8006), node.name


@pytest.mark.parametrize("variant", ["pve8", "pve9", "legacy"])
def test_pvedaemon_logs_what_pve_logs(nodes, attacker, variant):
    node = by_variant(nodes, variant)
    unknown, pve_user = f"nobody{token()}@pve", "admin@pve"
    assert attack.web_login(attacker, node, "root@pam", "wrong") == ["401"]
    assert attack.web_login(attacker, node, unknown) == ["401"]
    assert attack.web_login(attacker, node, pve_user, "wrong") == ["401"]
    assert attack.web_login(attacker, node, "root@pam", config.PVE_PASSWORD) == ["200"]
    assert attack.openid_login(attacker, node) == "401"

    pid = r"pvedaemon\[\d+\]: "
    expected = [
        pid
        + re.escape(
            f"authentication failure; rhost={ATTACKER} user=root@pam msg=Authentication failure"
        ),
        pid
        + re.escape(
            f"authentication failure; rhost={ATTACKER} user={unknown} msg=no such user ('{unknown}')"
        ),
        pid
        + re.escape(
            f"authentication failure; rhost={ATTACKER} user={pve_user} msg=invalid credentials"
        ),
        pid + re.escape("<root@pam> successful auth for user 'root@pam'"),
        pid + re.escape(f"openid authentication failure; rhost={ATTACKER} msg="),
        r"IPCC\.xs\[\d+\]: pam_unix\(proxmox-ve-auth:auth\): authentication failure; .*"
        + re.escape(f"rhost={ATTACKER}"),
    ]
    journal = node.journal("pvedaemon")
    for pattern in expected:
        assert re.search(pattern, journal), f"{node.name}: no journal line like {pattern}"

    # The journal knows it as the pvedaemon unit, ident pvedaemon, facility daemon, priority err.
    _, out = node.sh(
        "journalctl -o json --no-pager _SYSTEMD_UNIT=pvedaemon.service SYSLOG_IDENTIFIER=pvedaemon"
    )
    records = [json.loads(line) for line in out.splitlines() if unknown in line]
    assert records and records[0]["SYSLOG_FACILITY"] == "3" and records[0]["PRIORITY"] == "3"

    if variant == "legacy":
        _, daemon_log = node.sh("cat /var/log/daemon.log")
        line = next(entry for entry in daemon_log.splitlines() if unknown in entry)
        assert re.match(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d pve\d+ " + pid, line), line


def test_hostile_user_name_is_logged_exactly_as_sent(nodes, attacker):
    node = by_variant(nodes, "pve8")
    hostile = f"x{token()} rhost=192.0.2.66 user=root@pam"
    assert attack.web_login(attacker, node, hostile) == ["401"]
    lines = pvedaemon_lines(node, hostile)
    assert lines and lines[0].endswith(
        f"rhost={ATTACKER} user={hostile} msg=no such user ('{hostile}')"
    )


def test_user_names_over_64_characters_are_refused_unlogged(nodes, attacker):
    node = by_variant(nodes, "pve9")
    long_name = "y" * 65
    assert attack.web_login(attacker, node, long_name) == ["400"]
    assert pvedaemon_lines(node, long_name) == []


def test_leftovers_of_a_crashed_run_are_cleaned_and_nothing_else_is_touched(lab):
    """Runs last here: it re-creates the lab. A leftover lab container goes; another container made
    from a lab image, not by the lab, stays."""
    image = lab.attacker().container.image
    stray = lab.client.containers.run(
        image,
        name="pvelab-stray",
        command="sleep 600",
        detach=True,
        labels={config.LABEL: "1", "pvelab.role": "node"},
    )
    ours_not = lab.client.containers.run(
        image, name="not-the-labs", command="sleep 600", detach=True
    )
    try:
        nodes = lab.up()
        names = {c.name for c in lab.client.containers.list(all=True)}
        assert "pvelab-stray" not in names and "not-the-labs" in names
        assert [n.variant for n in nodes] == ["pve8", "pve9", "legacy"]
    finally:
        ours_not.remove(force=True)
        if "pvelab-stray" in {c.name for c in lab.client.containers.list(all=True)}:
            stray.remove(force=True)
