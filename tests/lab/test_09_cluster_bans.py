"""Cluster-wide bans: an attacker banned by one node is refused by every node, with no loop, no lost
ban while a peer is down, and a share key that can do one thing only. One node of each variant;
pve3 bans with iptables, the others with nftables (a mixed cluster)."""

import ipaddress
import json
import re
import time

import pytest

from lab import attack, config
from lab.checks import banned, ops_with_changes, wait_for
from pvefail2ban.scripts.nodelib import parse_received

KEY = "/etc/pve-fail2ban/share/id_ed25519"
MIXED = {"pve3": {"fail2ban_banaction": "iptables"}}


@pytest.fixture(scope="module")
def lab(lab_control):
    lab_control.up()
    lab_control.write_inventory(lab_control.nodes(), host_data=MIXED)
    run = lab_control.pyinfra()
    assert run.returncode == 0, run.report
    yield lab_control
    lab_control.write_inventory(lab_control.nodes())


def bans_logged(node, address):
    """fail2ban's own `Ban <address>` lines on `node`, per jail."""
    text = node.sh("grep -h ' Ban ' /var/log/fail2ban.log || true")[1]
    return re.findall(rf"\[(\w+)\] Ban {re.escape(address)}$", text, re.M)


def queued(node):
    """What `node`'s share service still has to send, per peer."""
    text = node.sh("cat /var/lib/pve-fail2ban/share/pending.json 2>/dev/null || echo {}")[1]
    return {peer: items for peer, items in json.loads(text).get("peers", {}).items() if items}


def held_for(node, origin):
    """Bans `node` holds for `origin` now, as its receiver counts them against that peer's quota:
    the last record of each jail and address in RECEIVED, still running."""
    text = node.sh("cat /var/lib/pve-fail2ban/share/received 2>/dev/null")[1]
    last = {}
    for record in filter(None, map(parse_received, text.splitlines())):
        last[(record.jail, record.address)] = record
    now = time.time()
    return sum(1 for r in last.values() if r.origin == origin and (r.end == 0 or r.end > now))


def unban_everywhere(lab, address):
    run = lab.pyinfra("--data", f"ip={address}", deploy="unban.py")
    assert run.returncode == 0, run.report


def with_share_key(node, peer, *options, stdin="", timeout=20):
    """Run ssh from `node` to `peer` with `node`'s share key, as a thief of that key would."""
    command = (
        f"timeout {timeout} ssh -T -i {KEY} -o BatchMode=yes -o StrictHostKeyChecking=no "
        f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5 {' '.join(options)} root@{peer.ip}"
    )
    return node.sh(f"printf '{stdin}' | {command} 2>&1", timeout=timeout + 10)


def test_sharing_opens_no_listening_port(lab):
    """Only sshd (22) and the simulated PVE (8006, spiceproxy 3128) listen, as before the deploy (127.0.0.11 is
    Docker's own DNS resolver inside each container)."""
    for node in lab.nodes():
        assert node.sh("systemctl is-active pve-fail2ban-share")[1].strip() == "active"
        sockets = node.sh("ss -Hltnu | awk '{print $5}'")[1].split()
        ports = {s.rsplit(":", 1)[1] for s in sockets if not s.startswith("127.0.0.11:")}
        assert ports == {"22", "8006", "3128"}, (node.name, sockets)


def test_an_attacker_banned_on_one_node_is_refused_by_every_node_once(lab):
    nodes, attacker = lab.nodes(), lab.attacker()
    origin, peers = nodes[0], nodes[1:]
    assert all(attack.port_open(attacker, n, 22) for n in nodes)
    attack.ssh_login(attacker, origin, count=4)
    assert wait_for(lambda: banned(origin, "sshd")) == [config.ATTACKER_IP]
    for peer in peers:  # nftables (pve2) and iptables (pve3) alike
        assert wait_for(lambda p=peer: not attack.port_open(attacker, p, 22)), peer.name
        assert config.ATTACKER_IP in banned(peer, "sshd")
    time.sleep(3)  # anything that would loop has had time to
    for node in nodes:
        assert bans_logged(node, config.ATTACKER_IP) == ["sshd"], node.name
        assert queued(node) == {}, f"{node.name} keeps sending"
    run = lab.pyinfra("-y", deploy="status.py")
    for peer in peers:
        assert re.search(
            rf"^{peer.name}\s+sshd\s+up.*{re.escape(config.ATTACKER_IP)} \(from {origin.name}\)",
            run.text,
            re.M,
        ), run.text
    unban_everywhere(lab, config.ATTACKER_IP)
    for node in nodes:
        assert wait_for(lambda n=node: attack.port_open(attacker, n, 22)), node.name


