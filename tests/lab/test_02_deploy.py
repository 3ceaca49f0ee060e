"""The deploy on the lab: converge from nothing, idempotence, files, backends, bans end to end,
lockout protection, hostile input, a failing configuration, bad settings, --dry."""

import re
import subprocess
import time

import pytest

from lab import attack, config
from lab.checks import banned, ops_with_changes, wait_for
from lab.config import ROOT
from pvefail2ban.plan import sha1

MANAGED = [
    "/etc/fail2ban/jail.d/01_sshd.local",
    "/etc/fail2ban/jail.d/02_proxmox.local",
    "/etc/fail2ban/jail.d/03_recidive.local",
    "/etc/fail2ban/filter.d/proxmox.conf",
]


@pytest.fixture(scope="module")
def converged(lab_control):
    """A fresh lab (one node of each variant), converged once from nothing."""
    lab_control.up(data=config.PER_NODE_COUNT)
    first = lab_control.pyinfra()
    return lab_control, first


@pytest.fixture
def lab(converged):
    return converged[0]


@pytest.fixture
def nodes(lab):
    return lab.nodes()


@pytest.fixture
def attacker(lab):
    return lab.attacker()


def snapshot(node):
    """What must not move when nothing changes: our files' bytes/modes and fail2ban's MainPID."""
    _, files = node.sh(
        "cd /etc/fail2ban && find jail.d filter.d -type f | sort | xargs sha1sum; "
        "stat -c '%n %a %U:%G' jail.d/* filter.d/proxmox*"
    )
    _, pid = node.sh("systemctl show -p MainPID --value fail2ban")
    return files, pid.strip()


def unban_all(node):
    node.sh("fail2ban-client unban --all")


@pytest.mark.slice
def test_first_run_converges_every_variant(converged):
    lab, first = converged
    assert first.returncode == 0, first.text
    for node in lab.nodes():
        assert re.search(
            rf"\[{node.name}\] fail2ban \d[\d.]+; sshd \[.*\] failed \d+/\d+ banned", first.text
        ), node.name


def test_second_run_changes_nothing_and_does_not_restart(lab, nodes):
    before = [snapshot(n) for n in nodes]
    second = lab.pyinfra("-vv")  # -vv prints every command sent (">>> ...")
    assert second.returncode == 0, second.text
    assert ops_with_changes(second.text) == []
    assert [snapshot(n) for n in nodes] == before
    # one SSH command per node: the fact, whose record of the check stands where nothing changed
    for node in nodes:
        assert len(re.findall(rf"^\[{node.name}\]\s+>>> ", second.text, re.M)) == 1, node.name
    # nothing on disk changed since the test that passed: not parsed again, and the summary says so
    for node in nodes:
        assert re.search(
            rf"\[{node.name}\] fail2ban .*; config test passed \(unchanged since ", second.text
        )


def test_a_configuration_changed_since_its_last_test_is_tested_again(lab, nodes):
    node = nodes[0]
    node.sh(
        "printf '[broken]\\nenabled = true\\nfilter = no-such-filter\\nlogpath = /var/log/auth.log\\n'"
        " > /etc/fail2ban/jail.d/zz-later.conf"
    )
    try:
        run = lab.pyinfra()
        assert run.returncode != 0
        assert (
            f"[{node.name}] NOT PROTECTED: the configuration on disk fails `fail2ban-client -t`"
            in run.text
        )
    finally:
        node.sh("rm -f /etc/fail2ban/jail.d/zz-later.conf")
    again = lab.pyinfra()
    assert again.returncode == 0
    assert re.search(
        rf"\[{node.name}\] fail2ban .*; config test passed \(unchanged since ", again.text
    )


def test_files_have_the_managed_bytes_owner_and_mode(nodes):
    filter_bytes = (ROOT / "pvefail2ban/files/etc/fail2ban/filter.d/proxmox.conf").read_bytes()
    for node in nodes:
        for path in MANAGED:
            rc, out = node.sh(f"stat -c '%a %U %G' {path}")
            assert (rc, out.strip()) == (0, "644 root root"), f"{node.name}:{path}"
        _, out = node.sh("sha1sum /etc/fail2ban/filter.d/proxmox.conf")
        assert out.split()[0] == sha1(filter_bytes)
        _, jail = node.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")
        assert (
            "port      = 443,80,8006" in jail
            and "maxretry  = 3" in jail
            and "bantime   = 600" in jail
        )


