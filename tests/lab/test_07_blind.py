"""Jails that cannot go blind: what would keep a jail from ever seeing a failure (journald dropping
the messages, sshd not logging them, rsyslog no longer writing the file) is found before going
live and fails that node with the reason and the fix, or the jail reads a source that works."""

import re

import pytest

from lab import attack, config
from lab.checks import banned, verified_nodes, wait_for

DROPIN = "/etc/systemd/journald.conf.d/50-lab-test.conf"


@pytest.fixture(scope="module")
def lab(converged_lab):
    return converged_lab


def node_of(lab, variant):
    return next(n for n in lab.nodes() if n.variant == variant)


@pytest.mark.parametrize(
    "variant,setting,reason",
    [
        (
            "pve8",
            "MaxLevelStore=warning",
            "journald has MaxLevelStore=warning: the sshd jail reads info",
        ),
        ("pve9", "Storage=none", "journald has Storage=none"),
    ],
)
def test_a_journal_that_drops_what_a_jail_reads_fails_that_node_with_the_fix(
    lab, variant, setting, reason
):
    node = node_of(lab, variant)
    node.sh(
        f"mkdir -p {DROPIN.rsplit('/', 1)[0]} && printf '[Journal]\\n{setting}\\n' > {DROPIN} "
        "&& systemctl restart systemd-journald",
        check=True,
    )
    try:
        run = lab.pyinfra()
    finally:
        node.sh(f"rm -f {DROPIN} && systemctl restart systemd-journald")
    assert run.returncode != 0
    assert re.search(
        rf"\[{node.name}\] {re.escape(node.name)}: {re.escape(reason)}.*Fix: ", run.text
    ), run.report
    assert not re.search(rf"\[{node.name}\] fail2ban [\d.]+; ", run.text), "reported as protected"
    others = [n for n in lab.nodes() if n.name != node.name]
    assert verified_nodes(run.text, others) == [n.name for n in others]
    assert lab.pyinfra().returncode == 0


def test_sshd_that_does_not_log_failed_logins_fails_that_node_with_the_fix(lab):
    node = node_of(lab, "pve9")
    node.sh(
        "printf 'LogLevel QUIET\\n' > /etc/ssh/sshd_config.d/50-lab-test.conf && systemctl reload ssh",
        check=True,
    )
    try:
        run = lab.pyinfra()
    finally:
        node.sh("rm -f /etc/ssh/sshd_config.d/50-lab-test.conf && systemctl reload ssh")
    assert run.returncode != 0
    # sshd -T names QUIET as SILENT on Debian 13's OpenSSH
    assert re.search(rf"\[{node.name}\] {node.name}: sshd has LogLevel (QUIET|SILENT)", run.text), (
        run.report
    )
    assert "Fix: LogLevel INFO" in run.text
    assert lab.pyinfra().returncode == 0


def test_a_daemon_log_rsyslog_no_longer_writes_is_not_read_the_journal_is(lab):
    """Legacy node: the daemon.log rule removed (the file stays, stale). The proxmox jail reads the
    journal instead, says why, and a web brute force is still banned and refused."""
    node, attacker = node_of(lab, "legacy"), lab.attacker()
    conf = "/etc/rsyslog.d/00-pve-legacy.conf"
    node.sh(
        f"cp {conf} /root/rsyslog-legacy.bak && sed -i '/daemon.log/d' {conf} && systemctl restart rsyslog",
        check=True,
    )
    try:
        run = lab.pyinfra()
        assert run.returncode == 0, run.report
        assert re.search(
            rf"\[{node.name}\] fail2ban [\d.]+; sshd \[/var/log/auth.log\].*; proxmox \[journal\]",
            run.text,
        ), run.report
        assert (
            "/var/log/daemon.log is no longer written by rsyslog: the journal"
            in node.sh("cat /etc/fail2ban/jail.d/02_proxmox.local")[1]
        )
        node.sh("fail2ban-client unban --all")
        attack.web_login(attacker, node, "root@pam", count=3)
        assert wait_for(lambda: banned(node, "proxmox")) == [config.ATTACKER_IP]
        assert wait_for(lambda: not attack.port_open(attacker, node, 8006))
    finally:
        node.sh(
            f"cp /root/rsyslog-legacy.bak {conf} && systemctl restart rsyslog && fail2ban-client unban --all"
        )
    back = lab.pyinfra()
    assert back.returncode == 0 and "proxmox [/var/log/daemon.log]" in back.text


def test_a_filter_of_the_nodes_own_that_finds_nothing_is_caught_by_verify(lab):
    """An admin's filter.d/proxmox.local (read after ours) whose failregex never matches: fail2ban
    runs, the jail reads pvedaemon's failures and counts none. Verify finds the failure lines in
    the jail's own source, runs fail2ban-regex with the jail's filter, and fails the node."""
    node, attacker = node_of(lab, "pve8"), lab.attacker()
    node.sh("fail2ban-client unban --all")
    assert attack.web_login(attacker, node, "root@pam", count=2) == ["401"] * 2
    node.sh(
        "printf '[Definition]\\nfailregex = ^never <HOST>$\\n' > /etc/fail2ban/filter.d/proxmox.local "
        "&& fail2ban-client reload proxmox",
        check=True,
    )
    try:
        run = lab.pyinfra()
        assert run.returncode != 0
        assert re.search(
            rf"\[{node.name}\] NOT PROTECTED: jail proxmox is blind: its source holds \d+ failure "
            r"line\(s\) of its daemon",
            run.text,
        ), run.report
        others = [n for n in lab.nodes() if n.name != node.name]
        assert verified_nodes(run.text, others) == [n.name for n in others]
    finally:
        node.sh("rm -f /etc/fail2ban/filter.d/proxmox.local && fail2ban-client reload proxmox")
    back = lab.pyinfra()
    assert back.returncode == 0, back.report
    node.sh("fail2ban-client unban --all")
