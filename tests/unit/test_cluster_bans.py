"""Cluster-wide bans: the plain logic on the controller (cluster_bans.py) and in the node scripts
(authorize.py, receive.py, share.py), without a node."""

import importlib.util
import ipaddress
import json
import math
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pvefail2ban.defaults import DEFAULTS
from pvefail2ban.facts import SCRIPTS, parse_node
from pvefail2ban.settings import validate
from pvefail2ban.share import (
    RECEIVER,
    ShareError,
    authorization,
    authorized_line,
    known_hosts,
    members,
    share_files,
)
from tests.unit.nodes import said
from tests.unit.sshkeys import ssh_key


def script(name):
    if str(SCRIPTS) not in sys.path:  # the node scripts import their helper (nodelib) beside them
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"node_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


authorize, receive, share = script("authorize"), script("receive"), script("share")
parse_attempt_record = share.parse_attempt_record
PEERS_FILE = "/etc/pve-fail2ban/share/peers.json"
ON = validate(dict(DEFAULTS))
OFF = validate({**DEFAULTS, "fail2ban_cluster_bans": False})


def facts(n, key=True, peers=None):
    return {
        "addresses": [f"192.0.2.{n}", f"2001:db8::{n}"],
        "sshd_ports": ["22"] if n != 3 else ["2222", "22"],
        "hostkeys": [ssh_key(f"HOST{n}")],
        "share_key": ssh_key(f"KEY{n}") if key else None,
        "share_peers": peers,
    }


def test_every_node_that_shares_is_a_member_as_its_peers_reach_it():
    found = members([(f"pve{n}", f"192.0.2.{n}", ON, facts(n)) for n in (1, 2, 3)])
    assert [m.name for m in found] == ["pve1", "pve2", "pve3"]
    assert found[2].port == 2222 and found[2].addresses == ["192.0.2.3", "2001:db8::3"]


def test_nobody_shares_alone_and_a_node_switched_off_is_no_member():
    assert (
        members([("pve1", "192.0.2.1", ON, facts(1)), ("pve2", "192.0.2.2", OFF, facts(2))]) == []
    )
    assert members([("pve1", "192.0.2.1", ON, facts(1))]) == []


def test_a_node_that_cannot_be_read_stays_a_member_as_its_peers_last_knew_it():
    last = [{"name": "pve3", "address": "192.0.2.3", "port": 22, "hostkeys": [ssh_key("H3")]}]
    found = members(
        [
            ("pve1", "192.0.2.1", ON, facts(1, peers=last)),
            ("pve2", "192.0.2.2", ON, facts(2)),
            ("pve3", "192.0.2.3", ON, None),
            ("pve4", "192.0.2.4", ON, None),  # never known to anyone: nothing to keep
        ]
    )
    assert [m.name for m in found] == ["pve1", "pve2", "pve3"]
    wanted = authorization(found)
    assert sorted(wanted["want"]) == ["pve1", "pve2"] and wanted["keep"] == ["pve3"]


def test_a_name_the_receiver_could_not_take_stops_the_run():
    with pytest.raises(ShareError, match="'@docker/x'"):
        members([("@docker/x", "x", ON, facts(1)), ("pve2", "192.0.2.2", ON, facts(2))])


def test_the_authorized_line_lets_the_key_run_the_receiver_only_from_its_node():
    node = members([(f"pve{n}", f"192.0.2.{n}", ON, facts(n)) for n in (1, 2)])[0]
    assert authorized_line(node) == (
        f'restrict,from="192.0.2.1,2001:db8::1",command="{RECEIVER} pve1" '
        f"{ssh_key('KEY1')} pve-fail2ban-share@pve1"
    )


def test_peers_and_their_host_keys_exclude_the_node_itself():
    found = members([(f"pve{n}", f"192.0.2.{n}", ON, facts(n)) for n in (1, 2, 3)])
    files = share_files("pve1", ["sshd"], found, SCRIPTS)
    config = json.loads(files["/etc/pve-fail2ban/share/peers.json"][0])
    assert [p["name"] for p in config["peers"]] == ["pve2", "pve3"] and config["jails"] == ["sshd"]
    assert (
        known_hosts(found[1:])
        == f"192.0.2.2 {ssh_key('HOST2')}\n[192.0.2.3]:2222 {ssh_key('HOST3')}\n"
    )
    assert {mode for _, mode in files.values()} == {"600", "755", "644"}
    assert files["/etc/pve-fail2ban/share/peers.json"][1] == "600"
    assert "failures" not in config  # cluster-wide failures off: none sent, none counted
    counted = share_files("pve1", ["sshd", "proxmox", "recidive"], found, SCRIPTS, failures=True)
    config = json.loads(counted["/etc/pve-fail2ban/share/peers.json"][0])
    assert config["failures"] == ["proxmox", "sshd"]  # recidive counts bans: never its failures
    # a member whose host keys are not known yet gets no bans, but stays a member: its bans here last
    import dataclasses

    unknown = [*found[:2], dataclasses.replace(found[2], hostkeys=[])]
    config = json.loads(share_files("pve1", ["sshd"], unknown, SCRIPTS)[PEERS_FILE][0])
    assert [p["name"] for p in config["peers"]] == ["pve2"]
    assert config["members"] == ["pve2", "pve3"]


def test_node_facts_read_the_share_parts():
    node = parse_node(said("pve8"))  # a converged node, as recorded
    assert node["share_key"].startswith("ssh-ed25519 ") and len(node["hostkeys"]) >= 2
    assert {p["name"] for p in node["share_peers"]} >= {"pve2", "pve3"}
    assert (
        node["share_activestate"] == "active"
        and "/etc/pve-fail2ban/share/peers.json" in node["share_files"]
    )
    assert node["sshd_permitrootlogin"] and all(
        "pve-fail2ban-share@" in a for a in node["authorized"]
    )
    assert parse_node(said("pve8", share_peers="{broken"))["share_peers"] is None  # rewritten