@pytest.mark.parametrize(
    "variant,sshd_source,proxmox_source",
    [
        ("pve8", "Journal matches", "Journal matches"),
        ("pve9", "Journal matches", "Journal matches"),
        ("legacy", "File list:\t/var/log/auth.log", "File list:\t/var/log/daemon.log"),
    ],
)
def test_each_variant_reads_its_own_log_source(nodes, variant, sshd_source, proxmox_source):
    node = next(n for n in nodes if n.variant == variant)
    assert sshd_source in node.sh("fail2ban-client status sshd")[1]
    assert proxmox_source in node.sh("fail2ban-client status proxmox")[1]
    assert "nftables-multiport" in node.sh("cat /etc/fail2ban/jail.d/01_sshd.local")[1]


def applied(node):
    """`fail2ban-client -d`: the configuration as fail2ban applies it, {(jail, key): value} for the
    `set` commands, plus ("jails", name) for every jail it starts and (jail, "actions") {action: its settings}."""
    import ast

    out = {}
    for line in node.sh("fail2ban-client -d 2>/dev/null")[1].splitlines():
        command = ast.literal_eval(line)
        if command[0] == "start":
            out[("jails", command[1])] = True
        elif command[0] == "add":
            out[(command[1], "backend")] = command[2]
        elif command[0] == "set" and command[2:3] == ["addlogpath"]:  # one per file, in order
            out.setdefault((command[1], "addlogpath"), []).append(command[3])
        elif command[0] == "set" and len(command) >= 4:
            out[(command[1], command[2])] = command[3:] if len(command) > 4 else command[3]
        elif command[0] == "multi-set" and command[2] == "action":
            out.setdefault((command[1], "actions"), {})[command[3]] = dict(command[4])
    return out


SETTINGS = {
    "fail2ban_sshd_maxretry": "4",
    "fail2ban_sshd_bantime": "7m",
    "fail2ban_findtime": "9m",
    "fail2ban_sshd_port": "[22,2222]",
    "fail2ban_proxmox_maxretry": "5",
    "fail2ban_proxmox_bantime": "1234",
    "fail2ban_ignoreip": '["198.51.100.0/24"]',
}


def test_every_setting_of_ours_is_what_fail2ban_applies_on_every_variant(lab, nodes):
    """Read back from `fail2ban-client -d`, after whatever the distribution ships (Debian 13's
    defaults-debian.conf sets sshd's backend and journalmatch, and is read after jail.d/*.conf)."""
    run = lab.pyinfra(
        *[arg for key, value in SETTINGS.items() for arg in ("--data", f"{key}={value}")]
    )
    try:
        assert run.returncode == 0, run.report
        for node in nodes:
            got = applied(node)
            journal = node.variant != "legacy"
            assert got[("sshd", "maxretry")] == 4 and got[("sshd", "bantime")] == "7m", node.name
            assert got[("sshd", "findtime")] == "9m" and got[("proxmox", "findtime")] == "9m"
            assert got[("proxmox", "maxretry")] == 5 and got[("proxmox", "bantime")] == "1234"
            assert got[("sshd", "backend")] == ("systemd" if journal else "auto"), node.name
            if journal:
                assert got[("sshd", "addjournalmatch")] == [
                    "_SYSTEMD_UNIT=ssh.service", "+", "_COMM=sshd", "_UID=0", "+",
                    "_COMM=sshd-session", "_UID=0", "+", "SYSLOG_IDENTIFIER=sshd", "_UID=0", "+",
                    "SYSLOG_IDENTIFIER=sshd-session", "_UID=0",
                ], node.name  # fmt: skip
            else:
                # and the file that is always there (nodelib.NO_LOG), last
                assert got[("sshd", "addlogpath")] == [
                    "/var/log/auth.log", "/etc/fail2ban/pve-fail2ban-no-log"
                ], node.name  # fmt: skip
            for jail, ports in (("sshd", "22,2222"), ("proxmox", "443,80,8006")):
                actions = got[(jail, "actions")]
                assert sorted(actions) == ["nftables-multiport", "pve-fail2ban-share"], actions
                props = actions["nftables-multiport"]
                assert props["port"] == ports, (node.name, jail)
                assert props["blocktype"] == "reject with tcp reset"
                assert actions["pve-fail2ban-share"]["name"] == jail  # cluster-wide bans
                assert "198.51.100.0/24" in got[(jail, "addignoreip")]
    finally:
        back = lab.pyinfra()
    assert back.returncode == 0, back.report


