"""Lab tests that play the attacker: a node whose commands lie (shadowed binaries in
/usr/local/sbin, first on root's PATH), a peer that misuses its share key, and a flood of records
the share daemon must read without spinning. Nothing a hostile node says may reach its peers'
authorized_keys, known_hosts or ignoreip, or run as a command anywhere. One node of each variant,
cluster-wide bans on (the default)."""

import re
import time

import pytest

from lab.checks import banned, wait_for

KEY = "/etc/pve-fail2ban/share/id_ed25519"
SHARE = "/var/lib/pve-fail2ban/share"
FORGED_IP = """#!/bin/sh
# a hostile node's `ip`: the real addresses, then forged ones (the probe reads `ip -j`'s JSON)
/usr/bin/ip "$@" | python3 -c 'import json, sys
found = json.load(sys.stdin)
found.append({"addr_info": [{"local": "fe80::1%x\\",from=\\"*"}, {"local": "0.0.0.0/0"}]})
print(json.dumps(found))'
"""
FORGED_SSHD = """#!/bin/sh
# a hostile node's `sshd -T`: a port that is an ssh option
/usr/sbin/sshd "$@" | sed 's/^port 22$/port -oProxyCommand=touch\\${IFS}\\/root\\/pwned/'
"""
# a hostile node's python3: its fail2ban state says it banned an address that is a command
FORGED_PYTHON = """#!/bin/sh
case "$*" in *banned_ips*)
  echo '{"running": true, "active": null, "events": [], "products": ["pve"], "jails": {"sshd":
  {"banned_ips": ["fe80::1%$(touch${IFS}/root/pwned)", "198.51.100.99"], "firewall": [],
   "ignoreip": [], "from": {}}}}'; exit 0 ;; esac
exec /usr/bin/python3 "$@"
"""


@pytest.fixture(scope="module")
def lab(lab_control):
    lab_control.up()
    run = lab_control.pyinfra()
    assert run.returncode == 0, run.report
    return lab_control


def shadow(node, name, text):
    node.sh(f"cat > /usr/local/sbin/{name} <<'EOF'\n{text}EOF\nchmod 755 /usr/local/sbin/{name}")


def ours(node, path):
    return node.sh(f"cat {path} 2>/dev/null")[1]


def pwned(nodes):
    return [n.name for n in nodes if n.sh("test -e /root/pwned")[0] == 0]


def test_a_node_whose_commands_lie_fails_alone_and_its_peers_keep_nothing_of_it(lab):
    pve1, pve2, pve3 = lab.nodes()
    before = {
        n.name: (
            ours(n, "/root/.ssh/authorized_keys"),
            ours(n, "/etc/pve-fail2ban/share/known_hosts"),
        )
        for n in (pve1, pve2)
    }
    shadow(pve3, "ip", FORGED_IP)
    try:
        run = lab.pyinfra()
        assert run.returncode != 0
        # pve3 fails with the value it forged; nothing of what it said was used
        assert re.search(r"\[pve3\].*fe80::1%x\\?\",from=\\?\"\*", run.text), run.report
        assert re.search(r"\[pve1\]\s+fail2ban [\d.]+; ", run.text)
        assert re.search(r"\[pve2\]\s+fail2ban [\d.]+; ", run.text)
        for node in (pve1, pve2):
            keys = ours(node, "/root/.ssh/authorized_keys")
            jails = node.sh("cat /etc/fail2ban/jail.d/*.local")[1]
            assert "fe80" not in keys and 'from="*' not in keys and "0.0.0.0" not in keys
            assert "fe80::1" not in jails and "0.0.0.0" not in jails and "::/0" not in jails
            assert (keys, ours(node, "/etc/pve-fail2ban/share/known_hosts")) == before[node.name]
            for line in keys.splitlines():  # each of ours: restrict, from=, command=, key
                if "pve-fail2ban-share@" in line:
                    assert re.fullmatch(
                        r'restrict,from="[0-9a-f:.,]+",command="/usr/local/lib/pve-fail2ban/'
                        r'receive\.py pve\d" ssh-ed25519 [A-Za-z0-9+/=]+ pve-fail2ban-share@pve\d',
                        line,
                    ), line
        shadow(pve3, "ip", '#!/bin/sh\nexec /usr/bin/ip "$@"\n')
        shadow(pve3, "sshd", FORGED_SSHD)
        run = lab.pyinfra()
        assert run.returncode != 0 and "-oProxyCommand" in run.text and "is not a port" in run.text
        assert pwned(lab.nodes()) == []
    finally:
        pve3.sh("rm -f /usr/local/sbin/ip /usr/local/sbin/sshd")
    assert lab.pyinfra().returncode == 0  # back to honest: converges as before