def test_a_ban_by_hand_spreads_for_the_rest_of_its_time(lab):
    nodes = lab.nodes()
    address = "198.51.100.7"
    origin, peers = nodes[1], [nodes[0], nodes[2]]
    origin.sh(
        f"fail2ban-client set proxmox bantime 15 && fail2ban-client set proxmox banip {address}"
    )
    try:
        for node in peers:
            assert wait_for(lambda n=node: address in banned(n, "proxmox")), node.name
            left = node.sh("tail -n 1 /var/lib/pve-fail2ban/share/received")[1].split()
            assert left[1:4] == ["proxmox", address, origin.name]
            assert 0 < int(left[0]) - time.time() <= 15  # the origin's time, not the peer's 600 s
        for node in peers:  # lifted with the origin's ban, not 600 s later
            assert wait_for(lambda n=node: address not in banned(n, "proxmox")), node.name
    finally:
        origin.sh("fail2ban-client set proxmox bantime 600")
        unban_everywhere(lab, address)
    assert not any(address in banned(n, "proxmox") for n in nodes)


def test_a_received_ban_lifted_by_hand_and_made_again_locally_is_shared_again(lab):
    """Only the receiver's own ban counts as received: the same address banned later on that node
    by its own jail is that node's ban, and goes to every peer."""
    nodes = lab.nodes()
    address = "192.0.2.61"
    nodes[0].sh(f"fail2ban-client set sshd banip {address}")
    assert all(wait_for(lambda n=n: address in banned(n, "sshd")) for n in nodes)
    for node in nodes:
        node.sh("fail2ban-client unban --all")
    nodes[1].sh(f"fail2ban-client set sshd banip {address}")  # pve2 had received it from pve1
    assert all(wait_for(lambda n=n: address in banned(n, "sshd")) for n in (nodes[0], nodes[2]))
    unban_everywhere(lab, address)


def test_the_share_key_can_hand_over_a_ban_request_and_nothing_else(lab):
    nodes = lab.nodes()
    thief, victim = nodes[0], nodes[1]
    out = with_share_key(thief, victim, "id")[1]
    assert "uid=" not in out
    assert with_share_key(thief, victim, "-t", "-t", "sh -c id")[1].count("uid=") == 0
    forward = thief.sh(
        f"(timeout 8 ssh -T -i {KEY} -o BatchMode=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -N -L 127.0.0.1:18022:127.0.0.1:22 "
        f"root@{victim.ip} 2>/tmp/forward.err &) ; sleep 3; "
        "timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/18022 && head -c 4 <&3'; sleep 1; "
        "cat /tmp/forward.err",
        timeout=30,
    )[1]
    assert "SSH-" not in forward and "prohibited" in forward, forward  # no port forwarding
    hostile = (
        "rm -rf /\\n"
        "ban sshd 192.0.2.0/24 600 0\\n"
        "ban nosuchjail 192.0.2.9 600 0\\n"
        "ban sshd 192.0.2.9 600 0; id\\n"
        "ban sshd 127.0.0.1 600 0\\n"
        f"ban sshd {config.GATEWAY} 600 0\\n"
        f"ban sshd {thief.ip} 600 0\\n"
    )
    answers = with_share_key(thief, victim, stdin=hostile)[1].splitlines()
    assert [a.split()[0] for a in answers] == [
        "refused", "refused", "refused", "refused", "refused", "ignored", "ignored"
    ], answers  # fmt: skip
    assert "uid=" not in "".join(answers)
    assert victim.sh("test -e /etc/hostname")[0] == 0
    assert banned(victim, "sshd") == []  # nothing of that was banned: not the controller, no peer
    logged = victim.sh("journalctl -t pve-fail2ban-receive --no-pager -n 20")[1]
    assert (
        "malformed request 'rm -rf /'" in logged and "not banned, in this node's ignoreip" in logged
    )
    # the key of a node, taken elsewhere (the attacker), is refused: it is bound to its node's addresses
    key = thief.sh(f"cat {KEY}")[1]
    attacker = lab.attacker()
    attacker.sh(f"umask 077; printf '%s\\n' '{key}' > /tmp/stolen")
    stolen = attacker.sh(
        "printf 'ban sshd 192.0.2.44 600 0\\n' | timeout 20 ssh -T -i /tmp/stolen -o BatchMode=yes "
        f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@{victim.ip} 2>&1"
    )
    assert stolen[0] != 0 and "ok sshd" not in stolen[1]
    assert banned(victim, "sshd") == []


