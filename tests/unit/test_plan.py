import json

import pytest
from pyinfra.api.exceptions import FactProcessError

from pvefail2ban.defaults import DEFAULTS as DEFAULT_DATA
from pvefail2ban.facts import EARLIER_JAILS, RECIDIVE_JAIL, SSHD_JAIL, NodeFacts, parse_node
from pvefail2ban.plan import NodeError, files_to_change, files_to_remove, plan_node, sha1
from pvefail2ban.products import PBS, PDM, PVE
from pvefail2ban.render import render_files
from pvefail2ban.settings import validate
from tests.unit.nodes import node, recorded, said

DEFAULTS = validate(DEFAULT_DATA)
FILTER = "/etc/fail2ban/filter.d/proxmox.conf"
FILTER_LOCAL = "/etc/fail2ban/filter.d/proxmox.local"
PBS_FILTER = "/etc/fail2ban/filter.d/pbs.conf"
PMG_FILTER = "/etc/fail2ban/filter.d/pmg.conf"
PDM_FILTER = "/etc/fail2ban/filter.d/pdm.conf"
REST_FILTER = "/etc/fail2ban/filter.d/proxmox-rest-server.conf"
PROXMOX_JAIL, PBS_JAIL, PDM_JAIL = PVE.jail_file, PBS.jail_file, PDM.jail_file


def pve8(**changes):
    """The recorded PVE 8 node, with sshd's MaxAuthTries as the guide sets it."""
    return node("pve8", sshd_maxauthtries=3, **changes)


def settings(**changes):
    return dict(DEFAULTS, **changes)


def test_facts_are_parsed():
    facts = node("legacy")
    assert facts["sshd_ports"] == ["22"] and facts["sshd_maxauthtries"] == 6
    assert (
        facts["logs"][:2] == ["/var/log/auth.log", "/var/log/daemon.log"] == facts["logs_written"]
    )
    assert facts["logs"][2:] == ["/var/log/pveproxy/access.log"]  # pveproxy's, no rsyslog's
    assert facts["files"][SSHD_JAIL][1:] == ("644", "root:root")
    assert facts["packages"]["fail2ban"] == "1.0.2-2" and facts["fail2ban_mainpid"] > 1
    assert facts["client"] == "10.213.77.1" and facts["addresses"][0] == "10.213.77.13"
    fresh = node("legacy", fresh=True)
    assert (
        fresh["files"] == {}
        and "fail2ban" not in fresh["packages"]
        and fresh["check"]["ping"] is False
    )


def test_journal_node_gets_systemd_backends_and_nftables():
    plan = plan_node(DEFAULTS, pve8(packages={"fail2ban": "1.0.2-2"}), ["10.213.77.11"])
    assert [(j.name, j.backend, j.logpath) for j in plan.jails] == [
        ("sshd", "systemd", None),
        ("proxmox", "systemd", None),
        ("pveproxy", "file", "/var/log/pveproxy/access.log"),  # API tokens: pveproxy's log only
    ]
    assert plan.banaction == "nftables-multiport"
    assert plan.packages == ["python3-systemd", "python3-pyinotify"]
    assert plan.warnings == []


def test_legacy_node_reads_the_guides_log_files():
    plan = plan_node(DEFAULTS, node("legacy", fresh=True))
    assert [(j.backend, j.logpath) for j in plan.jails] == [
        ("file", "/var/log/auth.log"),
        ("file", "/var/log/daemon.log"),
        ("file", "/var/log/pveproxy/access.log"),
    ]
    assert "python3-pyinotify" in plan.packages and "python3-systemd" not in plan.packages


def test_forcing_the_file_backend_without_the_file_fails_the_node():
    with pytest.raises(NodeError, match="/var/log/auth.log does not exist"):
        plan_node(settings(backend="file"), node())


def test_ban_action_follows_the_tools_present():
    assert plan_node(DEFAULTS, node(tools=["iptables"])).banaction == "iptables-multiport"
    bare = plan_node(DEFAULTS, node(fresh=True, tools=[], packages={}))
    assert bare.banaction == "nftables-multiport" and "nftables" in bare.packages
    only_nft = node(fresh=True, tools=["nft"], packages={})
    assert "iptables" in plan_node(settings(banaction="iptables"), only_nft).packages


def test_sshd_ports_come_from_sshd_unless_set():
    assert plan_node(DEFAULTS, node(sshd_ports=["22", "2222"])).jails[0].ports == ["22", "2222"]
    assert plan_node(settings(sshd_port=["2200"]), node()).jails[0].ports == ["2200"]