def test_sshd_off_means_no_sshd_jail_on_every_variant(lab, nodes):
    run = lab.pyinfra("--data", "fail2ban_sshd_enabled=False")
    try:
        assert run.returncode == 0, run.report
        for node in nodes:
            assert ("jails", "sshd") not in applied(node), node.name
            assert "Jail list:\tproxmox" in node.sh("fail2ban-client status")[1], node.name
            # the summary names every jail that runs: only proxmox now
            assert re.search(rf"\[{node.name}\] fail2ban [\d.]+; proxmox \[", run.text), node.name
        # one judge: status.py reads the deploy's record of what it set up, as the check did
        status = lab.pyinfra(deploy="status.py")
        assert status.returncode == 0 and "missing" not in status.text, status.report
        # a jail of that record stopped by hand: the check and status both say so
        nodes[0].sh("fail2ban-client stop proxmox", check=True)
        status = lab.pyinfra(deploy="status.py")
        assert status.returncode != 0, status.report
        assert f"{nodes[0].name}: jail proxmox is missing" in status.text, status.report
        check = lab.pyinfra("--limit", nodes[0].name, "--data", "fail2ban_sshd_enabled=False")
        assert check.returncode != 0, check.report
        assert "NOT PROTECTED: jail proxmox is not running" in check.text, check.report
        nodes[0].sh("fail2ban-client reload", check=True)
    finally:
        back = lab.pyinfra()
    assert back.returncode == 0, back.report
    assert all(("jails", "sshd") in applied(n) for n in nodes)


def running_jails(node):
    out = node.sh("fail2ban-client status")[1]
    return sorted(j.strip() for j in out.split("Jail list:", 1)[-1].split(","))


def test_each_setting_that_adds_or_removes_a_jail_is_judged_by_the_deploys_record(
    lab, nodes, tmp_path
):
    """One judge, one node per setting in one run: a product off (pve1), its access log off
    (pve2), recidive on (pve3). The check passes, status.py finds nothing missing; a jail of the
    record stopped by hand on each node: status names it on each. (sshd off: the test above;
    a proxy's jail: tests/lab/test_15_proxy.py.)"""
    settings = {
        "pve1": ("fail2ban_proxmox_enabled", False, "proxmox", "sshd"),
        "pve2": ("fail2ban_proxmox_access_log", False, "pveproxy", "proxmox"),
        "pve3": ("fail2ban_recidive_enabled", True, "recidive", "recidive"),
    }  # node: (setting, value, the jail it adds or removes, a jail of the record to stop)
    data = {
        n.name: {**config.PER_NODE_COUNT, settings[n.name][0]: settings[n.name][1]} for n in nodes
    }
    inventory = lab.write_inventory(nodes, host_data=data, path=tmp_path / "inventory.py")
    try:
        run = lab.pyinfra(inventory=inventory)
        assert run.returncode == 0, run.report
        for node in nodes:
            setting, value, jail, _ = settings[node.name]
            assert (jail in running_jails(node)) is value, (node.name, running_jails(node))
        status = lab.pyinfra(deploy="status.py", inventory=inventory)
        assert status.returncode == 0 and "missing" not in status.text, status.report
        for node in nodes:
            node.sh(f"fail2ban-client stop {settings[node.name][3]}", check=True)
        status = lab.pyinfra(deploy="status.py", inventory=inventory)
        assert status.returncode != 0, status.report
        for node in nodes:
            assert f"{node.name}: jail {settings[node.name][3]} is missing" in status.text, (
                status.report
            )
        for node in nodes:
            node.sh("fail2ban-client reload", check=True)
    finally:
        back = lab.pyinfra()
    assert back.returncode == 0, back.report
    assert all("recidive" not in running_jails(n) for n in nodes)


def test_a_jail_of_the_admins_own_is_named_in_the_summary(lab, nodes):
    node = nodes[0]
    node.sh(
        "printf '[mine]\\nenabled = true\\nfilter = sshd\\nbackend = systemd\\n' > /etc/fail2ban/jail.d/50_mine.conf"
        " && fail2ban-client reload"
    )
    try:
        run = lab.pyinfra()
        assert run.returncode == 0, run.report
        assert re.search(rf"\[{node.name}\] fail2ban .*; mine \(not ours\) \[journal\]", run.text)
    finally:
        node.sh("rm -f /etc/fail2ban/jail.d/50_mine.conf && fail2ban-client reload")