def test_a_forged_fail2ban_state_never_becomes_a_command(lab):
    nodes = lab.nodes()
    pve3 = nodes[2]
    shadow(pve3, "python3", FORGED_PYTHON)
    try:
        run = lab.pyinfra(deploy="sync.py")
        assert "pve3: its bans are not read" in run.text and "fe80::1%$(touch" in run.text
        run = lab.pyinfra(deploy="status.py")
        assert run.returncode == 1 and re.search(r"^pve3\s+-\s+UNREACHABLE", run.text, re.M)
    finally:
        pve3.sh("rm -f /usr/local/sbin/python3")
    assert pwned(nodes) == []
    assert not any("198.51.100.99" in banned(n, "sshd") for n in nodes)  # nothing of it used


def test_a_hostile_data_value_is_refused_before_any_node(lab):
    nodes = lab.nodes()
    for deploy, value in (
        ("ban.py", "fe80::1%$(touch${IFS}/root/pwned)"),
        ("unban.py", "192.0.2.7;id"),
    ):
        run = lab.pyinfra("--data", f"ip={value}", deploy=deploy)
        assert (
            run.returncode != 0
            and "is not an IP address" in run.text
            and "nothing was changed" in run.text
        )
    run = lab.pyinfra("--data", "ip=192.0.2.7", "--data", "jails=sshd;id", deploy="ban.py")
    assert run.returncode != 0 and "is not a jail name" in run.text
    assert pwned(nodes) == [] and not any("192.0.2.7" in banned(n, "sshd") for n in nodes)


def share_request(sender, receiver, line):
    """What `receiver` answers to `line` sent with `sender`'s share key, as a thief of that key."""
    return sender.sh(
        f"printf '%s\\n' '{line}' | timeout 20 ssh -T -i {KEY} -o BatchMode=yes "
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
        f"root@{receiver.ip}",
        timeout=30,
    )[1].strip()


def test_a_peer_cannot_shorten_or_lift_a_ban_with_its_share_key(lab):
    """`ban sshd X 1 0` from a peer to a node that bans X for a week: nothing changes there."""
    pve1, pve2, _ = lab.nodes()
    address = "198.51.100.50"
    # a ticket without a time of its own lasts its jail's ban time: a week, for this test
    pve2.sh(f"fail2ban-client set sshd bantime 604800 && fail2ban-client set sshd banip {address}")
    try:
        assert wait_for(lambda: address in banned(pve1, "sshd"))  # shared as usual
        answer = share_request(pve1, pve2, f"ban sshd {address} 1 0")
        assert answer == f"ok sshd {address} kept", answer
        assert f" {address} " not in ours(pve2, f"{SHARE}/received")
        time.sleep(4)  # the peer's "one second" is long over
        assert address in banned(pve2, "sshd")
        left = pve2.sh("fail2ban-client get sshd banip --with-time")[1]
        assert re.search(rf"{re.escape(address)}.*\+ 604800 =", left), left
        # this node's own ban is its own: neither shorter nor longer at a peer's word
        assert share_request(pve1, pve2, f"ban sshd {address} -1 0") == f"ok sshd {address} kept"
        assert f" {address} " not in ours(pve2, f"{SHARE}/received")
    finally:
        pve2.sh("fail2ban-client set sshd bantime 600")
        lab.pyinfra("--data", f"ip={address}", deploy="unban.py")


def test_a_copy_lasts_the_time_the_origin_has_left_even_where_the_jail_bans_shorter(lab):
    """pve1's proxmox jail bans for 6 s; pve2 bans for 20 s: pve1's copy lasts 20 s (made again
    before its 6 s run out), then goes with the origin's."""
    pve1, pve2, _ = lab.nodes()
    address = "198.51.100.60"
    pve1.sh("fail2ban-client set proxmox bantime 6")
    pve2.sh(
        f"fail2ban-client set proxmox bantime 20 && fail2ban-client set proxmox banip {address}"
    )
    started = time.monotonic()
    try:
        assert wait_for(lambda: address in banned(pve1, "proxmox"))
        while time.monotonic() - started < 16:  # well past pve1's own 6 s, twice
            assert address in banned(pve1, "proxmox"), (
                f"lifted after {time.monotonic() - started:.1f} s"
            )
            time.sleep(1)
        assert wait_for(lambda: address not in banned(pve1, "proxmox"))
        assert time.monotonic() - started >= 18
    finally:
        pve1.sh("fail2ban-client set proxmox bantime 600")
        pve2.sh("fail2ban-client set proxmox bantime 600")
        lab.pyinfra("--data", f"ip={address}", deploy="unban.py")