def test_maxauthtries_mismatch_is_a_warning():
    plan = plan_node(DEFAULTS, node())  # the lab's sshd: MaxAuthTries 6
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
    packaged = node(packaged_filters=["proxmox.conf"])
    files = render_files(plan_node(DEFAULTS, packaged), DEFAULTS)
    assert FILTER_LOCAL in files and FILTER not in files
    assert files_to_remove(files, {**packaged, "files": {FILTER: ("x", "644", "root:root")}}) == []
    said_so = parse_node(said(packaged_filters=["/etc/fail2ban/filter.d/proxmox.conf"]))
    assert said_so["packaged_filters"] == ["proxmox.conf"]


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
    assert [j.name for j in plan.jails] == ["proxmox", "pveproxy"]
    assert sorted(plan.off) == ["recidive", "sshd"]
    files = render_files(plan, DEFAULTS)
    assert files[SSHD_JAIL].decode().endswith("[sshd]\nenabled = false\n")
    assert "enabled = false" not in files[PROXMOX_JAIL].decode()
    assert all(path.endswith(".local") for path in (SSHD_JAIL, PROXMOX_JAIL, RECIDIVE_JAIL))


@pytest.mark.parametrize(
    "output", [["garbage"], ['{"python3": true, "files": {"/etc/x": ["1"]}}'], [], ["[]"]]
)
def test_output_the_fact_cannot_read_fails_that_node_only(output):
    with pytest.raises(FactProcessError, match="nothing it said was used"):
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
    stale = node("legacy", logs_written=["/var/log/auth.log"])
    plan = plan_node(DEFAULTS, stale)
    assert [(j.name, j.backend) for j in plan.jails][:2] == [
        ("sshd", "file"),
        ("proxmox", "systemd"),
    ]
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
    plan_node(DEFAULTS, node("legacy", journald_storage="none"))


def test_the_probes_journald_and_sshd_settings_are_parsed():
    doc = recorded()
    doc["journald"] = {"storage": "auto", "maxlevelstore": "info"}
    doc["sshd"] = {**doc["sshd"], "loglevel": "quiet"}
    facts = parse_node(json.dumps(doc))
    assert (facts["journald_storage"], facts["journald_maxlevelstore"]) == ("auto", "info")
    assert facts["sshd_loglevel"] == "QUIET" and facts["logs_written"] == []


