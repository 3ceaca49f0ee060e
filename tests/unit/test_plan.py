import pytest
from pyinfra.api.exceptions import FactProcessError

from pvefail2ban.defaults import DEFAULTS as DEFAULT_DATA
from pvefail2ban.facts import (
    EARLIER_JAILS,
    FILTER,
    FILTER_LOCAL,
    PBS_AUTH_LOG,
    PBS_FILTER,
    PBS_JAIL,
    PMG_FILTER,
    PROXMOX_JAIL,
    RECIDIVE_JAIL,
    SSHD_JAIL,
    NodeFacts,
    parse_node,
)
from pvefail2ban.plan import NodeError, files_to_change, files_to_remove, plan_node, sha1
from pvefail2ban.render import render_files
from pvefail2ban.settings import validate

DEFAULTS = validate(DEFAULT_DATA)
SHA = "a" * 40  # a sha1 as sha1sum prints it
PVE8 = """os_id=debian
os_like=
unit=pvedaemon.service
systemd=yes
journal=yes
tool=nft
tool=iptables
sshd_port 22
sshd_maxauthtries 3
client=10.213.77.1
pkg=fail2ban ii 1.0.2-2
fail2ban_ActiveState=active
fail2ban_MainPID=321
"""
LEGACY = PVE8 + (
    "log=/var/log/auth.log\nlog=/var/log/daemon.log\n"
    "log_written=/var/log/auth.log\nlog_written=/var/log/daemon.log\n"
)


def node(text=PVE8, **changes):
    facts = parse_node(text.splitlines())
    facts.update(changes)
    return facts


def settings(**changes):
    return dict(DEFAULTS, **changes)


def test_facts_are_parsed():
    facts = node(LEGACY + f"file={SSHD_JAIL} {SHA} 644 root:root\nsshd_port 2222\n")
    assert facts["sshd_ports"] == ["22", "2222"] and facts["sshd_maxauthtries"] == 3
    assert facts["logs"] == ["/var/log/auth.log", "/var/log/daemon.log"]
    assert facts["files"][SSHD_JAIL] == (SHA, "644", "root:root")
    assert facts["packages"] == {"fail2ban": "1.0.2-2"} and facts["fail2ban_mainpid"] == 321


def test_journal_node_gets_systemd_backends_and_nftables():
    plan = plan_node(DEFAULTS, node(), ["10.213.77.11"])
    assert [(j.name, j.backend, j.logpath) for j in plan.jails] == [
        ("sshd", "systemd", None),
        ("proxmox", "systemd", None),
    ]
    assert plan.banaction == "nftables-multiport"
    assert plan.packages == ["python3-systemd"]
    assert plan.warnings == []


def test_legacy_node_reads_the_guides_log_files():
    plan = plan_node(DEFAULTS, node(LEGACY))
    assert [(j.backend, j.logpath) for j in plan.jails] == [
        ("file", "/var/log/auth.log"),
        ("file", "/var/log/daemon.log"),
    ]
    assert "python3-pyinotify" in plan.packages and "python3-systemd" not in plan.packages


def test_forcing_the_file_backend_without_the_file_fails_the_node():
    with pytest.raises(NodeError, match="/var/log/auth.log does not exist"):
        plan_node(settings(backend="file"), node())


def test_ban_action_follows_the_tools_present():
    assert plan_node(DEFAULTS, node(tools=["iptables"])).banaction == "iptables-multiport"
    bare = plan_node(DEFAULTS, node(tools=[]))
    assert bare.banaction == "nftables-multiport" and "nftables" in bare.packages
    assert "iptables" in plan_node(settings(banaction="iptables"), node(tools=["nft"])).packages


def test_sshd_ports_come_from_sshd_unless_set():
    assert plan_node(DEFAULTS, node(sshd_ports=["22", "2222"])).jails[0].ports == ["22", "2222"]
    assert plan_node(settings(sshd_port=["2200"]), node()).jails[0].ports == ["2200"]


def test_maxauthtries_mismatch_is_a_warning():
    plan = plan_node(DEFAULTS, node(sshd_maxauthtries=6))
    assert plan.warnings and "MaxAuthTries is 6" in plan.warnings[0]