def cpu_ticks(node, service):
    pid = node.sh(f"systemctl show -p MainPID --value {service}")[1].strip()
    fields = node.sh(f"cat /proc/{pid}/stat")[1].rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_the_share_daemon_sleeps_after_a_flood_of_50k_received_records(lab):
    """Two 10k floods and forever bans leave tens of thousands of records: the daemon rewrites
    the file once, then sleeps (it used to wake on its own rewrite, 72 times in 3 s)."""
    pve1 = lab.nodes()[0]
    pve1.sh(
        'systemctl stop pve-fail2ban-share && python3 -c "import time\n'
        f"now = time.time()\nwith open('{SHARE}/received', 'a') as out:\n"
        "    for n in range(50000):\n"
        "        out.write(f'0 sshd 2001:db8:1::{n:x} pve2 {now:.3f} 600\\n')\" && "
        "systemctl start pve-fail2ban-share"
    )
    try:

        def asleep():
            """It has read them and settled: no CPU time (1/100 s ticks) and no rewrite over 5 s."""
            size = pve1.sh(f"stat -c %s {SHARE}/received")[1].strip()
            before = cpu_ticks(pve1, "pve-fail2ban-share")
            time.sleep(5)
            return (
                cpu_ticks(pve1, "pve-fail2ban-share") - before <= 1
                and pve1.sh(f"stat -c %s {SHARE}/received")[1].strip() == size
            )

        assert wait_for(asleep, timeout=120)  # a rewrite loop never settles
    finally:
        pve1.sh(
            f"systemctl stop pve-fail2ban-share && : > {SHARE}/received && systemctl start pve-fail2ban-share"
        )


def test_an_admins_ban_of_an_address_a_peer_banned_outlasts_the_peers(lab):
    """pve2 bans X for 15 s; pve1 and pve3 hold copies, lifted with pve2's ban. The admin's
    ban.py of X meanwhile makes it theirs: it stays when pve2's ends."""
    pve1, pve2, pve3 = lab.nodes()
    address = "198.51.100.70"
    pve2.sh(
        f"fail2ban-client set proxmox bantime 15 && fail2ban-client set proxmox banip {address}"
    )
    try:
        assert wait_for(
            lambda: address in banned(pve1, "proxmox") and address in banned(pve3, "proxmox")
        )
        run = lab.pyinfra("--data", f"ip={address}", "--data", "jails=proxmox", deploy="ban.py")
        assert run.returncode == 0 and "received from a peer claimed" in run.text, run.report
        assert wait_for(lambda: address not in banned(pve2, "proxmox"))
        time.sleep(3)  # the copies would be lifted within a second of the origin's end
        assert address in banned(pve1, "proxmox") and address in banned(pve3, "proxmox")
    finally:
        pve2.sh("fail2ban-client set proxmox bantime 600")
        lab.pyinfra("--data", f"ip={address}", deploy="unban.py")


def total_failed(node, jail):
    text = node.sh(f"fail2ban-client status {jail}")[1]
    return int(re.search(r"Total failed:\s+(\d+)", text).group(1))


def test_a_local_user_naming_a_line_after_a_daemon_bans_nobody(lab):
    """Any local user can name a journal line (`logger -t pvedaemon`) or a process (`sshd`): the
    jails read such lines from root only (_UID, which journald takes from the kernel). Root's own
    line from a process that exits at once, whose unit journald cannot know (systemd issue 2913),
    is read, once."""
    node = next(n for n in lab.nodes() if n.variant == "pve8")
    forged, real = "198.51.100.7", "198.51.100.9"
    web = f"authentication failure; rhost={forged} user=root@pam msg=Authentication failure"
    ssh = f"Failed password for root from {forged} port 4242 ssh2"
    before = {jail: total_failed(node, jail) for jail in ("proxmox", "sshd")}
    for _ in range(4):
        node.sh(f"runuser -u nobody -- logger -t pvedaemon -p daemon.err '{web}'", check=True)
        node.sh(f"runuser -u nobody -- logger -t sshd-session -p authpriv.info '{ssh}'", check=True)
        # a process named sshd (its _COMM), not root's: a user's copy of logger (/tmp is noexec)
        node.sh(
            "mkdir -p /opt/user && cp /usr/bin/logger /opt/user/sshd && "
            f"runuser -u nobody -- /opt/user/sshd -p auth.info '{ssh}'",
            check=True,
        )
    time.sleep(3)  # fail2ban reads the journal within a second
    assert {jail: total_failed(node, jail) for jail in ("proxmox", "sshd")} == before
    assert forged not in banned(node, "proxmox") + banned(node, "sshd")

    web = web.replace(forged, real)
    for count in (1, 2):  # root's line, from a logger that exits at once: read, and once
        node.sh(f"logger -t pvedaemon -p daemon.err '{web}'", check=True)
        assert wait_for(lambda c=count: total_failed(node, "proxmox") == before["proxmox"] + c)
    node.sh(f"logger -t pvedaemon -p daemon.err '{web}'", check=True)
    assert wait_for(lambda: real in banned(node, "proxmox"))
    node.sh(f"fail2ban-client set proxmox unbanip {real}", check=True)


