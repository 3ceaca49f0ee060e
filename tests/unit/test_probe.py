"""scripts/probe.py, as the node runs it (one program: nodelib's text in front, facts.bundled):
fail2ban's answers read safely, the check's pure parts, and the facts command run for real on
this machine and parsed as the deploy parses a node."""

import json
import pickle
import shutil
import subprocess
import types

import pytest

from pvefail2ban.facts import MAX_BYTES, NODE_COMMAND, bundled, node_command, parse_node

probe = types.ModuleType("probe")
exec(compile(bundled("probe.py"), "probe.py", "exec"), probe.__dict__)


def test_the_source_of_a_jail_is_read_from_its_status():
    answer = [
        ("Filter", [("Currently failed", 1), ("Journal matches", ["_SYSTEMD_UNIT=ssh.service + _COMM=sshd"])]),
        ("Actions", [("Currently banned", 0), ("Banned IP list", [])]),
    ]  # fmt: skip
    jail = probe.jail_status(answer)
    assert probe.source_of(jail) == ("journal", ["_SYSTEMD_UNIT=ssh.service", "+", "_COMM=sshd"])
    assert probe.source_of(probe.jail_status([("Filter", [("File list", [])])])) is None


class Address(str):
    """As fail2ban's IPAddr: a str subclass that pickles as a plain str."""

    def __reduce__(self):
        return (str, (str(self),))


class Evil:
    def __reduce__(self):
        return (print, ("loaded",))


def test_answers_load_strings_and_numbers_and_nothing_else():
    data = pickle.dumps((0, [("Banned IP list", [Address("192.0.2.7")])]), 4)
    assert probe.Answer(__import__("io").BytesIO(data)).load() == (
        0,
        [("Banned IP list", ["192.0.2.7"])],
    )
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        probe.Answer(__import__("io").BytesIO(pickle.dumps((0, Evil()), 4))).load()


def test_an_ignoreip_entry_fail2ban_dies_on_is_named():
    good = (
        "['set', 'sshd', 'addignoreip', '127.0.0.1/8', '::1', '10.213.77.1', 'pve2.example.com']\n"
    )
    assert probe.bad_ignoreip(good + "['set', 'sshd', 'maxretry', 3]\n") == []
    bad = probe.bad_ignoreip("['set', 'sshd', 'addignoreip', '@docker/abc', '10.0.0.1']\n")
    assert bad == ["jail sshd: ignoreip entry '@docker/abc' is no address, CIDR or host name"]


def test_lines_that_are_not_utf8_never_stop_the_check(tmp_path):
    """Log lines carry what attackers send: bytes that are no UTF-8 are read, not fatal."""
    code, out, _ = probe.run("printf", "Invalid user \\377\\376 from 192.0.2.7\\n")
    assert code == 0 and out.startswith("Invalid user ") and "192.0.2.7" in out
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(b"line %d \xff\n" % i for i in range(300)))
    lines = probe.read_tail(str(log), 100 << 10)[-100:]
    assert len(lines) == 100 and lines[-1].startswith("line 299 ")


def test_a_changelog_gives_the_release_and_its_date(tmp_path):
    import gzip

    path = tmp_path / "changelog.gz"
    path.write_bytes(gzip.compress(
        b"proxmox-datacenter-manager (1.1.7) trixie; urgency=medium\n\n  * x\n\n"
        b" -- Proxmox Support Team <support@proxmox.com>  Thu, 21 Aug 2026 12:00:00 +0200\n"
    ))  # fmt: skip
    assert probe.release(str(path)) == {
        "version": "1.1.7",
        "date": "Thu, 21 Aug 2026 12:00:00 +0200",
    }
    assert probe.release(str(tmp_path / "none.gz")) is None