def test_a_peer_that_is_down_gets_every_running_ban_when_it_is_back(lab):
    """A peer that is down holds back no other: the ban reaches the live peer while the other is
    still down (stopped until then), and the peer that was down gets it when it is back. How fast
    a ban spreads is measured by `make bench` (propagation), not here."""
    nodes = lab.nodes()
    origin, other, down = nodes
    address = "203.0.113.50"
    down.container.stop(timeout=10)
    try:
        origin.sh(f"fail2ban-client set sshd banip {address}")
        assert wait_for(lambda: address in banned(other, "sshd"))
        assert wait_for(lambda: down.name in queued(origin))  # kept for it, on disk
        down.container.reload()
        assert down.container.status == "exited"  # down all along: it delayed no one
    finally:
        down.container.start()
    lab.wait_ready(down)
    assert wait_for(lambda: address in banned(down, "sshd"), step=1)
    assert wait_for(lambda: queued(origin) == {})
    unban_everywhere(lab, address)


def test_bans_a_full_peer_cannot_take_now_all_arrive_once_it_has_room(lab):
    """pve2 holds at most 3 more of pve1's bans (its quota lowered for the test). pve1 bans five
    addresses, three of them for 45 s: pve2 takes those three and answers `full` to the other
    two; pve1 keeps them (on disk) and says so once; pve3 takes all five all along. When the
    short bans end, pve2 has room again: the two kept arrive."""
    origin, full, other = lab.nodes()
    receiver = "/usr/local/lib/pve-fail2ban/receive.py"
    addresses = [f"203.0.113.{n}" for n in range(60, 65)]
    quota = held_for(full, origin.name) + 3  # what earlier tests left there counts too
    full.sh(f"cp {receiver} /root/receive.py.orig", check=True)
    full.sh(f"sed -i 's/^MAX_PER_ORIGIN = .*/MAX_PER_ORIGIN = {quota}/' {receiver}", check=True)
    full.sh(f"pkill -f '{receiver} {origin.name}' || true")  # pve1 reconnects to the new one
    bantime = origin.sh("fail2ban-client get sshd bantime")[1].strip()
    try:
        origin.sh("fail2ban-client set sshd bantime 45", check=True)
        for address in addresses[:3]:
            origin.sh(f"fail2ban-client set sshd banip {address}", check=True)
        origin.sh(f"fail2ban-client set sshd bantime {bantime}", check=True)
        assert wait_for(lambda: set(addresses[:3]) <= set(banned(full, "sshd")))
        for address in addresses[3:]:
            origin.sh(f"fail2ban-client set sshd banip {address}", check=True)
        assert wait_for(lambda: set(addresses) <= set(banned(other, "sshd")))
        assert wait_for(lambda: len(queued(origin).get(full.name, [])) == 2)  # kept, on disk
        assert not set(addresses[3:]) & set(banned(full, "sshd"))
        said = origin.sh("journalctl -u pve-fail2ban-share --no-pager -o cat")[1]
        assert said.count(f"{full.name} has no room for our bans now") == 1, said
        # the short bans end (45 s), and the next try (FULL_RETRY, 30 s) finds room: bounded
        assert wait_for(
            lambda: set(addresses[3:]) <= set(banned(full, "sshd")), timeout=180, step=2
        ), full.sh("journalctl -t pve-fail2ban-receive --no-pager -o cat | tail -5")[1]
        assert wait_for(lambda: queued(origin) == {})
    finally:
        origin.sh(f"fail2ban-client set sshd bantime {bantime}")
        full.sh(f"test -f /root/receive.py.orig && cp /root/receive.py.orig {receiver}")
        full.sh(f"pkill -f '{receiver} {origin.name}' || true")
        unban_everywhere(lab, ",".join(addresses))


