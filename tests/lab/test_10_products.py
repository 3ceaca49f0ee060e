"""Proxmox Backup Server, Mail Gateway and Datacenter Manager nodes in the same inventory as PVE
nodes: each node gets the jails of the products it runs (detected by their units), a web brute force
against PBS (8007), PMG (8006) and PDM (8443) is refused and lifted, the day-2 tools and cluster-wide
bans cover the new jails, and an old PBS that lets a client choose the logged address never gets the
controller or a node banned.

pve1 pve8, pve2 pve9, pve3 legacy, pve4 pbs, pve5 pmg, pve6 pvepbs (PVE and PBS on one host),
pve7 pdm."""

import json
import re

import pytest

from lab import attack, config
from lab.checks import banned, ops_with_changes, wait_for

VARIANTS = ["pve8", "pve9", "legacy", "pbs", "pmg", "pvepbs", "pdm"]
JAILS = {  # pveproxy, pmgproxy: their web proxy's access log (API tokens, tickets)
    "pve8": {"sshd", "proxmox", "pveproxy"},
    "pve9": {"sshd", "proxmox", "pveproxy"},
    "legacy": {"sshd", "proxmox", "pveproxy"},
    "pbs": {"sshd", "pbs"},
    "pmg": {"sshd", "pmg", "pmgproxy"},
    "pvepbs": {"sshd", "proxmox", "pbs", "pveproxy"},
    "pdm": {"sshd", "pdm"},
}
FORGED = "192.0.2.99"  # an address the attacker claims in a Forwarded header


@pytest.fixture(scope="module")
def mixed(lab_control):
    lab_control.up(variants=VARIANTS)
    first = lab_control.pyinfra()
    yield lab_control, first


def node_of(lab, variant):
    return next(n for n in lab.nodes() if n.variant == variant)


def jails(node):
    text = node.sh("fail2ban-client status")[1]
    found = re.search(r"Jail list:\s*(.*)", text)
    return {j.strip() for j in found.group(1).split(",") if j.strip()} if found else set()


def run_ok(lab, *args, **kwargs):
    run = lab.pyinfra(*args, **kwargs)
    assert run.returncode == 0, run.report
    return run


def unban(lab, *addresses):
    run_ok(lab, "--data", f"ip={','.join(addresses)}", deploy="unban.py")


def test_a_mixed_inventory_converges_in_one_run_each_node_with_its_products_jails(mixed):
    lab, first = mixed
    assert first.returncode == 0, first.report
    for node in lab.nodes():
        assert jails(node) == JAILS[node.variant], node.name
        summary = re.search(rf"\[{node.name}\] fail2ban [\d.]+; (.*)", first.text)
        assert summary and all(f"{j} [" in summary.group(1) for j in JAILS[node.variant])
    pbs, pmg = node_of(lab, "pbs"), node_of(lab, "pmg")
    # where PVE does not run, its jail is written off with the reason; PBS and PMG jails read the
    # journal of their own units
    assert "does not run Proxmox VE" in pbs.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
    assert "_SYSTEMD_UNIT=proxmox-backup.service" in pbs.sh("fail2ban-client status pbs")[1]
    assert "_SYSTEMD_UNIT=pmgdaemon.service" in pmg.sh("fail2ban-client status pmg")[1]
    assert pmg.sh("test -e /etc/fail2ban/filter.d/pbs.conf")[0] != 0
    # the lab's PBS stands for a release with the Forwarded fix: no warning
    assert "Forwarded" not in first.text and "runs none of" not in first.text


def test_the_second_run_changes_nothing(mixed):
    lab, _ = mixed
    second = run_ok(lab)
    assert ops_with_changes(second.text) == []


def test_a_pbs_brute_force_is_refused_on_every_node_running_pbs_then_unbanned(mixed):
    lab, _ = mixed
    attacker = lab.attacker()
    pbs, both, pve = node_of(lab, "pbs"), node_of(lab, "pvepbs"), node_of(lab, "pve8")
    assert attack.port_open(attacker, pbs, 8007) and attack.port_open(attacker, both, 8007)
    claim = [f'Forwarded: for="[::ffff:{FORGED}]:1"']  # a fixed PBS takes no client's word
    codes = attack.web_login(attacker, pbs, "root@pam", count=2, port=8007, headers=claim)
    codes += attack.web_post(
        attacker, pbs, "/api2/json/nodes", {}, port=8007, cookie="PBSAuthCookie=x"
    )
    # the third failure tips the ban: its own answer may come after the ban and never arrive
    assert codes[:2] == ["401", "401"] and codes[2] in ("401", "000"), codes
    journal = pbs.journal("proxmox-backup") + pbs.journal("proxmox-backup-proxy")
    assert journal.count(f"rhost=[::ffff:{config.ATTACKER_IP}]:") == 3 and FORGED not in journal
    assert wait_for(lambda: banned(pbs, "pbs")) == [config.ATTACKER_IP]
    assert wait_for(lambda: not attack.port_open(attacker, pbs, 8007))
    assert attack.port_open(attacker, pbs, 22), "only the jail's ports are closed"
    # cluster-wide: the other node with a pbs jail refuses it too; a node without one is not asked
    assert wait_for(lambda: not attack.port_open(attacker, both, 8007))
    assert config.ATTACKER_IP in banned(both, "pbs")
    assert attack.port_open(attacker, pve, 8006)
    unban(lab, config.ATTACKER_IP)
    assert wait_for(lambda: attack.port_open(attacker, pbs, 8007))
    assert wait_for(lambda: attack.port_open(attacker, both, 8007))


