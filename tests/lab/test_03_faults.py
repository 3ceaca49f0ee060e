"""Faults and bad input: nothing lost, nobody locked out, no wrong ban.

Tests run in file order: first on fresh nodes (bad settings, apt lock), then on a converged lab.
"""

import re
import subprocess
import sys
import time

import pytest

from lab import attack, config
from lab.checks import banned, wait_for

FRESH_STATE = (
    "dpkg-query -W -f='${db:Status-Abbrev}' fail2ban 2>/dev/null; ls /etc/fail2ban 2>&1 | head -1"
)

BAD_SETTINGS = [
    ("fail2ban_sshd_maxretry", "0"),
    ("fail2ban_sshd_maxretry", "-2"),
    ("fail2ban_proxmox_maxretry", '"three"'),
    ("fail2ban_sshd_enabled", '"yes"'),
    ("fail2ban_proxmox_port", "0"),
    ("fail2ban_proxmox_port", "70000"),
    ("fail2ban_proxmox_port", "[]"),
    ("fail2ban_sshd_port", '["22;rm -rf /"]'),
    ("fail2ban_ignoreip", '["10.0.0.256"]'),
    ("fail2ban_ignoreip", '["192.0.2.0/40"]'),
    ("fail2ban_ignoreip", '["not a host"]'),
    ("fail2ban_backend", "journal"),
    ("fail2ban_banaction", "ufw"),
    ("fail2ban_proxmox_bantime", "0"),
    ("fail2ban_sshd_bantime", "-10"),
    ("fail2ban_findtime", '"soon"'),
    ("fail2ban_recidive_maxretry", "0"),
    ("fail2ban_apt_lock_timeout", "-1"),
    ("fail2ban_sshd_maxretries", "5"),
]


@pytest.fixture(scope="module")
def fresh(lab_control):
    """A fresh lab: three nodes without fail2ban."""
    lab_control.up(data=config.PER_NODE_COUNT)
    return lab_control


def test_bad_settings_are_refused_before_any_fresh_node_changes(fresh):
    nodes = fresh.nodes()
    before = [n.sh(FRESH_STATE)[1] for n in nodes]
    assert all("No such file" in state for state in before)
    for key, value in BAD_SETTINGS:
        run = fresh.pyinfra("--data", f"{key}={value}")
        assert run.returncode != 0, (key, value)
        shown = run.text.split("pyinfra error:")[-1]
        assert key in shown and "nothing was changed on any node" in shown, (
            key,
            value,
            shown[-500:],
        )
        assert "Beginning operation run" not in run.text
    assert [n.sh(FRESH_STATE)[1] for n in nodes] == before, "a node changed"


def hold_dpkg_lock(node, seconds):
    """Hold dpkg's frontend lock the way apt does (fcntl), in the background, for `seconds`."""
    node.sh(
        "nohup python3 -c \"import fcntl,time; f=open('/var/lib/dpkg/lock-frontend','w'); "
        f'fcntl.lockf(f, fcntl.LOCK_EX); time.sleep({seconds})" >/dev/null 2>&1 &'
    )
    time.sleep(1)


def test_a_held_apt_lock_is_waited_for(fresh):
    node = fresh.nodes()[0]
    hold_dpkg_lock(node, 20)
    start = time.monotonic()
    run = fresh.pyinfra("--limit", node.name)
    assert run.returncode == 0, run.report
    assert time.monotonic() - start > 15, "the lock was not held long enough to prove the wait"
    assert node.sh("systemctl is-active fail2ban")[1].strip() == "active"


def test_a_lock_held_past_the_bound_fails_that_node_clearly(fresh):
    node = fresh.nodes()[1]
    hold_dpkg_lock(node, 60)
    try:
        run = fresh.pyinfra("--limit", node.name, "--data", "fail2ban_apt_lock_timeout=5")
        assert run.returncode != 0
        # apt names the lock: "Could not get lock /var/lib/dpkg/lock-frontend. It is held by process N"
        # or "Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another ...?"
        assert re.search(
            r"(Could not get lock|Unable to acquire the dpkg frontend lock).*/var/lib/dpkg/lock-frontend",
            run.text,
        ), run.report
        assert "No such file" in node.sh(FRESH_STATE)[1], "the node was changed"
    finally:
        node.sh("pkill -f lock-frontend")


