"""Day-2 operations on the lab: status, unban, ban, sync, remove (each a pyinfra deploy file)."""

import json
import re

import pytest

from lab import attack, config
from lab.checks import banned, wait_for

BAN_PROBE = "192.0.2.50"


@pytest.fixture(scope="module")
def lab(converged_lab):
    return converged_lab


@pytest.fixture
def no_sharing(lab):
    """sync.py is the on-demand tool where bans are not shared at once: test it that way."""
    run = lab.pyinfra("--data", "fail2ban_cluster_bans=False")
    assert run.returncode == 0, run.report
    assert all(
        n.sh("systemctl is-active pve-fail2ban-share")[1].strip() != "active" for n in lab.nodes()
    )
    yield
    assert lab.pyinfra().returncode == 0


def snapshot(nodes):
    return [
        (
            n.sh("systemctl show -p MainPID --value fail2ban")[1],
            n.sh("find /etc/fail2ban -type f | sort | xargs sha1sum")[1],
            sorted(banned(n, "sshd") + banned(n, "proxmox")),
        )
        for n in nodes
    ]


def ban_attacker_on(node, attacker):
    attack.web_login(attacker, node, "root@pam", count=3)
    assert wait_for(lambda: banned(node, "proxmox")) == [config.ATTACKER_IP]


def table_row(text, node, jail):
    match = re.search(
        rf"^{node}\s+{jail}\s+(\S+)\s+(\d+)\s+(\d+)\s+\d+\s+(\d+)\s+(\d+)\s*(.*)$", text, re.M
    )  # state, failed, total failed, (from peers), banned, total banned, addresses
    assert match, f"no row for {node}/{jail}"
    return match.groups()


@pytest.mark.slice
def test_status_matches_a_provoked_ban_and_changes_nothing(lab, tmp_path):
    nodes, attacker = lab.nodes(), lab.attacker()
    ban_attacker_on(nodes[0], attacker)
    before = snapshot(nodes)
    report = tmp_path / "status.json"
    run = lab.pyinfra("--data", f"report={report}", deploy="status.py")
    assert run.returncode == 0, run.report
    state, failed, total_failed, now_banned, total_banned, ips = table_row(
        run.text, nodes[0].name, "proxmox"
    )
    assert (state, now_banned, ips.strip()) == ("up", "1", config.ATTACKER_IP)
    assert int(total_failed) >= 3 and int(total_banned) >= 1
    data = json.loads(report.read_text())
    jail = data["nodes"][nodes[0].name]["jails"]["proxmox"]
    assert jail["banned_ips"] == [config.ATTACKER_IP] and jail["firewall"] == [config.ATTACKER_IP]
    assert (str(jail["banned"]), str(jail["total_failed"])) == (now_banned, total_failed)
    assert any("Ban " + config.ATTACKER_IP in e for e in data["nodes"][nodes[0].name]["events"])
    assert data["problems"] == []
    assert snapshot(nodes) == before, "status changed a node"


def test_status_flags_a_ban_the_firewall_does_not_enforce_and_a_stopped_node(lab):
    nodes = lab.nodes()
    node = nodes[0]
    node.sh(f"nft delete element inet f2b-table addr-set-proxmox '{{ {config.ATTACKER_IP} }}'")
    run = lab.pyinfra(deploy="status.py")
    assert run.returncode != 0
    assert (
        f"{node.name}: proxmox lists {config.ATTACKER_IP} as banned but the firewall does not enforce it"
        in run.text
    )
    assert "NOT ENFORCED" in run.text
    nodes[1].sh("systemctl stop fail2ban")
    try:
        run = lab.pyinfra(deploy="status.py")
        assert run.returncode != 0 and f"{nodes[1].name}: fail2ban is not running" in run.text
    finally:
        nodes[1].sh("systemctl start fail2ban")
        node.sh(f"fail2ban-client set proxmox unbanip {config.ATTACKER_IP}")


def test_status_never_hides_a_node_that_cannot_be_reached(lab, tmp_path):
    nodes = lab.nodes()
    down = nodes[2]
    report = tmp_path / "status.json"
    down.container.stop(timeout=5)
    try:
        run = lab.pyinfra("--data", f"report={report}", deploy="status.py")
    finally:
        down.container.start()
    lab.wait_ready(down)
    # its fail2ban back too (with its bans), before the next test attacks it
    assert wait_for(lambda: down.sh("fail2ban-client ping")[0] == 0)
    assert run.returncode == 1, run.report
    assert re.search(
        rf"^{down.name}\s+-\s+UNREACHABLE\s+cannot connect: .*(timed out|refused|route)",
        run.text,
        re.M,
    ), run.report
    data = json.loads(report.read_text())
    assert sorted(data["nodes"]) == sorted(n.name for n in nodes)
    assert data["nodes"][down.name]["error"].startswith("cannot connect")
    assert data["problems"] == [
        f"{down.name}: unreachable or unreadable: {data['nodes'][down.name]['error']}"
    ]
    assert all(data["nodes"][n.name]["running"] for n in nodes[:2])