def test_jails_in_the_place_of_earlier_releases_are_moved_in_one_tested_step(lab, nodes):
    """Earlier releases (and the guide) wrote jail.d/01_sshd.conf and 02_proxmox.conf."""
    node = nodes[1]
    node.sh(
        "cd /etc/fail2ban/jail.d && cp 01_sshd.local 01_sshd.conf && cp 02_proxmox.local 02_proxmox.conf "
        "&& rm 01_sshd.local 02_proxmox.local && systemctl restart fail2ban",
        check=True,
    )
    run = lab.pyinfra()
    assert run.returncode == 0, run.report
    listing = node.sh("ls /etc/fail2ban/jail.d")[1].split()
    assert "01_sshd.conf" not in listing and "02_proxmox.conf" not in listing
    assert {"01_sshd.local", "02_proxmox.local"} <= set(listing)
    assert "Jail list:\tproxmox, pveproxy, sshd" in node.sh("fail2ban-client status")[1]


@pytest.mark.parametrize(
    "variant", [pytest.param("pve8", marks=pytest.mark.slice), "pve9", "legacy"]
)
def test_ssh_brute_force_is_refused_then_unbanned(lab, nodes, attacker, variant):
    node = next(n for n in nodes if n.variant == variant)
    unban_all(node)
    assert attack.port_open(attacker, node, 22)
    attack.ssh_login(attacker, node, "root", "guess", count=3)
    assert wait_for(lambda: not attack.port_open(attacker, node, 22)), "attacker still reaches sshd"
    assert banned(node, "sshd") == [config.ATTACKER_IP]
    assert subprocess.run(lab.ssh_command(node, "true"), timeout=30).returncode == 0, (
        "controller locked out"
    )
    assert node.sh(f"fail2ban-client set sshd unbanip {config.ATTACKER_IP}")[0] == 0
    assert wait_for(lambda: attack.port_open(attacker, node, 22))


@pytest.mark.parametrize("variant", ["pve8", "pve9", "legacy"])
def test_web_brute_force_is_refused_then_unbanned(nodes, attacker, variant):
    node = next(n for n in nodes if n.variant == variant)
    unban_all(node)
    codes = attack.web_login(attacker, node, "root@pam", "guess", count=3)
    # the third failure tips the ban: its own answer may come after the ban and never arrive
    assert codes[:2] == ["401", "401"] and codes[2] in ("401", "000"), codes
    assert wait_for(lambda: not attack.port_open(attacker, node, 8006)), (
        "attacker still reaches 8006"
    )
    assert banned(node, "proxmox") == [config.ATTACKER_IP]
    assert node.sh(f"fail2ban-client set proxmox unbanip {config.ATTACKER_IP}")[0] == 0
    assert wait_for(lambda: attack.port_open(attacker, node, 8006))


def test_the_controller_is_never_banned(lab, nodes, tmp_path):
    key = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    for node in nodes:
        attack.controller_fails(node.ip, key)
    for node in nodes:
        assert config.GATEWAY not in banned(node, "sshd") + banned(node, "proxmox")
        assert subprocess.run(lab.ssh_command(node, "true"), timeout=30).returncode == 0


def test_a_peer_node_is_never_banned(nodes):
    target, peer = nodes[0], nodes[1]
    for _ in range(4):
        peer.sh(
            f"curl -sk -o /dev/null --max-time 5 -d 'username=root@pam&password=x' "
            f"https://{target.ip}:8006/api2/json/access/ticket"
        )
    time.sleep(1)
    assert peer.ip not in banned(target, "proxmox")
    assert peer.sh(f"timeout 3 bash -c 'exec 3<>/dev/tcp/{target.ip}/8006'")[0] == 0


def test_a_hostile_user_name_bans_only_the_attacker(nodes, attacker):
    node, peer = nodes[0], nodes[1]
    unban_all(node)
    hostile = f"x rhost={peer.ip} user=root@pam"
    attack.web_login(attacker, node, hostile, count=3)
    assert wait_for(lambda: banned(node, "proxmox")) == [config.ATTACKER_IP]
    assert peer.sh(f"timeout 3 bash -c 'exec 3<>/dev/tcp/{node.ip}/8006'")[0] == 0
    unban_all(node)