@pytest.fixture(scope="module")
def lab(fresh):
    run = fresh.pyinfra()
    assert run.returncode == 0, run.report
    return fresh


def main_pid(node):
    return node.sh("systemctl show -p MainPID --value fail2ban")[1].strip()


def test_an_unreachable_node_fails_alone_and_converges_when_back(lab):
    down, *up = lab.nodes()
    down.container.stop(timeout=5)
    try:
        run = lab.pyinfra("--data", "fail2ban_proxmox_maxretry=4")
        assert run.returncode != 0
        assert re.search(
            rf"\[{down.name}\].*(Could not connect|SSH error|Connection|No route|timed out)",
            run.text,
        ), run.report
        for node in up:
            assert "maxretry  = 4" in node.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
    finally:
        down.container.start()
    lab.wait_ready(down)
    run = lab.pyinfra("--data", "fail2ban_proxmox_maxretry=4")
    assert run.returncode == 0, run.report
    assert "maxretry  = 4" in down.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
    assert lab.pyinfra().returncode == 0


ODD_SHELLS = {
    "unexpected output": ("echo this is not what the fact prints", "could not process fact"),
    "command error": ("echo boom >&2; exit 3", "could not load fact"),
}


@pytest.mark.parametrize("kind", sorted(ODD_SHELLS))
def test_a_fact_that_fails_on_one_node_fails_that_node_only(lab, kind):
    """root's login shell on one node replaced by a script: every command pyinfra sends there
    prints something else (or fails). That node fails with pyinfra's reason, the others verify."""
    body, reason = ODD_SHELLS[kind]
    odd, others = lab.nodes()[1], [n for n in lab.nodes() if n.name != lab.nodes()[1].name]
    odd.sh(
        f"printf '#!/bin/sh\\n{body}\\n' > /usr/local/bin/oddshell && chmod +x /usr/local/bin/oddshell "
        "&& usermod -s /usr/local/bin/oddshell root",
        check=True,
    )
    try:
        run = lab.pyinfra()
        status = lab.pyinfra(deploy="status.py")
    finally:
        odd.sh("usermod -s /bin/bash root", check=True)
    assert run.returncode != 0
    assert f"[{odd.name}] Error: {reason}: pvefail2ban.facts.NodeFacts" in run.text, run.text[
        -2000:
    ]
    for node in others:
        assert re.search(rf"\[{node.name}\] fail2ban [\d.]+; sshd", run.text), node.name
    assert status.returncode == 1
    assert re.search(rf"^{odd.name}\s+-\s+UNREACHABLE\s+\S", status.text, re.M), status.report
    assert all(re.search(rf"^{n.name}\s+sshd\s+up", status.text, re.M) for n in others)


def test_a_stopped_or_failed_fail2ban_is_brought_back(lab):
    stopped, failed = lab.nodes()[:2]
    stopped.sh("systemctl stop fail2ban")
    # a hand edit that breaks fail2ban, then a restart into it: the service is now failed
    failed.sh(
        "echo 'maxretry = lots' >> /etc/fail2ban/jail.d/02_proxmox.local; systemctl restart fail2ban"
    )
    assert wait_for(lambda: failed.sh("systemctl is-active fail2ban")[1].strip() == "failed")
    run = lab.pyinfra()
    assert run.returncode == 0, run.report
    assert "02_proxmox.local differs from what the settings give" in run.text
    for node in (stopped, failed):
        assert node.sh("systemctl is-active fail2ban")[1].strip() == "active"
        assert "maxretry = lots" not in node.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
        assert re.search(rf"\[{node.name}\] fail2ban [\d.]+; sshd", run.text)