def test_status_never_asks_even_without_yes(lab):
    """No terminal (stdin is /dev/null, as from cron) and no -y: status reports and exits 0."""
    run = lab.pyinfra(deploy="status.py", yes=False)
    assert run.returncode == 0, run.report
    assert "Press enter" not in run.text and "Detected changes" not in run.text
    assert all(re.search(rf"^{n.name}\s+sshd\s+up", run.text, re.M) for n in lab.nodes())


def test_unban_clears_every_node_and_a_second_run_is_a_no_op(lab):
    nodes, attacker = lab.nodes(), lab.attacker()
    for node in nodes:
        ban_attacker_on(node, attacker)
    run = lab.pyinfra("--data", f"ip={config.ATTACKER_IP}", deploy="unban.py")
    assert run.returncode == 0, run.report
    assert f"{config.ATTACKER_IP} unbanned from jail proxmox (it was banned here)" in run.text
    for node in nodes:
        assert banned(node, "proxmox") == [], "\n".join(
            n.name
            + ": "
            + n.sh(
                "tail -n 8 /var/log/fail2ban.log; journalctl -o short-precise --no-pager "
                "-u pve-fail2ban-share -t pve-fail2ban-receive | tail -n 12; "
                "cat /var/lib/pve-fail2ban/share/received /var/lib/pve-fail2ban/share/outbox"
            )[1]
            for n in nodes
        )
        assert wait_for(lambda node=node: attack.port_open(attacker, node, 8006))
    again = lab.pyinfra("--data", f"ip={config.ATTACKER_IP}", deploy="unban.py")
    assert again.returncode == 0 and "unbanned from" not in again.text.split("--> Beginning")[1]


def test_unban_of_several_addresses_banned_in_other_jails_per_node(lab):
    """Several addresses at once, banned in two jails on one node and in one on another: the
    nodes need different operations (a queue `forget`, then one lift per jail, per address), in
    one run that pyinfra must be able to order (it refused such a run once: "Cycle detected in
    operation ordering DAG")."""
    nodes = lab.nodes()
    first, second = "198.51.100.201", "198.51.100.202"
    for jail in ("sshd", "proxmox"):
        nodes[0].sh(f"fail2ban-client set {jail} banip {first}", check=True)
    nodes[0].sh(f"fail2ban-client set sshd banip {second}", check=True)
    for node in nodes:  # shared: the same bans everywhere, then one lifted on one node only
        assert wait_for(
            lambda n=node: first in banned(n, "proxmox") and second in banned(n, "sshd")
        )
    nodes[1].sh(f"fail2ban-client set proxmox unbanip {first}", check=True)
    run = lab.pyinfra("--data", f"ip={first},{second}", deploy="unban.py")
    assert run.returncode == 0, run.report
    for node in nodes:
        assert not {first, second} & set(banned(node, "sshd") + banned(node, "proxmox"))


def test_sync_spreads_a_ban_to_every_node_but_never_an_ignored_address(lab, no_sharing):
    nodes, attacker = lab.nodes(), lab.attacker()
    ban_attacker_on(nodes[0], attacker)
    peer = nodes[1].ip
    assert nodes[0].sh(f"fail2ban-client set sshd banip {peer}")[0] == 0  # by hand, past ignoreip
    try:
        run = lab.pyinfra(deploy="sync.py")
        assert run.returncode == 0, run.report
        for node in nodes[1:]:
            assert banned(node, "proxmox") == [config.ATTACKER_IP]
            assert wait_for(lambda node=node: not attack.port_open(attacker, node, 8006))
            assert peer not in banned(node, "sshd"), "an ignored address was spread"
        again = lab.pyinfra(deploy="sync.py")
        assert (
            again.returncode == 0 and "banned in jail" not in again.text.split("--> Beginning")[1]
        )
    finally:
        nodes[0].sh(f"fail2ban-client set sshd unbanip {peer}")
        lab.pyinfra("--data", f"ip={config.ATTACKER_IP}", deploy="unban.py")


