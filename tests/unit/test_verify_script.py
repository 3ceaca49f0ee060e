"""scripts/verify.py's pure parts: fail2ban's answers read safely and printed as fail2ban-client
prints them (compared with fail2ban's own Beautifier, from the package the filter tests unpack),
and what the check read with the facts must hold before it stands for the check."""

import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest
from test_status import GOOD

from pvefail2ban.facts import NODE_COMMAND, VERIFY_MARK, bundled, parse_node
from pvefail2ban.jailstatus import complete, parse_verify

ROOT = Path(__file__).resolve().parents[2]
# verify.py as the node runs it: one program, nodelib's text in front (facts.bundled)
verify = types.ModuleType("verify")
exec(compile(bundled("verify.py"), "verify.py", "exec"), verify.__dict__)

ANSWERS = [
    (["status"], [("Number of jail", 2), ("Jail list", "proxmox, sshd")]),
    (
        ["status", "sshd"],
        [
            (
                "Filter",
                [
                    ("Currently failed", 1),
                    ("Total failed", 6),
                    ("Journal matches", ["_SYSTEMD_UNIT=ssh.service + _COMM=sshd"]),
                ],
            ),
            (
                "Actions",
                [
                    ("Currently banned", 2),
                    ("Total banned", 2),
                    ("Banned IP list", ["192.0.2.7", "2001:db8::7"]),
                ],
            ),
        ],
    ),
    (
        ["status", "proxmox"],
        [
            ("Filter", [("Currently failed", 0), ("Total failed", 0), ("File list", [])]),
            ("Actions", [("Currently banned", 0), ("Total banned", 0), ("Banned IP list", [])]),
        ],
    ),
]


def fail2bans_own(command, answer):
    """What fail2ban's Beautifier prints for `command` and `answer` (its own Python modules)."""
    regex = subprocess.run(
        ["bash", str(ROOT / "scripts/ensure-fail2ban-regex.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    modules = Path(regex).read_text().split('PYTHONPATH="')[1].split('"')[0]
    code = (
        "import pickle, sys\n"
        "from fail2ban.client.beautifier import Beautifier\n"
        "command, answer = pickle.load(sys.stdin.buffer)\n"
        "b = Beautifier(); b.setInputCmd(command); print(b.beautify(answer), end='')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        input=pickle.dumps((command, answer)),
        capture_output=True,
        env={"PYTHONPATH": modules},
        check=True,
    ).stdout.decode()


@pytest.mark.parametrize("command, answer", ANSWERS, ids=["status", "sshd", "proxmox"])
def test_statuses_print_as_fail2ban_client_prints_them(command, answer):
    assert verify.beautify(command, answer) == fail2bans_own(command, answer)


def test_the_source_of_a_jail_is_read_from_its_status():
    assert verify.source_of(ANSWERS[1][1]) == (
        "journal",
        ["_SYSTEMD_UNIT=ssh.service", "+", "_COMM=sshd"],
    )
    assert verify.source_of(ANSWERS[2][1]) is None  # no file: no live source


class Address(str):
    """As fail2ban's IPAddr: a str subclass that pickles as a plain str."""

    def __reduce__(self):
        return (str, (str(self),))


class Evil:
    def __reduce__(self):
        return (print, ("loaded",))


def test_answers_load_strings_and_numbers_and_nothing_else():
    data = pickle.dumps((0, [("Banned IP list", [Address("192.0.2.7")])]), 4)
    assert verify.Answer(__import__("io").BytesIO(data)).load() == (
        0,
        [("Banned IP list", ["192.0.2.7"])],
    )
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        verify.Answer(__import__("io").BytesIO(pickle.dumps((0, Evil()), 4))).load()


# what `verify.py read` says on a healthy node: a check's output (test_status.GOOD) with the tool it
# read with and the configuration's last test; the facts add our daemons' state
RECORDED = (
    "tool=nft\n" + GOOD + "config=unchanged 2026-11-26T09:53:43Z\ndaemon pve-fail2ban-share=active"
)


def test_the_check_read_with_the_facts_stands_only_when_nothing_is_left_to_test():
    share = {"pve-fail2ban-share": "bans shared"}
    assert complete(parse_verify(RECORDED), "nft", share)
    assert not complete(parse_verify(RECORDED), "iptables", share)  # read for another tool
    untested = RECORDED.replace("config=unchanged 2026-11-26T09:53:43Z", "config=untested")
    assert not complete(parse_verify(untested), "nft", share)  # changed since its last test
    assert not complete(parse_verify(RECORDED + "\nunchecked sshd"), "nft", share)
    assert not complete(parse_verify(RECORDED), "nft", {**share, "pve-fail2ban-events": "x"})


def test_the_fact_keeps_what_verify_read_said_apart():
    node = parse_node(["os_id=debian", "systemd=yes", VERIFY_MARK, *RECORDED.splitlines()])
    assert node["verify"] == RECORDED and node["systemd"] and node["os_id"] == "debian"
    assert "tool" not in node and parse_node(["os_id=debian"])["verify"] is None


def test_the_fact_command_succeeds_where_verify_cannot_read(tmp_path):
    """A node where verify.py fails (here: a python3 that exits 1) still gives its facts: the
    check then runs live, and the node is not failed by its fact."""
    (tmp_path / "python3").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "python3").chmod(0o755)
    done = subprocess.run(
        ["sh", "-c", NODE_COMMAND],
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path}:/usr/sbin:/usr/bin:/sbin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    node = parse_node(done.stdout.splitlines())
    assert node["os_id"] and node["verify"] == ""


def test_lines_that_are_not_utf8_never_stop_the_check(tmp_path):
    """Log lines carry what attackers send: bytes that are no UTF-8 are read, not fatal."""
    code, out, _ = verify.run("printf", "Invalid user \\377\\376 from 192.0.2.7\\n")
    assert code == 0 and out.startswith("Invalid user ") and "192.0.2.7" in out
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(b"line %d \xff\n" % i for i in range(300)))
    lines = verify.last_lines(str(log))
    assert len(lines) == 100 and lines[-1].startswith("line 299 ")