def test_a_broken_extra_jail_is_reported_and_never_restarted_into(lab):
    node = lab.nodes()[2]
    pid = main_pid(node)
    node.sh(
        "printf '[mine]\\nenabled = true\\nfilter = not-there\\nlogpath = /var/log/auth.log\\n' "
        "> /etc/fail2ban/jail.d/50_mine.conf"
    )
    try:
        run = lab.pyinfra()
        assert run.returncode != 0
        assert re.search(
            rf"\[{node.name}\] NOT PROTECTED: the configuration on disk fails", run.text
        )
        assert main_pid(node) == pid, "fail2ban was restarted into a broken configuration"
        assert node.sh("systemctl is-active fail2ban")[1].strip() == "active"
    finally:
        node.sh("rm -f /etc/fail2ban/jail.d/50_mine.conf")
    assert lab.pyinfra().returncode == 0


def test_bans_survive_a_redeploy_that_restarts_unless_now_ignored(lab):
    node, attacker = lab.nodes()[0], lab.attacker()
    node.sh("fail2ban-client unban --all")
    attack.web_login(attacker, node, "root@pam", count=3)
    assert wait_for(lambda: banned(node, "proxmox")) == [config.ATTACKER_IP]
    pid = main_pid(node)
    try:
        run = lab.pyinfra("--data", "fail2ban_sshd_maxretry=4")
        assert run.returncode == 0, run.report
        assert main_pid(node) != pid, "the setting change did not restart fail2ban"
        assert wait_for(lambda: banned(node, "proxmox")) == [config.ATTACKER_IP]
        assert not attack.port_open(attacker, node, 8006)
        run = lab.pyinfra("--data", f'fail2ban_ignoreip=["{config.ATTACKER_IP}"]')
        assert run.returncode == 0, run.report
        assert wait_for(lambda: attack.port_open(attacker, node, 8006)), (
            "an ignored address stayed banned"
        )
        assert banned(node, "proxmox") == []
    finally:
        assert lab.pyinfra().returncode == 0


def test_a_changed_host_key_is_refused_and_recovery_works(lab):
    node = lab.nodes()[1]
    fresh = lab.recreate(node)
    run = lab.pyinfra("--limit", node.name)
    assert run.returncode != 0
    assert re.search(
        rf"\[{node.name}\].*(host key|Host key|not found in known_hosts|BadHostKey)", run.text
    ), run.report
    assert (
        "dpkg" not in fresh.sh("ls /etc/fail2ban 2>&1")[1] and fresh.sh("dpkg -s fail2ban")[0] != 0
    )
    # docs/how-it-works.md's recovery: check the new key, replace the old one, run again
    lab.write_known_hosts(lab.nodes())
    assert lab.pyinfra("--limit", node.name).returncode == 0


def test_crafted_ssh_user_names_ban_only_the_attacker(lab):
    node, peer = lab.nodes()[0], lab.nodes()[1]
    attacker = lab.attacker()
    node.sh("fail2ban-client unban --all")
    for user in (f"root from {config.GATEWAY} port 22", f"x from {peer.ip}", f"{peer.ip}"):
        attack.ssh_login(attacker, node, user, count=1)
    assert wait_for(lambda: banned(node, "sshd")) == [config.ATTACKER_IP]
    assert subprocess.run(lab.ssh_command(node, "true"), timeout=30).returncode == 0
    assert peer.sh(f"timeout 3 bash -c 'exec 3<>/dev/tcp/{node.ip}/22'")[0] == 0
    node.sh("fail2ban-client unban --all")


def test_web_user_names_naming_the_controller_or_a_peer_ban_only_the_attacker(lab):
    node, peer = lab.nodes()[2], lab.nodes()[0]
    attacker = lab.attacker()
    node.sh("fail2ban-client unban --all")
    for user in (
        f"x rhost={config.GATEWAY}",
        f"rhost=::ffff:{peer.ip} user=root@pam",
        f"{peer.ip}",
    ):
        attack.web_login(attacker, node, user)
    assert wait_for(lambda: banned(node, "proxmox")) == [config.ATTACKER_IP]
    node.sh("fail2ban-client unban --all")


def rss_kb(node):
    return int(node.sh("ps -o rss= -C fail2ban-server | head -1")[1].strip() or 0)