def test_a_flood_of_bans_reaches_every_peer_with_few_connections(lab):
    """500 bans made on one node in batches (the share service's window is 200 requests) reach
    every peer over one connection per peer,
    and fail2ban answers on every node all along. The flood's pace and the time to spread are
    printed here and measured by `make bench`: a loaded machine decides them, not the product."""
    nodes = lab.nodes()
    origin = nodes[0]
    net = ipaddress.ip_network("2001:db8:f100::/64")
    addresses = [str(net[i]) for i in range(1, 501)]  # documentation range
    connections = []
    started = time.monotonic()
    for i in range(0, 500, 100):
        origin.sh("fail2ban-client set sshd banip " + " ".join(addresses[i : i + 100]), timeout=300)
        connections.append(int(origin.sh("ss -Htn state established '( dport = :22 )' | wc -l")[1]))
        for node in nodes:  # fail2ban answers all along (a bounded wait, not a figure)
            assert node.sh("fail2ban-client ping", timeout=60)[0] == 0, node.name
    last_ban = time.monotonic()
    for node in nodes[1:]:
        assert wait_for(
            lambda n=node: int(n.sh("fail2ban-client get sshd banip | wc -w")[1]) >= 500,
            timeout=300,
            step=2,
        ), node.name
    print(
        f"flood made in {last_ban - started:.0f} s, on every peer {time.monotonic() - last_ban:.0f} s"
        f" later; connections {connections}"
    )
    assert max(connections) <= len(nodes) - 1, connections  # one connection per peer at most
    for node in nodes:
        node.sh("fail2ban-client unban --all", timeout=300)
    assert wait_for(lambda: queued(origin) == {})


def test_a_limited_run_keeps_every_peer_and_a_new_node_is_wired_by_the_next_full_run(lab, tmp_path):
    nodes = lab.nodes()
    run = lab.pyinfra("--limit", nodes[0].name)
    assert run.returncode == 0, run.report
    peers = json.loads(nodes[0].sh("cat /etc/pve-fail2ban/share/peers.json")[1])["peers"]
    assert sorted(p["name"] for p in peers) == [n.name for n in nodes[1:]]
    # a cluster of two, then a third node joins the inventory
    assert lab.pyinfra(deploy="remove.py").returncode == 0
    two = lab.write_inventory(nodes[:2], host_data=MIXED, path=tmp_path / "two.py")
    assert lab.pyinfra(inventory=two).returncode == 0
    assert nodes[2].sh("test -e /etc/pve-fail2ban")[0] != 0
    run = lab.pyinfra()
    assert run.returncode == 0, run.report
    nodes[2].sh("fail2ban-client set sshd banip 192.0.2.77")
    assert all(wait_for(lambda n=n: "192.0.2.77" in banned(n, "sshd")) for n in nodes[:2])
    unban_everywhere(lab, "192.0.2.77")


def test_remove_takes_every_part_away(lab):
    nodes = lab.nodes()
    run = lab.pyinfra(deploy="remove.py")
    assert run.returncode == 0, run.report
    for node in nodes:
        assert node.sh("grep -c pve-fail2ban-share /root/.ssh/authorized_keys")[1].strip() == "0"
        assert node.sh("grep -c pvelab-controller /root/.ssh/authorized_keys")[1].strip() == "1"
        gone = "/etc/pve-fail2ban /usr/local/lib/pve-fail2ban /var/lib/pve-fail2ban"
        assert (
            node.sh(f"ls -d {gone} /etc/fail2ban/action.d/pve-fail2ban-share.conf 2>/dev/null")[1]
            == ""
        )
        assert node.sh("systemctl is-active pve-fail2ban-share")[1].strip() != "active"
    assert lab.pyinfra().returncode == 0  # and back, for what follows


def test_one_authorized_keys_shared_by_all_nodes_as_pmxcfs_keeps_it(lab_control):
    """PVE: /root/.ssh/authorized_keys -> /etc/pve/priv/authorized_keys, one file for all nodes.
    The deploy edits it one node at a time: no line is lost, none of the admin's is touched."""
    lab = lab_control
    nodes = lab.up(shared_keys=True)
    shared = lab.shared_keys / "authorized_keys"
    admin = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdminAdminAdminAdminAdminAdminAdminAdmin0 admin@desk"
    )
    shared.write_text(shared.read_text() + admin + "\n")
    before = shared.read_text()
    run = lab.pyinfra()
    assert run.returncode == 0, run.report
    after = shared.read_text()
    assert after.startswith(before)  # every line that was there, byte for byte, in place
    ours = after[len(before) :].splitlines()
    assert sorted(line.rsplit("@", 1)[1] for line in ours) == [n.name for n in nodes]
    for node in nodes:
        assert (
            node.sh("readlink /root/.ssh/authorized_keys")[1].strip()
            == "/etc/pve/priv/authorized_keys"
        )
    nodes[1].sh("fail2ban-client set sshd banip 192.0.2.88")
    assert all(wait_for(lambda n=n: "192.0.2.88" in banned(n, "sshd")) for n in nodes)
    again = lab.pyinfra()
    assert shared.read_text() == after
    assert again.returncode == 0 and ops_with_changes(again.text) == [], again.report
    run = lab.pyinfra(deploy="remove.py")
    assert run.returncode == 0, run.report
    assert shared.read_text() == before
    lab.up()  # the default lab again, for what follows