def test_a_pdm_brute_force_is_refused_then_unbanned(mixed):
    """PDM's API is PBS's crates: failed logins logged by its privileged daemon (the address from
    the public daemon's Forwarded header), a bad API token by the public one; both in its journal
    and its auth.log. The third failure bans on 8443, only there."""
    lab, _ = mixed
    attacker, pdm = lab.attacker(), node_of(lab, "pdm")
    assert attack.port_open(attacker, pdm, 8443)
    codes = attack.web_login(attacker, pdm, "root@pam", count=2, port=8443)
    token = ["Authorization: PDMAPIToken=root@pam!x:00000000-0000-0000-0000-000000000000"]
    codes += attack.web_post(attacker, pdm, "/api2/json/remotes", {}, port=8443, headers=token)
    assert codes[:2] == ["401", "401"] and codes[2] in ("401", "000"), codes
    journal = pdm.journal("proxmox-datacenter-privileged-api") + pdm.journal(
        "proxmox-datacenter-api"
    )
    assert journal.count(f"rhost=[::ffff:{config.ATTACKER_IP}]:") == 3
    auth_log = pdm.sh("cat /var/log/proxmox-datacenter-manager/api/auth.log")[1]
    assert auth_log.count(f"authentication failure; rhost=[::ffff:{config.ATTACKER_IP}]:") == 3
    assert wait_for(lambda: banned(pdm, "pdm")) == [config.ATTACKER_IP]
    assert wait_for(lambda: not attack.port_open(attacker, pdm, 8443))
    assert attack.port_open(attacker, pdm, 22), "only the jail's ports are closed"
    unban(lab, config.ATTACKER_IP)
    assert wait_for(lambda: attack.port_open(attacker, pdm, 8443))


def test_a_pmg_brute_force_is_refused_then_unbanned(mixed):
    lab, _ = mixed
    attacker, pmg = lab.attacker(), node_of(lab, "pmg")
    codes = attack.web_login(attacker, pmg, "root@pam", count=2)
    codes += attack.web_post(
        attacker, pmg, "/api2/json/access/oidc/login", {"code": "x", "state": "y"}
    )
    # the third failure tips the ban: its own answer may come after the ban and never arrive
    assert codes[:2] == ["401", "401"] and codes[2] in ("401", "000"), codes
    assert "openid connect authentication failure; rhost=" in pmg.journal("pmgdaemon")
    assert wait_for(lambda: banned(pmg, "pmg")) == [config.ATTACKER_IP]
    assert wait_for(lambda: not attack.port_open(attacker, pmg, 8006))
    unban(lab, config.ATTACKER_IP)
    assert wait_for(lambda: attack.port_open(attacker, pmg, 8006))


def test_status_ban_and_unban_cover_the_new_jails(mixed, tmp_path):
    lab, _ = mixed
    report = tmp_path / "status.json"
    run_ok(lab, "--data", f"report={report}", deploy="status.py")
    data = json.loads(report.read_text())
    assert data["problems"] == []
    for node in lab.nodes():
        assert set(data["nodes"][node.name]["jails"]) == JAILS[node.variant], node.name
    address = "192.0.2.50"
    run_ok(lab, "--data", f"ip={address}", deploy="ban.py")  # every login jail of ours, by default
    for node in lab.nodes():
        where = {j for j in JAILS[node.variant] if address in banned(node, j)}
        assert where == JAILS[node.variant], node.name
    unban(lab, address)
    assert all(address not in banned(n, j) for n in lab.nodes() for j in JAILS[n.variant])


def test_sync_spreads_a_pbs_ban_to_the_other_pbs_node_only(mixed):
    lab, _ = mixed
    run_ok(
        lab, "--data", "fail2ban_cluster_bans=False"
    )  # sync is the tool where bans are not shared
    pbs, both = node_of(lab, "pbs"), node_of(lab, "pvepbs")
    address = "192.0.2.51"
    try:
        assert pbs.sh(f"fail2ban-client set pbs banip {address}")[0] == 0
        run_ok(lab, deploy="sync.py")
        assert address in banned(both, "pbs")
        for node in lab.nodes():
            if node not in (pbs, both):
                assert all(address not in banned(node, j) for j in JAILS[node.variant]), node.name
    finally:
        unban(lab, address)
        run_ok(lab)