def test_a_burst_of_1000_web_logins_bans_and_fail2ban_stays_up_and_small(lab):
    node, attacker = lab.nodes()[0], lab.attacker()
    node.sh("fail2ban-client unban --all")
    before = rss_kb(node)
    # 1,000 failed logins, 50 at a time, the whole burst bounded to 10 s
    attacker.sh(
        f"seq 1000 | timeout 10 xargs -P 50 -I{{}} curl -sk -o /dev/null --max-time 3 "
        f"-d 'username=u{{}}@pve&password=x' https://{node.ip}:8006/api2/json/access/ticket",
        timeout=30,
    )
    assert wait_for(lambda: banned(node, "proxmox")) == [config.ATTACKER_IP]
    assert not attack.port_open(attacker, node, 8006)
    assert node.sh("fail2ban-client ping")[0] == 0
    after = rss_kb(node)
    print(f"fail2ban-server RSS before {before} kB, after {after} kB")
    assert after < before + 30_000, f"RSS grew from {before} to {after} kB"
    node.sh("fail2ban-client unban --all")


def test_a_node_without_systemd_fails_alone_and_is_nobodys_peer(lab, tmp_path):
    """The attacker container (Debian, no systemd as PID 1), reached through pyinfra's @docker
    connector, beside the lab nodes: it fails preflight with the reason, untouched; the nodes are
    verified and unchanged (a connector name is not added to their ignoreip)."""
    nodes, stranger = lab.nodes(), lab.attacker()
    before = [n.sh("sha1sum /etc/fail2ban/jail.d/*")[1] for n in nodes]
    inventory = tmp_path / "mixed.py"
    inventory.write_text(
        f"exec(open({str(lab.inventory_path)!r}).read())\n"
        f"pve_nodes = pve_nodes + [('@docker/{stranger.container.id}', {{}})]\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", str(inventory), "deploy.py"],
        cwd=config.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = run.stdout + run.stderr
    assert run.returncode != 0
    assert "systemd is not running as init on this node" in text
    assert stranger.sh("test -e /etc/fail2ban")[0] != 0
    for node in nodes:
        assert re.search(rf"\[{node.name}\]\s+fail2ban [\d.]+; sshd", text), node.name
    assert [n.sh("sha1sum /etc/fail2ban/jail.d/*")[1] for n in nodes] == before


def test_an_ignoreip_entry_that_passes_fail2bans_test_but_kills_its_start_is_caught(lab):
    """`fail2ban-client -t` accepts ignoreip = @docker/abc, but fail2ban-server dies at start with it.
    (Written as a .local that sorts after ours: a jail.d/*.conf could not override our ignoreip.)"""
    node = lab.nodes()[0]
    pid = main_pid(node)
    node.sh("printf '[sshd]\\nignoreip = @docker/abc\\n' > /etc/fail2ban/jail.d/60_mine.local")
    try:
        assert node.sh("fail2ban-client -t")[0] == 0  # the gap this check closes
        run = lab.pyinfra()
        assert run.returncode != 0
        assert re.search(
            rf"\[{node.name}\] NOT PROTECTED: .*ignoreip entry '@docker/abc'", run.text
        )
        changed = lab.pyinfra("--data", "fail2ban_proxmox_maxretry=4")
        assert changed.returncode != 0 and "fail2ban would fail at start" in changed.text
        assert "maxretry  = 3" in node.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
        assert (
            main_pid(node) == pid and node.sh("systemctl is-active fail2ban")[1].strip() == "active"
        )
    finally:
        node.sh("rm -f /etc/fail2ban/jail.d/60_mine.local")
    assert lab.pyinfra().returncode == 0


BOUND = 20  # fail2ban_node_timeout of the runs below (seconds)
# A run may take the bound plus this: every node's own work, on a machine running three labs.
MARGIN = 300
SICK = {
    "never returns": "exec sleep 100000",
    "prints without end": 'exec yes "{\\"python3\\": true, \\"noise\\": 1}"',
}