def test_a_peer_s_key_counts_failures_within_its_budget_only(lab):
    """A thief of pve1's share key sends pve2 12,000 failures, one per address, on one connection:
    pve2 counts the peer's burst (10,000) and what its rate adds meanwhile (50 a second), and
    ignores the rest, saying why; fail2ban counted exactly those; nobody is banned."""
    pve1, pve2, _ = lab.nodes()
    before = total_failed(pve2, "sshd")
    pve1.sh(
        'python3 -c \'import ipaddress; n = ipaddress.ip_network("2001:db8:b0::/64"); '
        'print("\\n".join(f"attempt sshd {n[i]} 0" for i in range(1, 12001)))\' > /tmp/attempts',
        check=True,
    )
    started = time.monotonic()
    _, answers = pve1.sh(
        f"timeout 120 ssh -T -i {KEY} -o BatchMode=yes -o StrictHostKeyChecking=no "
        f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@{pve2.ip} < /tmp/attempts",
        timeout=150,
    )
    took = time.monotonic() - started
    counted = answers.count(" counted\n")
    over = answers.count("over the origin's budget")
    assert counted + over == 12000, answers[-500:]
    assert 9_900 <= counted <= 10_000 + 50 * took + 100, (counted, took)  # 100: taken at a time
    assert total_failed(pve2, "sshd") == before + counted
    assert not any(a.startswith("2001:db8:b0:") for a in banned(pve2, "sshd"))


def test_bans_a_peer_s_failures_alone_make_are_the_peer_s_in_its_quota_and_not_recidive(lab):
    """A thief of pve1's share key sends pve2 three failures of each of six addresses (maxretry
    3). pve2 bans the first five, each as pve1's: recorded with pve1 as origin, shown `(from
    pve1)`, never sent on to pve3; its recidive jail counts none of them. With pve1's quota there
    at 5 (lowered for the test), the sixth address's failures are ignored, saying why. A ban
    of pve2's own is counted by recidive (after the peer's, in the same log: it would count those
    first)."""
    pve1, pve2, pve3 = lab.nodes()
    run = lab.pyinfra("--limit", pve2.name, "--data", "fail2ban_recidive_enabled=True")
    assert run.returncode == 0, run.report
    receiver = "/usr/local/lib/pve-fail2ban/receive.py"
    pve2.sh(f"sed -i 's/^MAX_PER_ORIGIN = .*/MAX_PER_ORIGIN = 5/' {receiver}", check=True)
    addresses = [f"198.51.100.{n}" for n in range(120, 126)]
    own = "198.51.100.130"
    try:
        recidive_before = total_failed(pve2, "recidive")
        lines = "\n".join(f"attempt sshd {ip} 0" for ip in addresses[:5] for _ in range(3))
        answers = share_request(pve1, pve2, lines)
        assert answers.count(" counted") == 15, answers
        assert wait_for(lambda: set(addresses[:5]) <= set(banned(pve2, "sshd")))
        for ip in addresses[:5]:  # the share daemon charged each to pve1
            assert wait_for(lambda ip=ip: f" sshd {ip} pve1 " in ours(pve2, f"{SHARE}/received"))
        status = lab.pyinfra("--limit", pve2.name, deploy="status.py")
        for ip in addresses[:5]:
            assert f"{ip} (from pve1)" in status.text, status.report
        # pve1's quota is full there now: its failures count no more
        lines = "\n".join(f"attempt sshd {addresses[5]} 0" for _ in range(3))
        answers = share_request(pve1, pve2, lines)
        assert answers.count("pve1 holds 5 bans here already") == 3, answers
        # a ban of pve2's own: shared, and counted by its recidive jail, after the peer's
        pve2.sh(f"fail2ban-client set sshd banip {own}", check=True)
        assert wait_for(lambda: own in banned(pve3, "sshd"))
        assert wait_for(lambda: total_failed(pve2, "recidive") >= recidive_before + 1)
        log = pve2.sh("grep -E 'recidive|Ban ' /var/log/fail2ban.log | tail -30")[1]
        assert total_failed(pve2, "recidive") == recidive_before + 1, log
        # the peer's bans never left pve2 (its own did, above, before this look)
        assert not set(addresses) & set(banned(pve3, "sshd"))
        assert addresses[5] not in banned(pve2, "sshd")
    finally:
        lab.pyinfra("--data", f"ip={','.join([*addresses, own])}", deploy="unban.py")
        back = lab.pyinfra("--limit", pve2.name)
        assert back.returncode == 0, back.report