def test_lockout_protection_ignores_loopback_controller_and_peers():
    plan = plan_node(
        settings(ignoreip=["192.0.2.0/24", "10.213.77.1"]), node(), ["10.213.77.11", "10.213.77.12"]
    )
    assert plan.ignoreip == [
        "127.0.0.1/8",
        "::1",
        "10.213.77.1",
        "10.213.77.11",
        "10.213.77.12",
        "192.0.2.0/24",
    ]
    off = plan_node(settings(lockout_protection=False), node(), ["10.213.77.11"])
    assert off.ignoreip == ["127.0.0.1/8", "::1"]


def test_unknown_controller_address_fails_the_node_unless_protection_is_off():
    with pytest.raises(NodeError, match="controller"):
        plan_node(DEFAULTS, node(client=None))
    plan_node(settings(lockout_protection=False), node(client=None))


@pytest.mark.parametrize(
    "changes,reason", [({"systemd": False}, "systemd"), ({"os_id": "alpine"}, "not Debian")]
)
def test_unsupported_nodes_are_refused(changes, reason):
    with pytest.raises(NodeError, match=reason):
        plan_node(DEFAULTS, node(**changes))


def test_a_packaged_filter_is_never_overwritten():
    plan = plan_node(DEFAULTS, node(filter_owner="fail2ban"))
    assert plan.filter_path == FILTER_LOCAL
    files = render_files(plan, DEFAULTS)
    assert FILTER not in files
    assert (
        files_to_remove(
            files, node(files={FILTER: ("x", "644", "root:root")}, filter_owner="fail2ban")
        )
        == []
    )


def test_files_to_change_and_remove():
    plan = plan_node(DEFAULTS, node())
    files = render_files(plan, DEFAULTS)
    current = {path: (sha1(data), "644", "root:root") for path, data in files.items()}
    assert files_to_change(files, node(files=current)) == []
    current[SSHD_JAIL] = (sha1(files[SSHD_JAIL]), "666", "root:root")
    assert files_to_change(files, node(files=current)) == [SSHD_JAIL]
    current[EARLIER_JAILS[0]] = (
        "old",
        "644",
        "root:root",
    )  # the guide's 01_sshd.conf of an earlier run
    assert files_to_remove(files, node(files=current)) == [EARLIER_JAILS[0]]


def test_a_jail_switched_off_is_written_off_so_the_distributions_own_does_not_run():
    plan = plan_node(settings(sshd_enabled=False), node())
    assert [j.name for j in plan.jails] == ["proxmox"] and sorted(plan.off) == ["recidive", "sshd"]
    files = render_files(plan, DEFAULTS)
    assert files[SSHD_JAIL].decode().endswith("[sshd]\nenabled = false\n")
    assert "enabled = false" not in files[PROXMOX_JAIL].decode()
    assert all(path.endswith(".local") for path in (SSHD_JAIL, PROXMOX_JAIL, RECIDIVE_JAIL))


@pytest.mark.parametrize("output", [["garbage"], ["file=/etc/x only-two"], []])
def test_output_the_fact_cannot_read_fails_that_node_only(output):
    with pytest.raises(FactProcessError, match="unexpected output"):
        NodeFacts().process(output)


def test_rendering_is_stable_and_says_it_is_managed():
    plan = plan_node(settings(recidive_enabled=True, bantime_increment=True), node())
    first, second = render_files(plan, DEFAULTS), render_files(plan, DEFAULTS)
    assert first == second
    for path, data in first.items():
        assert b"anaged by pve-fail2ban" in data.splitlines()[0], path
    sshd = first[SSHD_JAIL].decode()
    assert "[sshd]" in sshd and "maxretry  = 3" in sshd and "backend   = systemd" in sshd
    assert "ignoreip  = 127.0.0.1/8 ::1 10.213.77.1" in sshd
    assert "[recidive]" in first[RECIDIVE_JAIL].decode()


def test_peers_are_only_real_addresses_or_host_names():
    from types import SimpleNamespace

    from pvefail2ban.node import inventory_addresses

    def h(name, **data):
        return SimpleNamespace(name=name, data=data)

    hosts = [
        h("pve1", ssh_hostname="10.0.0.1"),
        h("pve2.example.com"),
        h("@docker/abc"),
        h("@local"),
    ]
    assert inventory_addresses(hosts) == ["10.0.0.1", "pve2.example.com"]