ADMIN = "ssh-ed25519 AAAAadmin admin@desk\n"
OLD = 'restrict,command="x pve3" ssh-ed25519 OLD3 pve-fail2ban-share@pve3\n'


def test_authorize_replaces_only_our_lines_and_keeps_everything_else_in_place():
    text = "# a comment\n" + ADMIN + OLD + "ssh-rsa AAAAother root@pve1"  # no final newline
    want = {"pve1": "L1", "pve2": "L2"}
    assert authorize.edited(text, want, keep=set()) == (
        "# a comment\n" + ADMIN + "ssh-rsa AAAAother root@pve1\nL1\nL2\n"
    )
    assert authorize.edited(text, want, keep={"pve3"}).count("OLD3") == 1
    again = authorize.edited(
        ADMIN + "L1 pve-fail2ban-share@pve1\n", {"pve1": "L1 pve-fail2ban-share@pve1"}, set()
    )
    assert again == ADMIN + "L1 pve-fail2ban-share@pve1\n"  # the same input, the same bytes
    assert authorize.owner("ssh-ed25519 K someone pve-fail2ban-share@pve1 x") is None


@pytest.mark.parametrize(
    "line,why",
    [
        ("rm -rf /", "malformed"),
        ("ban sshd 192.0.2.0/24 600 0", "malformed"),
        ("ban sshd 192.0.2.1 600 0; id", "malformed"),
        ("ban sshd 192.0.2.1 600", "malformed"),  # no age
        ("ban sshd 192.0.2.1 600 -3", "malformed"),
        ("ban nosuch 192.0.2.1 600 0", "not one of ours"),
        ("ban sshd 127.0.0.1 600 0", "not an address"),
        ("ban sshd ::1 600 0", "not an address"),
        ("ban sshd 999.0.2.1 600 0", "is not an IP address"),
        ("ban sshd fe80::1%x 600 0", "malformed"),  # a scope ID: no address of one host
        ("ban sshd 0.0.0.0 600 0", "not an address"),
        ("ban sshd 192.0.2.1 0 0", "out of range"),
        ("ban sshd 192.0.2.1 99999999999 0", "malformed"),
        ("ban sshd 192.0.2.1 -5 0", "malformed"),
    ],
)
def test_the_receiver_refuses_anything_but_one_address_one_jail_one_time(line, why):
    with pytest.raises(ValueError, match=why):
        receive.parse(line, ["sshd", "proxmox"])


def test_the_receiver_takes_a_ban_and_a_ban_for_ever():
    assert receive.parse("ban sshd 2001:DB8::7 600 0.25", ["sshd"]) == (
        "sshd",
        "2001:db8::7",
        600,
        0.25,
    )
    assert receive.parse("ban proxmox 192.0.2.7 -1 3", ["proxmox"]) == (
        "proxmox",
        "192.0.2.7",
        -1,
        3,
    )


def test_a_ban_made_before_an_unban_here_is_not_taken(tmp_path, monkeypatch):
    lifted = tmp_path / "lifted"
    lifted.write_text("192.0.2.7 1000.5\ngarbage line here\n192.0.2.8 900\n::ffff:192.0.2.9 5\n")
    monkeypatch.setattr(receive, "LIFTED", str(lifted))
    check = receive.Lifted()
    assert check.after("192.0.2.7", 999.0)  # made before the lift: refused
    assert not check.after("192.0.2.7", 1001.0)  # a new ban after it: taken
    assert check.after("192.0.2.9", 1.0)  # the same address in its canonical form
    assert not check.after("192.0.2.10", 0)
    monkeypatch.setattr(receive, "LIFTED", str(tmp_path / "none"))
    assert not receive.Lifted().after("192.0.2.7", 0)


def test_the_receiver_takes_an_ipv4_mapped_address_as_fail2ban_bans_it():
    assert receive.parse("ban sshd ::ffff:192.0.2.7 600 0", ["sshd"])[1] == "192.0.2.7"


def test_the_sender_sends_the_time_left_and_drops_what_ran_out():
    end = share.ban_end(1000.0, 600)
    assert share.seconds_left(end, 1000.2) == 600 and share.seconds_left(end, 1599.5) == 1
    assert share.seconds_left(end, 1600.0) is None
    assert share.seconds_left(share.ban_end(1000.0, -1), 10**10) == -1


def test_the_outbox_is_read_once_across_a_rename(tmp_path):
    path = tmp_path / "outbox"
    path.write_text("a\n")
    tail = share.Tail(str(path))
    assert tail.lines() == ["a"]
    with open(path, "a") as out:
        out.write("b\n")
    path.rename(tmp_path / "outbox.old")
    path.write_text("c\n")
    assert tail.lines() == ["b", "c"] and tail.lines() == []


def test_a_sharing_jail_hands_each_ban_on_before_its_own_firewall_call():
    from pvefail2ban.plan import plan_node
    from pvefail2ban.render import render_files
    from tests.unit.test_plan import node, settings

    shared = render_files(plan_node(settings(), node(), share=True), settings())
    alone = render_files(plan_node(settings(), node(), share=False), settings())
    for path in ("/etc/fail2ban/jail.d/01_sshd.local", "/etc/fail2ban/jail.d/02_proxmox.local"):
        text = shared[path].decode()
        action = text[text.index("action    = ") :].splitlines()
        assert action[0] == "action    = pve-fail2ban-share[name=%(__name__)s]"
        assert action[1].lstrip().startswith("%(banaction)s[")
        assert "pve-fail2ban-share" not in alone[path].decode()
    assert "/etc/fail2ban/action.d/pve-fail2ban-share.conf" in shared
    assert "/etc/fail2ban/action.d/pve-fail2ban-share.conf" not in alone