def test_the_facts_command_runs_and_parses_here():
    """The deploy's own command, run on this machine as on a node: one JSON document that the
    deploy parses, whatever this machine has (no fail2ban here: the check says it does not
    answer, and the facts still stand)."""
    done = subprocess.run(
        ["sh", "-c", NODE_COMMAND.get_raw_value()], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["python3"] is True and isinstance(doc["units"], dict)
    facts = parse_node(done.stdout)
    assert facts["os_id"] == "debian" and facts["check"]["ping"] is False


def node_path(tmp_path, python3=None):
    """A PATH with the node's coreutils the command uses, and `python3` (a script) or none."""
    for tool in ("head", "timeout", "sleep", "yes"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    if python3:
        (tmp_path / "python3").write_text(f"#!/bin/sh\n{python3}\n")
        (tmp_path / "python3").chmod(0o755)
    return str(tmp_path)


def test_a_node_without_python3_says_so(tmp_path):
    done = subprocess.run(
        ["/bin/sh", "-c", NODE_COMMAND.get_raw_value()],
        capture_output=True,
        text=True,
        env={"PATH": node_path(tmp_path)},  # no python3, as on a node without it
        timeout=60,
    )
    assert parse_node(done.stdout)["python3"] is False


def test_a_python3_that_never_returns_is_ended_on_the_node(tmp_path):
    """Bounded on the node too (the controller's _timeout fails the node first): a hung python3 is
    killed, not left behind at every run."""
    done = subprocess.run(
        ["/bin/sh", "-c", node_command(seconds=1).get_raw_value()],
        capture_output=True,
        env={"PATH": node_path(tmp_path, python3="exec sleep 1000")},
        timeout=60,  # a bound of the test; the command ends after 1 + 5 s
    )
    assert done.stdout == b""
    with pytest.raises(ValueError, match="not the probe's JSON"):
        parse_node(done.stdout.decode())


def test_a_python3_that_prints_without_end_is_cut_on_the_node_and_refused(tmp_path):
    """Cut at MAX_BYTES + 1 bytes while it is read (the controller never buffers more), and
    refused whole."""
    done = subprocess.run(
        ["/bin/sh", "-c", NODE_COMMAND.get_raw_value()],
        capture_output=True,
        env={"PATH": node_path(tmp_path, python3="exec yes '{\"python3\": true}'")},
        timeout=60,
    )
    assert len(done.stdout) == MAX_BYTES + 1
    with pytest.raises(ValueError, match=f"more than {MAX_BYTES} bytes"):
        parse_node(done.stdout.decode())


def test_a_failure_from_loopback_is_told_but_not_the_canarys():
    from_loopback = probe.FROM_LOOPBACK.search
    for line in (
        "pvedaemon[1]: authentication failure; rhost=::ffff:127.0.0.1 user=root@pam msg=x",
        "pvedaemon[1]: authentication failure; rhost=127.0.0.1 user=root@pam msg=x",
        "pvedaemon[1]: authentication failure; rhost=::1 user=root@pam msg=x",
        "proxmox-backup-api[1]: authentication failure; rhost=[::ffff:127.0.0.1]:4 user=x msg=y",
        '::ffff:127.0.0.1 - - [24/11/2026:21:52:11 +0000] "GET /api2/json/nodes HTTP/1.1" 401 -',
        '::1 - - [24/11/2026:21:52:11 +0000] "GET /api2/json/nodes HTTP/1.1" 401 -',
    ):
        assert from_loopback(line), line
    for line in (
        "pvedaemon[1]: authentication failure; rhost=::ffff:127.0.0.254 user=canary msg=x",
        "pvedaemon[1]: authentication failure; rhost=::ffff:192.0.2.1 user=root@pam msg=x",
        "pvedaemon[1]: authentication failure; rhost=::10 user=root@pam msg=x",
        '::ffff:192.0.2.1 - - [24/11/2026:21:52:11 +0000] "GET /127.0.0.1 HTTP/1.1" 401 -',
        '::10 - - [24/11/2026:21:52:11 +0000] "GET /api2/json/nodes HTTP/1.1" 401 -',
    ):
        assert not from_loopback(line), line


def test_a_failure_from_a_trusted_proxy_is_told_but_not_before_pveproxy_named_the_clients():
    import ipaddress

    nets = [ipaddress.ip_network("192.0.2.80/32"), ipaddress.ip_network("10.10.0.0/24")]
    line = '::ffff:192.0.2.80 - - [24/11/2026:21:52:11 +0000] "GET /api2/json/nodes HTTP/1.1" 401 -'
    assert probe.from_proxy(line, nets) and probe.from_proxy(
        line.replace("192.0.2.80", "10.10.0.9"), nets
    )
    assert probe.from_proxy(
        "pbs-api[1]: authentication failure; rhost=[::ffff:192.0.2.80]:4 msg=x", nets
    )
    assert not probe.from_proxy(line.replace("192.0.2.80", "192.0.2.81"), nets)
    assert not probe.from_proxy('x - - [24/11/2026:21:52:11 +0000] "GET / HTTP/1.1" 401 -', nets)
    written = 1795557131  # 2026-11-24 21:52:11 UTC
    assert probe.logged_before(line, written + 1) and not probe.logged_before(line, written)
    assert not probe.logged_before("pvedaemon[1]: authentication failure; rhost=::1", written + 1)


def test_a_user_name_that_reads_like_loopback_is_no_loopback():
    line = "pvedaemon[1]: authentication failure; rhost=::ffff:203.0.113.50 user=rhost=127.0.0.1@pam msg=x"
    assert not probe.FROM_LOOPBACK.search(line)