def test_a_log_file_rsyslog_no_longer_writes_is_not_read():
    stale = node(LEGACY, logs_written=["/var/log/auth.log"])
    plan = plan_node(DEFAULTS, stale)
    assert [(j.name, j.backend) for j in plan.jails] == [("sshd", "file"), ("proxmox", "systemd")]
    assert "no longer written by rsyslog" in plan.jails[1].why
    with pytest.raises(NodeError, match="no active rsyslog rule writes it"):
        plan_node(settings(backend="file"), stale)


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"journald_storage": "none"}, "Storage=none"),
        ({"journald_maxlevelstore": "warning"}, "MaxLevelStore=warning: the sshd jail reads info"),
        ({"journald_maxlevelstore": "4"}, "MaxLevelStore=4"),
        ({"journald_maxlevelstore": "crit"}, "MaxLevelStore=crit: the sshd jail"),
        ({"sshd_loglevel": "QUIET"}, "LogLevel QUIET"),
        ({"sshd_loglevel": "FATAL"}, "LogLevel FATAL"),
    ],
)
def test_what_would_blind_a_jail_fails_the_node_with_the_fix(changes, reason):
    with pytest.raises(NodeError, match=reason) as error:
        plan_node(DEFAULTS, node(**changes))
    assert "Fix:" in str(error.value)


def test_journald_levels_that_keep_what_each_jail_reads_pass():
    plan_node(DEFAULTS, node(journald_maxlevelstore="info", journald_storage="volatile"))
    # without the sshd jail, err is enough for the proxmox jail
    plan_node(settings(sshd_enabled=False), node(journald_maxlevelstore="err"))
    with pytest.raises(NodeError, match="the proxmox jail reads err"):
        plan_node(
            settings(sshd_enabled=False),
            node(journald_maxlevelstore="crit"),
        )
    # a node whose journal is blind but whose jails read rsyslog's files is fine
    plan_node(DEFAULTS, node(LEGACY, journald_storage="none"))


def test_the_node_script_output_for_journald_rsyslog_and_sshd_is_parsed():
    facts = node(
        PVE8
        + "journald_Storage=auto\njournald_MaxLevelStore=warning\njournald_MaxLevelStore=Info\n"
        "sshd_loglevel QUIET\nlog_written=/var/log/auth.log\n"
    )
    assert (facts["journald_storage"], facts["journald_maxlevelstore"]) == ("auto", "info")
    assert facts["sshd_loglevel"] == "QUIET" and facts["logs_written"] == ["/var/log/auth.log"]


def test_peers_are_every_address_of_every_node_but_never_a_node_we_cannot_serve():
    from types import SimpleNamespace

    from pvefail2ban.node import cluster_addresses

    hosts = [
        SimpleNamespace(name="pve1", data={"ssh_hostname": "10.0.0.1"}),
        SimpleNamespace(name="@docker/abc", data={}),
    ]
    facts = {
        "pve1": node(PVE8 + "addr=10.0.0.1\naddr=fd00::1\n"),
        "@docker/abc": node(PVE8 + "addr=10.0.0.200\naddr=fd00::200\n", systemd=False),
        "pve2": None,  # could not be read: only its inventory address, if any
    }
    assert cluster_addresses(hosts, facts) == ["10.0.0.1", "fd00::1"]
    plan = plan_node(DEFAULTS, node(), cluster_addresses(hosts, facts), ["fd00::9"])
    assert plan.ignoreip == ["127.0.0.1/8", "::1", "10.213.77.1", "fd00::9", "10.0.0.1", "fd00::1"]


def test_the_admins_own_proxmox_local_is_never_removed():
    plan = plan_node(DEFAULTS, node())
    files = render_files(plan, DEFAULTS)
    theirs = node(files={FILTER_LOCAL: ("x", "644", "root:root")})
    assert files_to_remove(files, theirs) == []


PBS = PVE8.replace("unit=pvedaemon.service\n", "") + (
    "unit=proxmox-backup.service\nunit=proxmox-backup-proxy.service\npbs_authlog=yes\n"
)
PBS_FIXED = "pbs_version=4.1.9-1\npbs_date=Tue, 14 Jul 2026 10:00:00 +0200\n"


def test_products_are_read_from_their_units():
    assert node()["products"] == ["pve"]
    assert node(PBS + "unit=pvedaemon.service\n")["products"] == ["pbs", "pve"]
    facts = node(PBS + PBS_FIXED)
    assert facts["pbs_authlog"] and facts["pbs_version"] == "4.1.9-1"
    assert node(PVE8.replace("unit=pvedaemon.service\n", "unit=pmgdaemon.service\n"))[
        "products"
    ] == ["pmg"]