def test_peers_are_every_address_of_every_node_but_never_a_node_we_cannot_serve():
    from types import SimpleNamespace

    from pvefail2ban.node import cluster_addresses

    hosts = [
        SimpleNamespace(name="pve1", data={"ssh_hostname": "10.0.0.1"}),
        SimpleNamespace(name="@docker/abc", data={}),
    ]
    facts = {
        "pve1": node(addresses=["10.0.0.1", "fd00::1"]),
        "@docker/abc": node(addresses=["10.0.0.200", "fd00::200"], systemd=False),
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


def test_products_are_read_from_their_units():
    assert [node(v)["products"] for v in ("pve8", "pbs", "pmg", "pvepbs", "pdm")] == [
        ["pve"], ["pbs"], ["pmg"], ["pve", "pbs"], ["pdm"]
    ]  # fmt: skip
    assert node("pbs")["releases"]["pbs"]["version"] == "4.1.99~lab-1"
    assert node("pbs")["logs"] == ["/var/log/proxmox-backup/api/auth.log"]
    masked = recorded()
    masked["units"]["pvedaemon.service"]["load"] = "masked"
    assert parse_node(json.dumps(masked))["products"] == []


def test_a_pbs_node_gets_the_pbs_jail_on_the_journal_and_no_proxmox_jail():
    plan = plan_node(DEFAULTS, node("pbs", sshd_maxauthtries=3), ["10.213.77.11"])
    assert [(j.name, j.backend, j.ports) for j in plan.jails] == [
        ("sshd", "systemd", ["22"]),
        ("pbs", "systemd", ["8007"]),
    ]
    assert plan.off["proxmox"][1] == "this node does not run Proxmox VE (no pvedaemon.service)"
    assert plan.warnings == []
    files = render_files(plan, DEFAULTS)
    assert (
        PBS_FILTER in files and REST_FILTER in files and FILTER in files and PMG_FILTER not in files
    )
    jail = files[PBS_JAIL].decode()
    assert "[pbs]\n" in jail and "filter    = pbs\n" in jail and "port      = 8007\n" in jail
    assert "backend   = systemd" in jail and "logpath" not in jail
    assert "does not run Proxmox VE" in files[PROXMOX_JAIL].decode()


@pytest.mark.parametrize("variant, product", [("pbs", PBS), ("pdm", PDM)])
def test_a_product_reads_its_auth_log_where_journald_drops_its_lines(variant, product):
    blind = node(variant, journald_maxlevelstore="crit")  # sshd's jail would be blind too
    plan = plan_node(settings(sshd_enabled=False), blind, [])
    assert [(j.name, j.backend, j.logpath) for j in plan.jails] == [
        (product.jail, "file", product.auth_log)
    ]
    no_log = dict(blind, logs=[])
    with pytest.raises(NodeError, match=f"MaxLevelStore=crit: the {product.jail} jail"):
        plan_node(settings(sshd_enabled=False), no_log, [])
    with pytest.raises(NodeError, match="auth.log does not exist"):
        plan_node(settings(backend="file"), node(variant, logs=[]), [])


@pytest.mark.parametrize("variant, product", [("pbs", PBS), ("pdm", PDM)])
def test_an_old_or_unknown_release_is_warned_about_forged_addresses(variant, product):
    old = {product.key: {"version": "3.2.4-1", "date": "Mon, 27 May 2024 15:01:02 +0200"}}
    (warning,) = plan_node(DEFAULTS, node(variant, sshd_maxauthtries=3, releases=old), []).warnings
    assert warning.startswith(f"{product.short} 3.2.4-1 of 2024-05-27: ") and "Forwarded" in warning
    (warning,) = plan_node(DEFAULTS, node(variant, sshd_maxauthtries=3, releases={}), []).warnings
    assert warning.startswith(f"the {product.short} release cannot be read")
    assert (
        plan_node(DEFAULTS, node(variant, sshd_maxauthtries=3), []).warnings == []
    )  # the lab's: fixed


def test_pmg_pve_and_pbs_together_and_a_node_running_none():
    plan = plan_node(DEFAULTS, node("pmg"), [])
    assert [(j.name, j.ports, j.filter) for j in plan.jails] == [
        ("sshd", ["22"], "sshd"),
        ("pmg", ["8006"], "pmg"),
        ("pmgproxy", ["8006"], "proxmox-access"),  # pmgproxy's log: failed tickets
    ]
    assert PMG_FILTER in render_files(plan, DEFAULTS)
    both = plan_node(DEFAULTS, node("pvepbs"), [])
    assert [j.name for j in both.jails] == ["sshd", "proxmox", "pbs", "pveproxy"]
    assert "proxmox" not in both.off
    bare = plan_node(DEFAULTS, node(products=[]), [])
    assert [j.name for j in bare.jails] == ["sshd"]
    assert any("none of Proxmox VE, Proxmox Backup Server" in w for w in bare.warnings)
    off = plan_node(settings(pbs_enabled=False), node("pbs"), [])
    assert [j.name for j in off.jails] == ["sshd"]
    assert PBS_FILTER not in render_files(off, DEFAULTS)


def test_a_pdm_node_gets_the_pdm_jail_with_its_filters_on_8443():
    plan = plan_node(DEFAULTS, node("pdm", sshd_maxauthtries=3), [])
    assert [(j.name, j.backend, j.ports, j.filter) for j in plan.jails] == [
        ("sshd", "systemd", ["22"], "sshd"),
        ("pdm", "systemd", ["8443"], "pdm"),
    ]
    files = render_files(plan, DEFAULTS)
    assert {PDM_FILTER, REST_FILTER, FILTER} <= set(files) and PBS_FILTER not in files
    jail = files[PDM_JAIL].decode()
    assert jail.splitlines()[1] == f"# {PDM.about}" and "[pdm]\n" in jail


def test_the_apt_lists_age_is_read_and_no_lists_are_refreshed():
    assert node()["apt_lists_age"] > 0
    assert node(apt_lists_age=None)["apt_lists_age"] is None  # no lists: refreshed


def test_unit_states_come_from_one_systemctl_call():
    facts = node()
    assert facts["share_activestate"] == "active" and facts["fail2ban_unitfilestate"] == "enabled"
    assert facts["exporter_activestate"] == "inactive" and "rsyslog_activestate" not in facts
    fresh = node(fresh=True)
    assert fresh["fail2ban_activestate"] == "inactive" and fresh["share_activestate"] == "inactive"


def test_a_jail_reading_files_gets_a_file_that_is_always_there_and_is_judged_without_it():
    """fail2ban 1.0 refuses to start when one jail finds none of its log files: every jail of ours
    that reads files has nodelib.NO_LOG last, which the check leaves out of the file list."""
    from pvefail2ban.jailstatus import problems
    from pvefail2ban.plan import jails_reading_nothing
    from pvefail2ban.scripts.nodelib import NO_LOG, jail_status

    facts = pve8(packages={"fail2ban": "1.0.2-2"})
    plan = plan_node(DEFAULTS, facts, ["10.213.77.11"])
    files = render_files(plan, DEFAULTS)
    assert files[NO_LOG].startswith(b"# Managed by pve-fail2ban")
    jail = files["/etc/fail2ban/jail.d/10_pveproxy.local"].decode()
    assert f"logpath   = /var/log/pveproxy/access.log\n            {NO_LOG}\n" in jail
    assert NO_LOG not in files[SSHD_JAIL].decode()  # the journal: no file at all
    answer = [("Filter", [("Currently failed", 0), ("File list", [NO_LOG])]), ("Actions", [])]
    blind = jail_status(answer)
    assert blind["file_list"] is None
    seeing = jail_status([("Filter", [("File list", ["/var/log/x.log", NO_LOG])])])
    assert seeing["file_list"] == ["/var/log/x.log"]
    check = {**facts["check"], "jails": ["sshd", "proxmox", "pveproxy"]}
    check["status"] = {
        **check["status"],
        "pveproxy": {**check["status"]["pveproxy"], "file_list": None},
    }
    assert [j.name for j in jails_reading_nothing(plan, check)] == ["pveproxy"]
    assert jails_reading_nothing(plan, facts["check"]) == []
    assert jails_reading_nothing(plan, {"ping": False}) == [] == jails_reading_nothing(plan, None)
    # a log the deploy does not make and that is still missing: a restart would not help, and is
    # not made at every run; there again, it is
    recidive = plan_node(settings(recidive_enabled=True), facts, ["10.213.77.11"])
    check["jails"] += ["recidive"]
    check["status"]["recidive"] = {"file_list": None}
    gone = {"/var/log/fail2ban.log"}
    assert "recidive" not in [j.name for j in jails_reading_nothing(recidive, check, gone)]
    assert "recidive" in [j.name for j in jails_reading_nothing(recidive, check, set())]
    # the deploy makes pveproxy's access log: restarted to read it, missing or not
    assert "pveproxy" in [
        j.name for j in jails_reading_nothing(plan, check, {"/var/log/pveproxy/access.log"})
    ]
    said = problems({**check, "rules": {"pveproxy": True}}, ["pveproxy"], [], "nft")
    assert said == [
        "jail pveproxy reads no live source (no journal match, no existing log file: a log "
        "missing when fail2ban started is read from its next start on)"
    ]


IP_OUTPUT = """\
2: eth0    inet 192.0.2.20/24 brd 192.0.2.255 scope global dynamic eth0\\       valid_lft 86000sec
2: eth0    inet6 2001:db8:a:b:1c2d:3e4f:5a6b:7c8d/64 scope global temporary dynamic \\       valid_lft 86000sec
2: eth0    inet6 2001:db8:a:b:9999:8888:7777:6666/64 scope global temporary deprecated dynamic \\       valid_lft 100sec
2: eth0    inet6 2001:db8:a:b:211:22ff:fe33:4455/64 scope global dynamic mngtmpaddr noprefixroute \\       valid_lft 86000sec
3: wg0    inet6 2001:db8:ffff::7/128 scope global \\       valid_lft forever preferred_lft forever
3: wg0    inet6 garbage;rm -rf /64 scope global \\       valid_lft forever
"""


def test_the_controllers_privacy_addresses_are_covered_by_their_64():
    """A workstation sends from today's temporary IPv6 address: the /64 they are made in is never
    banned, beside each stable address; nothing unparsable gets in."""
    from pvefail2ban.node import global_addresses

    assert global_addresses(IP_OUTPUT) == ["192.0.2.20", "2001:db8:ffff::7", "2001:db8:a:b::/64"]
    plan = plan_node(DEFAULTS, pve8(), ["10.213.77.11"], global_addresses(IP_OUTPUT))
    assert "2001:db8:a:b::/64" in plan.ignoreip and "192.0.2.20" in plan.ignoreip