def test_a_configuration_fail2ban_rejects_never_goes_live(lab, nodes, attacker):
    """A hand-written broken jail on one node + a settings change: that node keeps its files, its
    running fail2ban and its bans, and fails naming fail2ban's error; the others converge."""
    node, others = nodes[0], nodes[1:]
    node.sh(
        "printf '[broken]\\nenabled = true\\nfilter = no-such-filter\\nlogpath = /var/log/auth.log\\n'"
        " > /etc/fail2ban/jail.d/zz-broken.conf"
    )
    node.sh("fail2ban-client set sshd banip 192.0.2.99")
    before = snapshot(node)
    try:
        run = lab.pyinfra("--data", "fail2ban_proxmox_maxretry=4")
        assert run.returncode != 0
        assert "no-such-filter" in run.text and "nothing was changed" in run.text
        assert snapshot(node)[0].replace("zz-broken.conf", "") == before[0].replace(
            "zz-broken.conf", ""
        )
        assert snapshot(node)[1] == before[1], "fail2ban was restarted"
        assert "192.0.2.99" in banned(node, "sshd")
        for other in others:
            assert "maxretry  = 4" in other.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1], (
                other.name
            )
    finally:
        node.sh(
            "rm -f /etc/fail2ban/jail.d/zz-broken.conf; fail2ban-client set sshd unbanip 192.0.2.99"
        )
        back = lab.pyinfra()
    assert back.returncode == 0, back.text


@pytest.mark.parametrize(
    "key,value",
    [
        ("fail2ban_sshd_maxretry", "0"),
        ("fail2ban_proxmox_port", "70000"),
        ("fail2ban_backend", "journal"),
        ("fail2ban_ignoreip", '["10.0.0.300"]'),
        ("fail2ban_proxmox_bantime", "0"),
    ],
)
def test_bad_settings_stop_the_run_before_any_node_changes(lab, nodes, key, value):
    before = [snapshot(n) for n in nodes]
    run = lab.pyinfra("--data", f"{key}={value}")
    assert run.returncode != 0
    assert key in run.text and "nothing was changed on any node" in run.text
    assert "Beginning operation run" not in run.text
    assert [snapshot(n) for n in nodes] == before


def test_dry_run_reports_changes_and_changes_nothing(lab, nodes):
    before = [snapshot(n) for n in nodes]
    run = lab.pyinfra("--dry", "--data", "fail2ban_sshd_maxretry=5", yes=False)
    assert run.returncode == 0, run.text
    changes = run.text.split("--> Detected changes:")[1]
    assert re.search(r"Jails and proxmox filter in place.*\s3 \(pve1, pve2, pve3\)", changes)
    assert "Beginning operation run" not in run.text
    assert [snapshot(n) for n in nodes] == before


def test_rolling_run_stops_at_the_first_failure(lab, nodes):
    """The README's cautious rollout: --limit one node first, then --serial --fail-percent 0."""
    first, rest = nodes[0], nodes[1:]
    jail = "cat /etc/fail2ban/jail.d/02_proxmox.local"
    try:
        limited = lab.pyinfra("--limit", first.name, "--data", "fail2ban_proxmox_maxretry=4")
        assert limited.returncode == 0, limited.text
        assert "maxretry  = 4" in first.sh(jail)[1]
        assert all("maxretry  = 3" in n.sh(jail)[1] for n in rest)

        first.sh(
            "printf '[broken]\\nenabled = true\\nfilter = no-such-filter\\nlogpath = /var/log/auth.log\\n'"
            " > /etc/fail2ban/jail.d/zz-broken.conf"
        )
        rolling = lab.pyinfra(
            "--serial", "--fail-percent", "0", "--data", "fail2ban_proxmox_maxretry=5"
        )
        assert rolling.returncode != 0 and "no-such-filter" in rolling.text
        assert "maxretry  = 4" in first.sh(jail)[1]
        # --serial takes the nodes one by one (in pyinfra's order): the nodes done before the failed
        # one carry the change, no node after it was touched.
        run = rolling.text.split("--> Beginning operation run")[1]
        failed_at = run.index(f"[{first.name}] Error")
        for node in rest:
            done_before = f"[{node.name}] fail2ban " in run[:failed_at]
            assert f"[{node.name}]" not in run[failed_at:], (
                f"{node.name} was touched after the failure"
            )
            assert ("maxretry  = 5" if done_before else "maxretry  = 3") in node.sh(jail)[1], (
                node.name
            )
    finally:
        first.sh("rm -f /etc/fail2ban/jail.d/zz-broken.conf")
        back = lab.pyinfra()
    assert back.returncode == 0, back.text