def test_a_pbs_node_gets_the_pbs_jail_on_the_journal_and_no_proxmox_jail():
    plan = plan_node(DEFAULTS, node(PBS + PBS_FIXED), ["10.213.77.11"])
    assert [(j.name, j.backend, j.ports) for j in plan.jails] == [
        ("sshd", "systemd", ["22"]),
        ("pbs", "systemd", ["8007"]),
    ]
    assert plan.off["proxmox"][1] == "this node does not run Proxmox VE (no pvedaemon unit)"
    assert plan.warnings == []
    files = render_files(plan, DEFAULTS)
    assert PBS_FILTER in files and PMG_FILTER not in files and FILTER in files
    jail = files[PBS_JAIL].decode()
    assert "[pbs]\n" in jail and "filter    = pbs\n" in jail and "port      = 8007\n" in jail
    assert "backend   = systemd" in jail and "logpath" not in jail
    assert "does not run Proxmox VE" in files[PROXMOX_JAIL].decode()


def test_pbs_reads_its_auth_log_where_journald_drops_its_lines():
    blind = node(PBS + PBS_FIXED, journald_maxlevelstore="crit")  # sshd's jail would be blind too
    plan = plan_node(settings(sshd_enabled=False), blind, [])
    assert [(j.name, j.backend, j.logpath) for j in plan.jails] == [("pbs", "file", PBS_AUTH_LOG)]
    with pytest.raises(NodeError, match="MaxLevelStore=crit: the pbs jail"):
        plan_node(settings(sshd_enabled=False), dict(blind, pbs_authlog=False), [])
    with pytest.raises(NodeError, match="auth.log does not exist"):
        plan_node(settings(backend="file"), node(PBS.replace("pbs_authlog=yes\n", "")), [])


def test_an_old_or_unknown_pbs_release_is_warned_about_forged_addresses():
    old = "pbs_version=3.2.4-1\npbs_date=Mon, 27 May 2024 15:01:02 +0200\n"
    (warning,) = plan_node(DEFAULTS, node(PBS + old), []).warnings
    assert warning.startswith("PBS 3.2.4-1 of 2024-05-27: ") and "Forwarded" in warning
    (warning,) = plan_node(DEFAULTS, node(PBS), []).warnings
    assert warning.startswith("the PBS release cannot be read")


def test_pmg_pve_and_pbs_together_and_a_node_running_none():
    pmg = node(PVE8.replace("unit=pvedaemon.service\n", "unit=pmgdaemon.service\n"))
    plan = plan_node(DEFAULTS, pmg, [])
    assert [(j.name, j.ports, j.filter) for j in plan.jails] == [
        ("sshd", ["22"], "sshd"),
        ("pmg", ["8006"], "pmg"),
    ]
    assert PMG_FILTER in render_files(plan, DEFAULTS)
    both = plan_node(DEFAULTS, node(PBS + PBS_FIXED + "unit=pvedaemon.service\n"), [])
    assert [j.name for j in both.jails] == ["sshd", "proxmox", "pbs"] and "proxmox" not in both.off
    bare = plan_node(DEFAULTS, node(PVE8.replace("unit=pvedaemon.service\n", "")), [])
    assert [j.name for j in bare.jails] == ["sshd"]
    assert any("none of Proxmox VE, Backup Server or Mail Gateway" in w for w in bare.warnings)
    off = plan_node(settings(pbs_enabled=False), node(PBS + PBS_FIXED), [])
    assert [j.name for j in off.jails] == ["sshd"]
    assert PBS_FILTER not in render_files(off, DEFAULTS)


def test_the_apt_lists_age_is_the_newest_refresh_and_no_lists_are_ancient():
    assert node(PVE8 + "apt_mtime=1000\napt_mtime=1600\nnow=1700\n")["apt_lists_age"] == 100
    assert node(PVE8 + "now=1700\n")["apt_lists_age"] == 1700  # no lists: older than any cache time
    assert node(PVE8)["apt_lists_age"] is None  # not read: the lists are refreshed


def test_unit_states_come_from_one_systemctl_call_with_a_prefix_each():
    facts = node(
        PVE8 + "rsyslog_ActiveState=active\nshare_ActiveState=active\nshare_MainPID=7\n"
        "events_UnitFileState=enabled\nexporter_ActiveState=inactive\n"
    )
    assert facts["share_activestate"] == "active" and facts["events_unitfilestate"] == "enabled"
    assert facts["exporter_activestate"] == "inactive" and "rsyslog_activestate" not in facts