def test_sync_reads_each_node_once_and_writes_only_within_the_limit(lab, no_sharing):
    nodes = lab.nodes()
    assert nodes[0].sh(f"fail2ban-client set sshd banip {BAN_PROBE}")[0] == 0
    try:
        run = lab.pyinfra("-vv", "--limit", nodes[1].name, deploy="sync.py")
        assert run.returncode == 0, run.report
        # the state command, printed once per execution with -vv: one read per node of the inventory
        assert run.text.count('f"addr6-set-{jail}"') == len(nodes), run.report
        assert BAN_PROBE in banned(nodes[1], "sshd")
        assert BAN_PROBE not in banned(nodes[2], "sshd"), "a node outside --limit was written to"
        full = lab.pyinfra("-vv", deploy="sync.py")
        assert full.returncode == 0 and full.text.count('f"addr6-set-{jail}"') == len(nodes)
        assert all(BAN_PROBE in banned(n, "sshd") for n in nodes)
    finally:
        lab.pyinfra("--data", f"ip={BAN_PROBE}", deploy="unban.py")


def test_ban_everywhere_refuses_the_controller_and_a_peer_unless_forced(lab):
    nodes = lab.nodes()
    before = snapshot(nodes)
    for address, why in (
        (config.GATEWAY, "this controller"),
        (nodes[2].ip, "a node of the inventory"),
    ):
        run = lab.pyinfra("--data", f"ip={address}", deploy="ban.py")
        assert run.returncode != 0 and f"refusing to ban {address}: it is {why}" in run.text
    assert snapshot(nodes) == before
    run = lab.pyinfra("--data", f"ip={BAN_PROBE}", "--data", "jails=sshd", deploy="ban.py")
    assert run.returncode == 0, run.report
    assert all(
        BAN_PROBE in banned(n, "sshd") and BAN_PROBE not in banned(n, "proxmox") for n in nodes
    )
    again = lab.pyinfra("--data", f"ip={BAN_PROBE}", "--data", "jails=sshd", deploy="ban.py")
    assert again.returncode == 0 and "banned in jail" not in again.text.split("--> Beginning")[1]
    lab.pyinfra("--data", f"ip={BAN_PROBE}", deploy="unban.py")


@pytest.mark.parametrize(
    "deploy,data,named",
    [
        ("unban.py", "ip=10.0.0.300", "'10.0.0.300' is not an IP address"),
        ("unban.py", "ip=", "give one address"),
        ("ban.py", "ip=not-an-ip", "'not-an-ip' is not an IP address"),
        ("ban.py", "jails=nosuch", "jail 'nosuch' does not run"),
        ("ban.py", "force=maybe", "force = 'maybe'"),
        ("remove.py", "purge=maybe", "purge = 'maybe'"),
    ],
)
def test_bad_day2_input_is_refused_before_any_node_changes(lab, deploy, data, named):
    nodes = lab.nodes()
    before = snapshot(nodes)
    extra = (
        ["--data", f"ip={BAN_PROBE}"] if deploy == "ban.py" and not data.startswith("ip=") else []
    )
    run = lab.pyinfra(*extra, "--data", data, deploy=deploy)
    assert run.returncode != 0 and named in run.text, run.report
    assert "Beginning operation run" not in run.text
    assert snapshot(nodes) == before


def test_remove_takes_back_only_our_files_and_leaves_fail2ban_as_asked(lab):
    nodes = lab.nodes()
    run = lab.pyinfra(deploy="remove.py")
    assert run.returncode == 0, run.report
    ours = "ls /etc/fail2ban/jail.d/0?_* /etc/fail2ban/filter.d/proxmox.* 2>/dev/null"
    for node in nodes:
        assert node.sh(ours)[1].strip() == "", node.name
        assert node.sh("test -e /var/lib/pve-fail2ban")[0] != 0, node.name
        assert (
            node.sh("test -f /etc/fail2ban/jail.conf && test -f /etc/fail2ban/filter.d/sshd.conf")[
                0
            ]
            == 0
        )
        state = node.sh("systemctl is-active fail2ban; systemctl is-enabled fail2ban")[1].split()
        if (
            node.variant == "pve8"
        ):  # Debian 12 without auth.log: the distribution's config cannot run
            assert state == ["inactive", "disabled"]
            assert re.search(
                rf"\[{node.name}\] fail2ban is stopped and disabled, not left failed", run.text
            )
        else:
            assert state == ["active", "enabled"]
            assert re.search(
                rf"\[{node.name}\] fail2ban runs on the distribution's own configuration", run.text
            )
    again = lab.pyinfra(deploy="remove.py")
    assert again.returncode == 0 and re.search(r"Grand total\s+\S+\s+-\s+-", again.text), (
        again.report
    )
    purged = lab.pyinfra("--data", "purge=true", deploy="remove.py")
    assert purged.returncode == 0, purged.report
    assert all(n.sh("dpkg -s fail2ban")[0] != 0 for n in nodes)
    back = lab.pyinfra()
    assert back.returncode == 0, back.report