def test_answers_are_taken_in_order_and_a_refusal_is_never_retried():
    import os
    import subprocess
    import time

    peer = share.Peer("pve2", "192.0.2.2", 22)
    peer.proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    os.set_blocking(peer.proc.stdout.fileno(), False)
    keys = [("sshd", "192.0.2.1"), ("recidive", "192.0.2.1")]
    peer.queue = {key: (0, 0.0) for key in keys}
    peer.inflight = {key: 1.0 for key in keys}
    peer.proc.stdin.write(b"ok sshd 192.0.2.1\nrefused jail 'recidive' is not one of ours here\n")
    peer.proc.stdin.flush()
    deadline = time.monotonic() + 5
    while peer.inflight and time.monotonic() < deadline:
        peer.answers(time.monotonic())
        time.sleep(0.01)
    assert peer.queue == {} and peer.inflight == {}
    peer.close(time.monotonic(), failed=False)


def test_a_ban_a_full_peer_cannot_take_now_is_kept_and_sent_again_later(monkeypatch):
    """`full` (the peer's quota for this node, or its record file): the ban stays queued, no ban
    is sent to that peer before FULL_RETRY (failures still are), it is said once, and the first
    ban taken again says so."""
    import os
    import subprocess

    logged = []
    monkeypatch.setattr(share, "log", logged.append)
    peer = share.Peer("pve2", "192.0.2.2", 22)
    said, answer = os.pipe()  # the peer's answers come from here; what is sent goes nowhere
    peer.proc = subprocess.Popen(
        ["cat", f"/dev/fd/{said}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=[said],
    )
    os.close(said)
    os.set_blocking(peer.proc.stdout.fileno(), False)
    keys = [("sshd", "192.0.2.1"), ("sshd", "192.0.2.2"), ("sshd", "192.0.2.3")]
    peer.queue = {key: (0, 0.0) for key in keys}
    peer.inflight = {key: 1.0 for key in keys}
    full = "sshd {} pve1 holds 50000 bans here already"
    answers = f"ok sshd 192.0.2.1 made\nfull {full.format('192.0.2.2')}\nfull {full.format('192.0.2.3')}\n"
    os.write(answer, answers.encode())
    deadline = time.monotonic() + 5
    while peer.inflight and time.monotonic() < deadline:
        peer.answers(100.0)
        time.sleep(0.01)
    assert list(peer.queue) == keys[1:] and peer.inflight == {}  # kept, none in flight
    assert len([m for m in logged if "no room" in m]) == 1, logged  # said once
    assert peer.full_until == 100.0 + share.FULL_RETRY
    assert not peer.waiting(110.0) and peer.waiting(100.0 + share.FULL_RETRY)
    assert peer.due(110.0) == 100.0 + share.FULL_RETRY  # it lingers, then sends again
    peer.send(110.0)
    assert peer.inflight == {}  # nothing sent to a full peer before its time
    peer.attempts.append(("sshd", "198.51.100.1", 105.0))
    peer.send(110.0)
    assert list(peer.inflight) == [("attempt", 1)]  # failures are not held back
    peer.inflight.clear()
    peer.send(131.0)
    assert list(peer.inflight) == keys[1:]  # sent again
    os.write(answer, b"ok sshd 192.0.2.2 made\n")
    deadline = time.monotonic() + 5
    while len(peer.inflight) == 2 and time.monotonic() < deadline:
        peer.answers(131.5)
        time.sleep(0.01)
    assert peer.full_until == 0.0 and logged[-1] == "pve2 takes our bans again"
    os.close(answer)
    peer.close(time.monotonic(), failed=False)


def test_the_receiver_says_full_and_logs_it_once_per_connection(monkeypatch):
    logged = []
    monkeypatch.setattr(receive, "log", logged.append)

    class Here:
        def ignored(self, jail, address):
            return None

    def apply(here, records, jail, address, end, origin):
        raise receive.Full(f"{origin} holds {receive.MAX_PER_ORIGIN} bans here already")

    monkeypatch.setattr(receive, "Here", Here)
    monkeypatch.setattr(receive, "apply", apply)
    monkeypatch.setattr(receive.Lifted, "after", lambda self, address, when: False)
    requests = [f"ban sshd 192.0.2.{n} 600 0\n".encode() for n in range(1, 4)]
    answers = list(receive.serve("pve1", ["sshd"], requests))
    assert answers == [
        f"full sshd 192.0.2.{n} pve1 holds {receive.MAX_PER_ORIGIN} bans here already"
        for n in range(1, 4)
    ]
    assert len(logged) == 1 and "full for pve1" in logged[0]


def test_a_flood_of_malformed_requests_costs_a_few_log_lines_and_ends_the_connection(monkeypatch):
    logged = []
    monkeypatch.setattr(receive, "log", logged.append)
    flood = [b"rm -rf /\n"] * (receive.MAX_REFUSED + 500)
    answers = list(receive.serve("pve1", ["sshd"], flood))
    assert len(answers) == receive.MAX_REFUSED  # then the connection is closed
    assert all(a.startswith("refused ") for a in answers)
    assert len(logged) == receive.LOGGED + 2, logged[-3:]  # LOGGED, the close, the count
    assert f"{receive.MAX_REFUSED} malformed requests on one connection: closed" in logged[-2]
    assert (
        logged[-1]
        == f"pve1: {receive.MAX_REFUSED - receive.LOGGED} more refused or ignored requests on one connection"
    )


def test_over_its_budget_a_peer_s_failures_do_not_rewrite_the_budget_file_each(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(receive, "RECEIVED", str(tmp_path / "received"))
    budget, refills = receive.Budget("pve1"), []
    real = budget.refill
    monkeypatch.setattr(budget, "refill", lambda now: refills.append(now) or real(now))
    (tmp_path / "budget.pve1").write_text(f"0 {time.time():.3f}\n")  # empty now
    now = time.time()
    assert not any(budget.take(now + i / 1000) for i in range(1000))  # 1,000 in a second
    assert len(refills) == 1  # read once, then left alone until a refill is due
    later = now + receive.ATTEMPT_TAKE / receive.ATTEMPT_RATE + 0.1
    assert budget.take(later) and len(refills) == 2


def test_a_peer_that_answers_what_was_not_asked_is_closed_and_its_other_answers_logged_few(
    monkeypatch,
):
    import os
    import subprocess

    logged = []
    monkeypatch.setattr(share, "log", logged.append)
    peer = share.Peer("pve2", "192.0.2.2", 22)
    said, answer = os.pipe()
    peer.proc = subprocess.Popen(
        ["cat", f"/dev/fd/{said}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=[said]
    )
    os.close(said)
    os.set_blocking(peer.proc.stdout.fileno(), False)
    keys = [("sshd", f"192.0.2.{n}") for n in range(1, 31)]
    peer.queue = {key: (0, 0.0) for key in keys}
    peer.inflight = {key: 1.0 for key in keys}
    text = "".join(f"ignored sshd {ip} in this node's ignoreip\n" for _, ip in keys)
    os.write(answer, (text + "ok sshd 192.0.2.99 made\n" * 1000).encode())
    os.close(answer)
    deadline = time.monotonic() + 5
    while peer.proc is not None and time.monotonic() < deadline:
        peer.answers(100.0)
        time.sleep(0.01)
    assert peer.proc is None and peer.queue == {}  # closed at the first answer not asked for
    assert len([m for m in logged if " ignored: " in m]) == share.LOGGED
    assert f"pve2: {30 - share.LOGGED} more answers other than ok on one connection" in logged
    assert any(m.startswith("pve2 answers what was not asked") for m in logged), logged


# ---- cluster-wide failures (issue 24): the receiver's side ---------------------------------------


@pytest.mark.parametrize(
    "line,why",
    [
        ("attempt sshd 192.0.2.1", "malformed"),  # no age
        ("attempt sshd 192.0.2.0/24 0", "malformed"),
        ("attempt sshd 192.0.2.1 0; id", "malformed"),
        ("attempt sshd 192.0.2.1 -1", "malformed"),
        ("attempt nosuch 192.0.2.1 0", "not counted here"),
        ("attempt recidive 192.0.2.1 0", "not counted here"),
        ("attempt sshd 127.0.0.1 0", "not an address"),
        ("attempt sshd fe80::1%x 0", "malformed"),
    ],
)
def test_the_receiver_refuses_a_failure_but_one_address_one_jail_one_age(line, why):
    with pytest.raises(ValueError, match=why):
        receive.parse_attempt(line, ["sshd", "proxmox"])


class FakeHere:
    """What the receiver asks this node's fail2ban, recorded (its answers: findtime 600, ignoreip
    192.0.2.99, 192.0.2.50 banned)."""

    def __init__(self):
        self.asked = []

    def ask(self, *command):
        self.asked.append(command)
        return command[1:] == ("sshd", "banned", "192.0.2.50")

    def ignored(self, jail, address):
        return "in this node's ignoreip (192.0.2.99)" if address == "192.0.2.99" else None

    def findtime(self, jail):
        return 600


class FakeLifted:
    """192.0.2.60 lifted here (unban.py) 10 s ago."""

    def __init__(self):
        self.at = receive.time.time() - 10

    def after(self, address, when):
        return address == "192.0.2.60" and self.at >= when


def test_a_peer_s_failure_is_counted_once_without_a_message_unless_ignored_or_too_old(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(receive, "RECEIVED", str(tmp_path / "received"))
    monkeypatch.setattr(receive, "ATTEMPTS", str(tmp_path / "attempts"))
    here, lifted, budget = FakeHere(), FakeLifted(), receive.Budget("pve2")
    assert receive.parse_attempt("attempt sshd ::ffff:192.0.2.7 1.5", ["sshd"]) == (
        "sshd",
        "192.0.2.7",
        1.5,
    )
    assert receive.count_attempt(here, lifted, budget, "sshd", "192.0.2.7", 1.5, "pve2") == (
        "ok sshd 192.0.2.7 counted"
    )
    # no message: it counts once
    assert here.asked[-1] == ("set", "sshd", "attempt", "192.0.2.7")
    for address, age, why in (
        ("192.0.2.99", 0, "in this node's ignoreip"),
        ("192.0.2.8", 601, "older than this jail's findtime"),
        ("192.0.2.60", 11.5, "lifted here"),  # made in the second before the lift's
        ("192.0.2.50", 0, "banned here already"),  # a ban here is never made longer by a peer
    ):
        answer = receive.count_attempt(here, lifted, budget, "sshd", address, age, "pve2")
        assert answer.startswith(f"ignored sshd {address} {why}"), answer
    # made in the lift's second (fail2ban's Found line says no more): maybe after it, counted
    answer = receive.count_attempt(here, lifted, budget, "sshd", "192.0.2.60", 10.5, "pve2")
    assert answer == "ok sshd 192.0.2.60 counted", answer
    assert [c for c in here.asked if c[0] == "set"] == [
        ("set", "sshd", "attempt", "192.0.2.7"),
        ("set", "sshd", "attempt", "192.0.2.60"),
    ]
    # each failure counted is recorded first, with its origin
    records = [parse_attempt_record(x) for x in (tmp_path / "attempts").read_text().splitlines()]
    assert [(jail, ip) for _, jail, ip, _ in records] == [
        ("sshd", "192.0.2.7"),
        ("sshd", "192.0.2.60"),
    ]


def test_a_peer_s_failures_count_within_its_quota_of_bans_and_are_recorded_as_its(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(receive, "RECEIVED", str(tmp_path / "received"))
    monkeypatch.setattr(receive, "ATTEMPTS", str(tmp_path / "attempts"))
    monkeypatch.setattr(receive, "MAX_PER_ORIGIN", 2)
    here, lifted, budget, records = (
        FakeHere(),
        FakeLifted(),
        receive.Budget("pve2"),
        receive.Records(),
    )
    ok = receive.count_attempt(here, lifted, budget, "sshd", "192.0.2.7", 0, "pve2", records)
    assert ok == "ok sshd 192.0.2.7 counted"
    _, jail, ip, origin = parse_attempt_record((tmp_path / "attempts").read_text())
    assert (jail, ip, origin) == ("sshd", "192.0.2.7", "pve2")
    # two bans of pve2's run here: its failures count no more, pve3's do
    (tmp_path / "received").write_text(
        "".join(f"0 sshd 198.51.100.{n} pve2 1.000\n" for n in (1, 2))
    )
    full = receive.count_attempt(here, lifted, budget, "sshd", "192.0.2.8", 0, "pve2", records)
    assert full == "ignored sshd 192.0.2.8 pve2 holds 2 bans here already"
    other = receive.count_attempt(
        here, lifted, receive.Budget("pve3"), "sshd", "192.0.2.8", 0, "pve3", receive.Records()
    )
    assert other == "ok sshd 192.0.2.8 counted"
    # a full record file (the share daemon reads none): nothing counted unrecorded
    monkeypatch.setattr(receive, "MAX_ATTEMPTS_FILE", 10)
    unrecorded = receive.count_attempt(here, lifted, budget, "sshd", "192.0.2.9", 0, "pve3")
    assert unrecorded.startswith("ignored sshd 192.0.2.9 ") and "is full" in unrecorded


def test_a_peer_s_failures_are_counted_within_its_budget_across_its_connections(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(receive, "RECEIVED", str(tmp_path / "received"))
    now = 1000.0
    first, second = receive.Budget("pve2"), receive.Budget("pve2")  # two connections
    taken = sum(first.take(now) for _ in range(receive.ATTEMPT_BURST // 2))
    taken += sum(second.take(now) for _ in range(receive.ATTEMPT_BURST))
    assert taken == receive.ATTEMPT_BURST  # the burst, shared
    assert not second.take(now)
    later = now + 10  # refilled at ATTEMPT_RATE a second, ...
    assert sum(second.take(later) for _ in range(10_000)) == 10 * receive.ATTEMPT_RATE
    assert receive.Budget("pve3").take(now)  # ... and per origin
    (tmp_path / "budget.pve2").write_text("nan inf\n")  # a broken file gives nothing away
    assert not receive.Budget("pve2").take(later)


def test_the_sender_reads_fail2ban_s_found_lines_of_our_jails_only():
    line = "2026-11-29 02:32:20,175 fail2ban.filter         [8763]: INFO    [sshd] Found {} - {}"
    jail, address, when = share.found_line(
        line.format("::ffff:192.0.2.7", "2026-11-29 02:32:19"), {"sshd"}
    )
    assert (jail, address) == ("sshd", "192.0.2.7")
    assert when == share.time.mktime((2026, 11, 29, 2, 32, 19, 0, 0, -1))
    for other in (
        line.format("192.0.2.7", "2026-11-29 02:32:19").replace("[sshd]", "[recidive]"),
        line.format("192.0.2.7", "2026-11-29 02:32:19").replace("Found", "Attempt"),  # a peer's
        line.format("192.0.2.0/24", "2026-11-29 02:32:19"),
        line.format("127.0.0.1", "2026-11-29 02:32:19"),
        "x " + line.format("192.0.2.7", "2026-11-29 02:32:19"),  # quoted inside another line
    ):
        assert share.found_line(other, {"sshd"}) is None, other


def test_failures_are_sent_after_bans_bounded_and_dropped_once_older_than_findtime():
    peer = share.Peer("pve2", "192.0.2.2", 22)
    sent = []

    class Pipe:
        def write(self, data):
            sent.append(data.decode())

        def flush(self):
            pass

    peer.proc = type("Proc", (), {"stdin": Pipe()})()
    peer.queue[("sshd", "192.0.2.9")] = (2000, 1000.0)
    peer.attempts.extend([("sshd", "192.0.2.7", 1000.0), ("sshd", "192.0.2.8", 400.0)])
    peer.send(1001.0, findtime=lambda jail: 600)
    lines = "".join(sent).splitlines()
    assert lines == ["ban sshd 192.0.2.9 999 1.000", "attempt sshd 192.0.2.7 1.000"]
    assert not peer.attempts and len(peer.inflight) == 2  # the old one dropped, not queued
    flood = share.Peer("pve3", "192.0.2.3", 22)
    flood.attempts.extend(("sshd", f"10.0.{n // 250}.{n % 250}", 1.0) for n in range(20_000))
    assert len(flood.attempts) == share.MAX_ATTEMPTS  # bounded: the newest kept


def test_a_failure_of_an_address_this_node_bans_is_not_sent_its_ban_is(tmp_path, monkeypatch):
    for name in ("OUTBOX", "PENDING", "RECEIVED", "LIFTED", "FAIL2BAN_LOG", "ATTEMPTS"):
        monkeypatch.setattr(share, name, str(tmp_path / name.lower()))
    monkeypatch.setattr(share, "log", lambda message: None)
    (tmp_path / "fail2ban_log").write_text("")
    (tmp_path / "outbox").write_text("")
    peers = [{"name": "pve2", "address": "192.0.2.2", "port": 22}]
    daemon = share.Share({"peers": peers, "jails": ["sshd"], "failures": ["sshd"]})
    (peer,) = daemon.peers
    found = "2026-11-29 02:32:20,175 fail2ban.filter [1]: INFO    [sshd] Found {} - {}\n"
    action = "2026-11-29 02:32:20,175 fail2ban.actions [1]: NOTICE  [sshd] {} {}\n"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    now = time.time()

    def logged(*lines, at):
        with open(tmp_path / "fail2ban_log", "a") as log:
            log.writelines(lines)
        daemon.read_failures(at)

    logged(found.format("192.0.2.7", stamp), found.format("192.0.2.8", stamp), at=now)
    assert not peer.attempts  # held a moment: did it make this node ban?
    logged(action.format("Ban", "192.0.2.8"), at=now + 0.5)  # the second one did
    daemon.read_failures(now + share.HOLD + 0.1)
    assert [a[1] for a in peer.attempts] == ["192.0.2.7"]  # its ban goes instead of it
    # later failures of a banned address add nothing (the peers have its ban): not sent, until
    # fail2ban unbans it here (by hand, unban.py or its time over)
    later = now + 2 * share.HOLD
    logged(found.format("192.0.2.8", stamp), at=later)
    daemon.read_failures(later + share.HOLD)
    assert [a[1] for a in peer.attempts] == ["192.0.2.7"]
    logged(action.format("Unban", "192.0.2.8"), found.format("192.0.2.8", stamp), at=later)
    daemon.read_failures(later + share.HOLD)
    assert [a[1] for a in peer.attempts] == ["192.0.2.7", "192.0.2.8"]
    logged(action.format("Restore Ban", "2001:DB8::1"), at=later)  # after a restart: as banned
    assert ("sshd", "2001:db8::1") in daemon.banned


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-29 02:32:20,175 fail2ban.actions [1]: NOTICE  [sshd] Ban 192.0.2.0/24",
        "2026-11-29 02:32:20,175 fail2ban.actions [1]: NOTICE  [sshd] Ban fe80::1%eth0",
        "2026-11-29 02:32:20,175 fail2ban.actions [1]: NOTICE  [sshd] Ban 192.0.2.1 x",
        "2026-11-29 02:32:20,175 fail2ban.filter [1]: NOTICE  [sshd] Ban 192.0.2.1",
        "x 2026-11-29 02:32:20,175 fail2ban.actions [1]: NOTICE  [sshd] Ban 192.0.2.1",
        "2026-11-29 02:32:20,175 fail2ban.actions [1]: NOTICE  [sshd] Ban 999.0.2.1",
    ],
)
def test_only_fail2ban_s_own_ban_lines_count_as_bans(line):
    assert share.ban_line(line) is None


@given(st.text(max_size=200))
def test_ban_line_takes_any_text_and_returns_a_canonical_address_or_nothing(text):
    line = f"2026-11-29 02:32:20,175 fail2ban.actions [1]: NOTICE  [sshd] Ban {text}"
    change = share.ban_line(line)
    assert change is None or change[2] == str(ipaddress.ip_address(change[2]))


def test_a_ban_is_charged_to_a_peer_only_where_its_failures_alone_made_it():
    attempted = {("sshd", "192.0.2.1"): ("pve2", 1000.0), ("sshd", "192.0.2.2"): ("pve3", 100.0)}
    found = {"192.0.2.3": 1000.0}  # this node's own failure of it (a proxy's jail, say)
    attempted[("sshd", "192.0.2.3")] = ("pve2", 1001.0)
    assert share.charged_to(("sshd", "192.0.2.1"), 1002.0, found, attempted, 600) == "pve2"
    # the peer's failure is older than findtime: the ban is this node's own
    assert share.charged_to(("sshd", "192.0.2.2"), 1002.0, found, attempted, 600) is None
    # one failure of this node's own among them: its own ban, shared as any
    assert share.charged_to(("sshd", "192.0.2.3"), 1002.0, found, attempted, 600) is None
    # no peer's failure at all (fail2ban's own count, ban.py): its own
    assert share.charged_to(("sshd", "192.0.2.4"), 1002.0, found, attempted, 600) is None
    memory = {}
    for n in range(10):
        share.remember(memory, n, n, limit=3)
    assert list(memory) == [7, 8, 9]  # bounded, the newest kept


class FakeFail2ban:
    def __init__(self):
        self.asked = []

    def ask(self, *command):
        self.asked.append(command)
        return 600 if command[:1] == ("get",) else None

    def close(self):
        pass


def test_a_ban_made_here_by_a_peer_s_failures_is_that_peer_s_never_sent_and_ends_with_it(
    tmp_path, monkeypatch
):
    for name in ("OUTBOX", "PENDING", "RECEIVED", "LIFTED", "FAIL2BAN_LOG", "ATTEMPTS"):
        monkeypatch.setattr(share, name, str(tmp_path / name.lower()))
    monkeypatch.setattr(share, "log", lambda message: None)
    for name in ("fail2ban_log", "outbox", "attempts", "received"):
        (tmp_path / name).write_text("")
    server = FakeFail2ban()
    peers = [{"name": f"pve{n}", "address": f"192.0.2.{n}", "port": 22} for n in (2, 3)]
    daemon = share.Share({"peers": peers, "jails": ["sshd"], "failures": ["sshd"]}, lambda: server)
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    with open(tmp_path / "attempts", "a") as attempts:  # as receive.py records them
        attempts.writelines(
            receive.attempt_record(now, "sshd", ip, "pve2") for ip in ("192.0.2.20", "192.0.2.21")
        )
    with open(tmp_path / "fail2ban_log", "a") as log:  # one failure of this node's own
        log.write(
            f"2026-11-29 02:32:20,175 fail2ban.filter [1]: INFO    [sshd] Found 192.0.2.21 - {stamp}\n"
        )
    with open(tmp_path / "outbox", "a") as outbox:  # the share action's lines: both banned here
        outbox.writelines(f"ban sshd {ip} {now:.3f} 600\n" for ip in ("192.0.2.20", "192.0.2.21"))
    daemon.read_outbox(now)
    # pve2's failures alone made the first: pve2's ban here, in its quota, never sent on
    records = [share.parse_received(x) for x in (tmp_path / "received").read_text().splitlines()]
    assert [(r.jail, r.address, r.origin) for r in records] == [("sshd", "192.0.2.20", "pve2")]
    assert records[0].end == math.ceil(now + 600)
    for peer in daemon.peers:  # the second had a failure of this node's own: shared
        assert list(peer.queue) == [("sshd", "192.0.2.21")], peer.name
    # ban.py bans it here by hand: the admin's ban, sent as any
    with open(tmp_path / "outbox", "a") as outbox:
        outbox.write("claim sshd 192.0.2.20\n")
    daemon.read_outbox(now + 1)
    assert ("sshd", "192.0.2.20") not in daemon.received
    assert all(("sshd", "192.0.2.20") in peer.queue for peer in daemon.peers)
    # a ban charged to pve2, and pve2 leaves the cluster: lifted here at once
    with open(tmp_path / "attempts", "a") as attempts:
        attempts.write(receive.attempt_record(now + 2, "sshd", "192.0.2.22", "pve2"))
    with open(tmp_path / "outbox", "a") as outbox:
        outbox.write(f"ban sshd 192.0.2.22 {now + 2:.3f} 600\n")
    daemon.read_outbox(now + 2)
    assert daemon.received[("sshd", "192.0.2.22")].origin == "pve2"
    daemon.maintain(now + 3)
    assert not any(c[:2] == ("set", "sshd") and c[2] == "unbanip" for c in server.asked)
    daemon.peers = [p for p in daemon.peers if p.name != "pve2"]
    daemon.members = {"pve2", "pve3"}  # pve2 not reached (no host keys yet), still a member
    daemon.maintain(now + 4)
    assert not any(c[:2] == ("set", "sshd") and c[2] == "unbanip" for c in server.asked)
    daemon.members = {"pve3"}  # pve2 left the cluster
    daemon.maintain(now + 4)
    assert ("set", "sshd", "unbanip", "192.0.2.22") in server.asked
    assert ("sshd", "192.0.2.22") not in daemon.received


peers_ban = script("peers_ban")


def test_recidive_counts_no_ban_made_here_for_a_peer(tmp_path, monkeypatch):
    for name in ("RECEIVED", "ATTEMPTS", "FAIL2BAN_LOG"):
        monkeypatch.setattr(peers_ban, name, str(tmp_path / name.lower()))
    now = time.time()
    (tmp_path / "received").write_text(
        f"{int(now) + 600} sshd 192.0.2.1 pve2 {now:.3f} 600\n"  # a peer's ban that runs
        f"{int(now) - 10} sshd 192.0.2.2 pve2 {now - 700:.3f} 600\n"  # one long over
        f"{int(now) + 600} proxmox 192.0.2.6 pve2 {now:.3f} 600\n"  # a peer's, another jail
    )
    (tmp_path / "attempts.old").write_text(f"{now - 5:.3f} sshd 192.0.2.3 pve3\n")  # rotated
    (tmp_path / "attempts").write_text(
        f"{now - 5:.3f} sshd 192.0.2.4 pve3\n{now - 2 * peers_ban.LATELY:.3f} sshd 192.0.2.5 pve3\n"
    )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - 1))
    found = f"{stamp},175 fail2ban.filter         [1]: INFO    [nginx] Found {{}} - {stamp}\n"
    ban = f"{stamp},175 fail2ban.actions        [1]: NOTICE  [sshd] Ban {{}}\n"
    quoted = f"{stamp},175 fail2ban.filter [1]: WARNING [sshd] line: x] Found 192.0.2.3 - {stamp}\n"
    (tmp_path / "fail2ban_log").write_text(
        found.format("192.0.2.4")  # a failure of its own (its proxy's jail): its own ban
        + quoted  # a line quoting an attacker's text is no Found
        + "".join(ban.format(f"192.0.2.{n}") for n in range(1, 10))
    )
    assert peers_ban.main(["peers_ban.py", "::ffff:192.0.2.1"]) == 0  # ignored: the peer's
    assert peers_ban.main(["peers_ban.py", "192.0.2.2"]) == 1  # counted: over, and long ago
    assert peers_ban.main(["peers_ban.py", "192.0.2.9"]) == 1  # counted: this node's own
    # the peers' failures alone made it (the share daemon records it a moment later)
    assert peers_ban.main(["peers_ban.py", "192.0.2.3"]) == 0
    assert peers_ban.main(["peers_ban.py", "192.0.2.4"]) == 1  # one of its own among them
    assert peers_ban.main(["peers_ban.py", "192.0.2.5"]) == 1  # the peer's was too long ago
    assert peers_ban.main(["peers_ban.py", "192.0.2.6"]) == 1  # its sshd ban: its own
    assert peers_ban.main(["peers_ban.py", "192.0.2.77"]) == 1  # no Ban line of it at all
    for hostile in ("192.0.2.1; reboot", "", "192.0.2.0/24", "fe80::1%eth0"):
        assert peers_ban.main(["peers_ban.py", hostile]) == 1
    assert peers_ban.main(["peers_ban.py"]) == 1


def test_the_recidive_jail_asks_whether_a_ban_was_a_peers_where_bans_are_shared():
    from pvefail2ban.plan import plan_node
    from pvefail2ban.render import render_files
    from tests.unit.nodes import node

    chosen = validate({**DEFAULTS, "fail2ban_recidive_enabled": True})
    shared = plan_node(chosen, node("pve8", fresh=True), share=True)
    text = render_files(shared, chosen)["/etc/fail2ban/jail.d/03_recidive.local"].decode()
    assert "ignorecommand = /usr/local/lib/pve-fail2ban/peers_ban.py <ip>" in text
    alone = plan_node(chosen, node("pve8", fresh=True))
    assert (
        "ignorecommand"
        not in render_files(alone, chosen)["/etc/fail2ban/jail.d/03_recidive.local"].decode()
    )


def test_a_peer_that_reconnects_without_end_costs_a_few_log_lines_a_minute(tmp_path, monkeypatch):
    monkeypatch.setattr(receive, "RECEIVED", str(tmp_path / "received"))
    logged = []
    monkeypatch.setattr(receive, "log", logged.append)
    for _ in range(200):  # 200 connections, each a flood of malformed lines until it is closed
        answers = list(receive.serve("pve1", ["sshd"], [b"x\n"] * (receive.MAX_REFUSED + 1)))
        assert len(answers) == receive.MAX_REFUSED
    assert len(logged) <= receive.LOG_BURST + 5, len(logged)  # + what the rate gave meanwhile
    other = []
    monkeypatch.setattr(receive, "log", other.append)
    list(receive.serve("pve2", ["sshd"], [b"x\n"]))  # another origin has its own budget
    assert len(other) == 1


def test_failures_of_a_banned_address_cost_the_origin_s_budget_before_fail2ban_is_asked(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(receive, "RECEIVED", str(tmp_path / "received"))
    monkeypatch.setattr(receive, "ATTEMPTS", str(tmp_path / "attempts"))
    (tmp_path / "budget.pve2").write_text(f"0 {time.time():.3f}\n")  # spent
    here, budget = FakeHere(), receive.Budget("pve2")
    for _ in range(1000):
        answer = receive.count_attempt(here, FakeLifted(), budget, "sshd", "192.0.2.50", 0, "pve2")
        assert "over the origin's budget" in answer
    assert not [c for c in here.asked if c[1:3] == ("sshd", "banned")]


def test_a_peer_s_bans_are_counted_once_each_without_a_scan_per_request(tmp_path):
    path = tmp_path / "received"
    now = time.time()
    path.write_text(f"0 sshd 192.0.2.1 pve2 {now:.3f}\n{int(now) - 5} sshd 192.0.2.2 pve2 1.0\n")
    records = receive.Records()
    with open(path, "a+b") as file:
        records.refresh(file)
        assert records.count("pve2") == 1  # the one over does not count
        with open(path, "a") as more:  # the same ban made longer, a new one, another origin's
            more.write(f"0 sshd 192.0.2.1 pve2 {now:.3f}\n0 sshd 192.0.2.3 pve2 {now:.3f}\n")
            more.write(f"0 sshd 192.0.2.4 pve3 {now:.3f}\n")
        records.refresh(file)
    assert (records.count("pve2"), records.count("pve3")) == (2, 1)
    records.counted_at -= receive.COUNT_AGAIN + 1  # counted again over all records: the same
    assert (records.count("pve2"), records.count("pve3")) == (2, 1)


@pytest.mark.parametrize(
    "answers",
    [
        b"OK sshd 192.0.2.1 made\n",  # no word of the protocol
        b"\n",  # a blank line (a shell's, a stray one)
        b"ok sshd 192.0.2.7 made\n",  # an answer to another request (an extra line before)
        b"ok recidive 192.0.2.1 made\n",
    ],
)
def test_an_answer_that_is_no_answer_to_the_ban_in_flight_keeps_the_ban_for_later(
    monkeypatch, answers
):
    """Answers are matched to requests by order only: an answer that is none of the receiver's
    words, or that names another ban, ends the connection; every ban in flight stays queued and
    is sent again on the next one (said once)."""
    import os
    import subprocess

    logged = []
    monkeypatch.setattr(share, "log", logged.append)
    peer = share.Peer("pve2", "192.0.2.2", 22)
    peer.proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    os.set_blocking(peer.proc.stdout.fileno(), False)
    keys = [("sshd", "192.0.2.1"), ("sshd", "192.0.2.2")]
    peer.queue = {key: (0, 0.0) for key in keys}
    peer.inflight = {key: 1.0 for key in keys}
    peer.proc.stdin.write(answers)
    peer.proc.stdin.flush()
    deadline = time.monotonic() + 5
    while peer.proc is not None and time.monotonic() < deadline:
        peer.answers(100.0)
        time.sleep(0.01)
    assert peer.proc is None and peer.inflight == {}  # closed ...
    assert list(peer.queue) == keys  # ... and both bans kept, to be sent again
    assert peer.failures == 1 and peer.next_try > 100.0
    assert len(logged) == 1 and "connection closed, its bans kept and sent again" in logged[0]


def test_a_peer_that_reconnects_without_end_is_answered_later_before_anything_is_read(
    tmp_path, monkeypatch
):
    """Its connections share one budget: a burst, then CONNECT_RATE a second. Over it, a
    connection gets `later` and ends: RECEIVED is not read and fail2ban not asked. Another peer's
    budget is its own."""
    monkeypatch.setattr(receive, "RECEIVED", str(tmp_path / "received"))
    now = time.time()
    taken = [receive.connection_allowed("pve1", now) for _ in range(receive.CONNECT_BURST + 5)]
    assert taken == [True] * receive.CONNECT_BURST + [False] * 5
    assert receive.connection_allowed("pve3", now)  # another peer: its own budget
    assert receive.connection_allowed("pve1", now + 2 / receive.CONNECT_RATE)  # refilled
    peers = tmp_path / "peers.json"
    peers.write_text(json.dumps({"jails": ["sshd"], "failures": ["sshd"]}))
    monkeypatch.setattr(receive, "PEERS", str(peers))
    monkeypatch.setattr(receive, "serve", lambda *args: pytest.fail("served over the budget"))
    (tmp_path / "connections.pve1").write_text(f"0 {time.time() + 60:.3f}\n")  # empty
    printed = []
    monkeypatch.setattr("builtins.print", lambda text, **kwargs: printed.append(text))
    assert receive.main("pve1") == 0
    assert printed == ["later too many connections from pve1 now"]