def test_pbs_reads_its_auth_log_where_the_file_backend_is_chosen(mixed, tmp_path):
    lab, _ = mixed
    attacker, pbs = lab.attacker(), node_of(lab, "pbs")
    inventory = lab.write_inventory(
        lab.nodes(),
        host_data={pbs.name: {"fail2ban_backend": "file", "fail2ban_sshd_enabled": False}},
        path=tmp_path / "inventory.py",
    )
    try:
        run_ok(lab, "--limit", pbs.name, inventory=inventory)
        status = pbs.sh("fail2ban-client status pbs")[1]
        assert "/var/log/proxmox-backup/api/auth.log" in status, status
        attack.web_login(attacker, pbs, "admin@pbs", count=3, port=8007)
        assert wait_for(lambda: banned(pbs, "pbs")) == [config.ATTACKER_IP]
        assert wait_for(lambda: not attack.port_open(attacker, pbs, 8007))
    finally:
        unban(lab, config.ATTACKER_IP)
        run_ok(lab, "--limit", pbs.name)


def test_a_node_running_no_proxmox_product_gets_the_sshd_jail_and_a_note(mixed):
    lab, _ = mixed
    pmg = node_of(lab, "pmg")
    pmg.sh("systemctl disable --now pmgdaemon && mv /etc/systemd/system/pmgdaemon.service /root/")
    pmg.sh("systemctl daemon-reload")
    try:
        run = run_ok(lab, "--limit", pmg.name)
        assert "runs none of Proxmox VE, Proxmox Backup Server" in run.text
        assert jails(pmg) == {"sshd"}
        assert (
            pmg.sh("ls /etc/fail2ban/jail.d/05_pmg.local /etc/fail2ban/filter.d/pmg.conf")[0] != 0
        )
    finally:
        pmg.sh("mv /root/pmgdaemon.service /etc/systemd/system/ && systemctl daemon-reload")
        pmg.sh("systemctl enable --now pmgdaemon")
        run_ok(lab, "--limit", pmg.name)
    assert jails(pmg) == {"sshd", "pmg", "pmgproxy"}


def test_the_readme_commands_test_the_filters_against_a_nodes_own_log(mixed):
    """docs/products.md: fail2ban-regex on the node, against PBS's and PDM's auth.log, and the units'
    journal of PBS, PMG and PDM."""
    lab, _ = mixed
    pbs, pmg = node_of(lab, "pbs"), node_of(lab, "pmg")
    for node, command in (
        (pbs, "fail2ban-regex /var/log/proxmox-backup/api/auth.log pbs"),
        (pbs, "fail2ban-regex systemd-journal pbs"),
        (pmg, "fail2ban-regex systemd-journal pmg"),
        (
            node_of(lab, "pdm"),
            "fail2ban-regex /var/log/proxmox-datacenter-manager/api/auth.log pdm",
        ),
        (node_of(lab, "pdm"), "fail2ban-regex systemd-journal pdm"),
    ):
        code, out = node.sh(command, timeout=120)
        found = re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", out, re.M)
        assert code == 0 and found and int(found.group(1)) >= 3, (node.name, command, out[-1500:])


def test_an_old_pbs_is_warned_about_and_forged_addresses_never_ban_the_controller_or_a_node(mixed):
    """The simulator as PBS before proxmox-rest-server 1.0.5: the proxy logs the address a client
    claims in a Forwarded header. The deploy warns; the claimed controller and peer addresses are
    never banned (ignoreip), while a third address can be: what the warning says. Last in this
    module: it leaves pve4 an old PBS."""
    lab, _ = mixed
    fresh = lab.recreate(node_of(lab, "pbs"), pbs="old")
    lab.write_known_hosts(lab.nodes())  # a re-created node has new host keys
    run = run_ok(lab)
    try:
        assert re.search(rf"{fresh.name}.*PBS 3\.2\.4-1 of 2024-05-27: .*Forwarded", run.text), (
            run.report
        )
        attacker, peer = lab.attacker(), node_of(lab, "pve8")
        for claimed in (config.GATEWAY, peer.ip, FORGED):
            header = [f'Forwarded: for="[::ffff:{claimed}]:40000"']
            attack.web_login(attacker, fresh, "root@pam", count=4, port=8007, headers=header)
            assert f"rhost=[::ffff:{claimed}]:40000" in fresh.journal("proxmox-backup")
        assert wait_for(lambda: FORGED in banned(fresh, "pbs"))
        assert config.GATEWAY not in banned(fresh, "pbs") and peer.ip not in banned(fresh, "pbs")
        assert config.ATTACKER_IP not in banned(fresh, "pbs")  # it hid behind the claims
        assert run_ok(lab, "--limit", fresh.name, deploy="status.py")  # the controller gets in
    finally:
        unban(lab, FORGED)