def pyinfra_rss(lab, *args, deploy="deploy.py"):
    """`pyinfra -y <lab inventory> <deploy> ARGS` as lab.pyinfra runs it, bounded (BOUND + MARGIN),
    and the controller's peak resident memory in MiB (its own getrusage, printed at its exit)."""
    wrapper = (
        "import atexit, resource, runpy, sys; "
        "atexit.register(lambda: print('peak-rss-kib', "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); "
        "sys.argv = ['pyinfra', *sys.argv[1:]]; runpy.run_module('pyinfra', run_name='__main__')"
    )
    run = subprocess.run(
        [sys.executable, "-c", wrapper, "-y", str(lab.inventory_path), deploy, *args],
        cwd=config.ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND + MARGIN,
        stdin=subprocess.DEVNULL,
    )
    run.text = run.stdout + run.stderr
    peak = re.findall(r"^peak-rss-kib (\d+)$", run.stderr, re.M)
    assert peak, run.report
    return run, int(peak[-1]) // 1024


def test_a_node_that_never_answers_or_never_stops_fails_alone_and_the_runs_finish(lab):
    """One node whose python3 never returns (a hung disk, an NFS mount), one whose python3 prints
    without end: every deploy and day-2 run finishes within fail2ban_node_timeout plus a margin
    (with and without --limit), fails those two naming the step and the bound, converges and
    reports the healthy node, and the controller's memory stays bounded (printed; at most 1 GiB
    asserted: the answer is cut on the node at 4 MB, before the controller reads more)."""
    healthy, hung, endless = lab.nodes()
    for node, kind in ((hung, "never returns"), (endless, "prints without end")):
        node.sh(
            f"printf '#!/bin/sh\\n%s\\n' '{SICK[kind]}' > /usr/local/bin/python3 && "
            "chmod +x /usr/local/bin/python3",
            check=True,
        )
    bound = ("--data", f"fail2ban_node_timeout={BOUND}")
    peaks = {}
    try:
        run, peaks["deploy"] = pyinfra_rss(lab, *bound)
        assert run.returncode != 0
        assert re.search(rf"\[{hung.name}\].*Command timed out after {BOUND}s", run.text), run.text[
            -3000:
        ]
        assert f"[{hung.name}] Error: could not load fact: pvefail2ban.facts.NodeFacts" in run.text
        assert re.search(rf"\[{endless.name}\].*more than 4194304 bytes", run.text), run.text[
            -3000:
        ]
        assert re.search(rf"\[{healthy.name}\]\s+fail2ban [\d.]+; sshd", run.text)
        limited, peaks["deploy --limit"] = pyinfra_rss(lab, "--limit", healthy.name, *bound)
        assert limited.returncode == 0, limited.report
        assert re.search(rf"\[{healthy.name}\]\s+fail2ban [\d.]+; sshd", limited.text)
        status, peaks["status"] = pyinfra_rss(lab, *bound, deploy="status.py")
        assert status.returncode == 1
        assert re.search(rf"^{healthy.name}\s+sshd\s+up", status.text, re.M), status.report
        assert re.search(
            rf"^{hung.name}\s+-\s+UNREACHABLE\s+no answer within {BOUND} s", status.text, re.M
        ), status.report
        assert re.search(rf"^{endless.name}\s+-\s+UNREACHABLE\s+\S", status.text, re.M)
        sync, peaks["sync"] = pyinfra_rss(lab, *bound, deploy="sync.py")
        assert f"{hung.name}: its bans are not read (no answer within {BOUND} s" in sync.text
        address = "192.0.2.98"
        ban, peaks["ban"] = pyinfra_rss(lab, *bound, "--data", f"ip={address}", deploy="ban.py")
        assert ban.returncode != 0
        assert address in banned(healthy, "sshd"), ban.report
    finally:
        for node in (hung, endless):
            node.sh("rm -f /usr/local/bin/python3; pkill -f 'sleep 100000' || true")
        for node in lab.nodes():  # the ban and its copies: nothing else changed on any node
            node.sh("fail2ban-client unban 192.0.2.98 >/dev/null || true")
    print(f"controller peak RSS (MiB): {peaks}")
    assert max(peaks.values()) < 1024, peaks
