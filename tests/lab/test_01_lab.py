"""The lab itself: every variant boots like a PVE node, and pvedaemon writes what PVE writes."""

import json
import re
import subprocess
import tempfile
import time
import uuid

import docker
import pytest

from lab import attack, config
from lab.config import ROOT

FILTER = ROOT / "pvefail2ban/files/etc/fail2ban/filter.d/proxmox.conf"

ATTACKER = f"::ffff:{config.ATTACKER_IP}"


def by_variant(nodes, variant):
    return next(n for n in nodes if n.variant == variant)


def token():
    return uuid.uuid4().hex[:8]


def pvedaemon_lines(node, marker):
    """pvedaemon's journal lines (short format) containing `marker`."""
    return [line for line in node.journal("pvedaemon").splitlines() if marker in line]


def test_default_lab_is_one_node_of_each_variant(nodes):
    assert [n.variant for n in nodes] == ["pve8", "pve9", "legacy"]
    assert [n.name for n in nodes] == ["pve1", "pve2", "pve3"]


@pytest.mark.parametrize(
    "variant,release,rsyslog",
    [("pve8", "12.", False), ("pve9", "13.", False), ("legacy", "12.", True)],
)
def test_variant_boots_like_its_pve_release(nodes, variant, release, rsyslog):
    node = by_variant(nodes, variant)
    assert node.sh("systemctl is-system-running")[1].strip() == "running"
    assert node.sh("cat /etc/debian_version")[1].startswith(release)
    assert node.sh("ps -p 1 -o comm=")[1].strip() == "systemd"
    for tool in ("iptables", "nft", "python3", "sshd"):
        assert node.sh(f"command -v {tool}")[0] == 0, tool
    assert node.sh("dpkg -s fail2ban")[0] != 0, "fail2ban must not be preinstalled"
    assert (node.sh("dpkg -s rsyslog")[0] == 0) is rsyslog
    assert (node.sh("test -e /var/log/daemon.log")[0] == 0) is rsyslog


def test_controller_reaches_every_node_by_key_with_checked_host_keys(lab, nodes):
    for node in nodes:
        out = subprocess.run(
            lab.ssh_command(node, "echo", "$SSH_CLIENT"), capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == config.GATEWAY


def test_nodes_have_their_own_host_keys(nodes):
    keys = {node.sh("cat /etc/ssh/ssh_host_ed25519_key.pub")[1] for node in nodes}
    assert len(keys) == len(nodes)


def test_attacker_reaches_every_node(attacker, nodes):
    for node in nodes:
        assert attack.port_open(attacker, node, 22), node.name
        assert attack.port_open(attacker, node, 8006), node.name


def fail2ban_regex(log_text):
    """The deploy's proxmox filter over `log_text` with the real fail2ban-regex (on this machine):
    the number of lines it counts as failures."""
    tool = subprocess.run(
        [str(ROOT / "scripts/ensure-fail2ban-regex.sh")], capture_output=True, text=True
    )
    assert tool.returncode == 0, tool.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log:
        log.write(log_text)
        log.flush()
        out = subprocess.run(
            [tool.stdout.strip(), log.name, str(FILTER)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    match = re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", out.stdout, re.M)
    assert match, out.stdout + out.stderr
    return int(match.group(1))


def attempts(attacker, node, ip=None):
    """Every kind of login PVE logs, once each: [(HTTP codes, the line it must write or None)]."""
    rhost = client_seen(node, ip)
    legacy = node.variant == "legacy"
    vnc = {
        "authid": "root@pam",
        "vncticket": "PVEVNC:guess",
        "path": "/vms/100",
        "privs": "VM.Console",
    }
    tfa_ok = attack.web_login(attacker, node, "tfa@pve", config.PVE_PASSWORD, ip=ip)  # first factor
    if legacy:  # PVE 7: the second factor has its own endpoint, and its own line
        second = attack.web_post(
            attacker,
            node,
            "/api2/json/access/tfa",
            {"response": "000000"},
            ip=ip,
            cookie="PVEAuthCookie=PVE:!tfa!tfa@pve:LAB",
        )
        second_line = (
            f"authentication verification failure; rhost={rhost} user=tfa@pve msg=oath auth failed"
        )
    else:
        second = attack.web_login(
            attacker, node, "tfa@pve", "totp:000000", ip=ip, **{"tfa-challenge": "x"}
        )
        second_line = f"authentication failure; rhost={rhost} user=tfa@pve msg=failed 2nd factor"
    extjs = attack.web_post(
        attacker,
        node,
        "/api2/extjs/access/ticket",
        {"username": "admin@pve", "password": "wrong"},
        ip=ip,
    )
    fail = f"authentication failure; rhost={rhost} user="
    return [
        (
            attack.web_login(attacker, node, "root@pam", ip=ip),
            ["401"],
            fail + "root@pam msg=Authentication failure",
        ),
        (extjs, ["200"], fail + "admin@pve msg=invalid credentials"),
        (
            attack.web_login(attacker, node, "nobody", ip=ip, realm="pve"),
            ["401"],
            fail + "nobody@pve msg=no such user ('nobody@pve')",
        ),
        (
            attack.web_login(attacker, node, "x y@pve", ip=ip),
            ["401"],
            fail + "x y@pve msg=value 'x y@pve' does not look like a valid user name",
        ),
        (
            attack.web_login(attacker, node, "root", ip=ip),
            ["401"],
            fail + "root msg=value 'root' does not look like a valid user name",
        ),
        (
            attack.web_login(attacker, node, "ab", ip=ip),
            ["401"],
            fail + "ab msg=user name 'ab' is too short",
        ),
        (
            attack.web_login(attacker, node, "disabled@pve", config.PVE_PASSWORD, ip=ip),
            ["401"],
            fail + "disabled@pve msg=user 'disabled@pve' is disabled",
        ),
        (tfa_ok, ["200"], None),
        (second, ["401"], second_line),
        (
            attack.web_post(attacker, node, "/api2/json/access/vncticket", vnc, ip=ip),
            ["401"],
            fail + "root@pam msg=permission denied - invalid PVEVNC ticket",
        ),
        (attack.web_login(attacker, node, "root@pam", config.PVE_PASSWORD, ip=ip), ["200"], None),
        (
            [attack.openid_login(attacker, node, ip=ip)],
            ["401"],
            f"openid authentication failure; rhost={rhost} msg=Failed to verify the authorization code",
        ),
    ]


def client_seen(node, ip=None):
    """The attacker as this node's PVE logs it."""
    if ip and ":" in ip:
        return config.ATTACKER_IP6
    return (
        config.ATTACKER_IP
        if "PVE_SIM_LISTEN=0.0.0.0" in node.sh("cat /etc/pvelab/pvedaemon.env")[1]
        else f"::ffff:{config.ATTACKER_IP}"
    )


def journal_cursor(node):
    return node.sh("journalctl -q -n 0 --show-cursor -u pvedaemon | sed -n 's/^-- cursor: //p'")[
        1
    ].strip()


@pytest.mark.parametrize("variant", ["pve8", "pve9", "legacy"])
def test_pvedaemon_writes_every_line_pve_writes_and_the_filter_counts_each_failure_once(
    nodes, attacker, variant
):
    node = by_variant(nodes, variant)
    cursor = journal_cursor(node)
    before = int(node.sh("cat /var/log/daemon.log 2>/dev/null | wc -l")[1].strip() or 0)
    done = attempts(attacker, node)
    for codes, expected, _ in done:
        assert codes == expected, (codes, expected)
    journal = node.sh(f"journalctl -q -o short --no-pager -u pvedaemon --after-cursor='{cursor}'")[
        1
    ]
    pid = r"pvedaemon\[\d+\]: "
    for _, _, line in done:
        if line:
            assert re.search(pid + re.escape(line) + "$", journal, re.M), (
                f"{node.name}: no line {line}"
            )
    assert (
        len(re.findall(pid + re.escape("<root@pam> successful auth for user 'root@pam'"), journal))
        == 1
    )
    assert (
        len(re.findall(pid + re.escape("<root@pam> successful auth for user 'tfa@pve'"), journal))
        == 1
    )
    pam_rhost = "" if variant == "legacy" else client_seen(node)
    assert re.search(
        r"IPCC\.xs\[\d+\]: pam_unix\(proxmox-ve-auth:auth\): authentication failure; logname= uid=0 "
        rf"euid=0 tty= ruser= rhost={re.escape(pam_rhost)}  user=root$",
        journal,
        re.M,
    ), journal
    failures = sum(1 for _, _, line in done if line)
    assert fail2ban_regex(journal) == failures  # each failing attempt once, no success, no PAM line

    # The journal knows the lines as the pvedaemon unit, ident pvedaemon, facility daemon, priority err.
    _, out = node.sh(
        f"journalctl -o json --no-pager --after-cursor='{cursor}' _SYSTEMD_UNIT=pvedaemon.service "
        "SYSLOG_IDENTIFIER=pvedaemon"
    )
    records = [json.loads(line) for line in out.splitlines() if "no such user" in line]
    assert records and records[0]["SYSLOG_FACILITY"] == "3" and records[0]["PRIORITY"] == "3"

    if variant == "legacy":  # and rsyslog's daemon.log, as the file backend reads it
        daemon_log = "\n".join(node.sh("cat /var/log/daemon.log")[1].splitlines()[before:]) + "\n"
        for _, _, line in done:
            if line:
                assert re.search(
                    r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d pve\d+ " + pid + re.escape(line) + "$",
                    daemon_log,
                    re.M,
                ), line
        assert fail2ban_regex(daemon_log) == failures


def test_hostile_user_names_are_logged_exactly_as_sent(nodes, attacker):
    node = by_variant(nodes, "pve8")
    hostile = f"x{token()} rhost=192.0.2.66 user=root@pam"
    assert attack.web_login(attacker, node, hostile) == ["401"]
    lines = pvedaemon_lines(node, hostile)
    assert lines and lines[0].endswith(
        f"rhost={ATTACKER} user={hostile} msg=value '{hostile}' does not look like a valid user name"
    )
    realm = f"y{token()}"  # a realm field carrying an address: the user name PVE logs is name@realm
    assert attack.web_login(attacker, node, realm, realm="pve rhost=192.0.2.67") == ["401"]
    lines = pvedaemon_lines(node, realm)
    assert lines and lines[0].endswith(
        f"user={realm}@pve rhost=192.0.2.67 msg=value '{realm}@pve rhost=192.0.2.67'"
        " does not look like a valid user name"
    )


def test_user_names_over_64_characters_are_refused_unlogged_with_pves_text(nodes, attacker):
    node = by_variant(nodes, "pve9")
    long_name = "y" * 65
    assert attack.web_login(attacker, node, long_name) == ["400"]
    _, body = attacker.sh(
        f"curl -sk --data-urlencode username={long_name} --data-urlencode password=x "
        f"https://{node.ip}:8006/api2/json/access/ticket"
    )
    assert json.loads(body)["data"]["errors"]["username"] == "value may only be 64 characters long"
    assert pvedaemon_lines(node, long_name) == []
    assert attack.web_post(
        attacker,
        node,
        "/api2/json/access/vncticket",
        {"authid": long_name, "vncticket": "x", "path": "/", "privs": "Sys.Audit"},
    ) == ["400"]
    assert pvedaemon_lines(node, long_name) == []


def test_pve_listening_on_ipv4_only_logs_plain_addresses_after_pves_real_delay(lab):
    """A node whose PVE listens on 0.0.0.0 (IPv6 off): rhost is a.b.c.d. Failed logins are answered
    after PVE's 3 s, as on a real node; a good one at once."""
    node = lab.recreate(by_variant(lab.nodes(), "pve9"), ipv4_only=True, delay=3)
    attacker = lab.attacker()
    try:
        started = time.monotonic()
        assert attack.web_login(attacker, node, "root@pam") == ["401"]
        failed = time.monotonic() - started
        assert failed >= 2.9  # a lower bound: load only makes it longer
        started = time.monotonic()
        assert attack.web_login(attacker, node, "root@pam", config.PVE_PASSWORD) == ["200"]
        assert time.monotonic() - started < failed  # not delayed (compared, not timed: load)
        assert pvedaemon_lines(
            node, f"rhost={config.ATTACKER_IP} user=root@pam msg=Authentication failure"
        )
        assert not attack.port_open(attacker, node, 8006, ip=node.ip6)  # nothing listens on IPv6
    finally:
        fresh = lab.recreate(node)
        lab.write_known_hosts(lab.nodes())
    assert attack.port_open(attacker, fresh, 8006, ip=fresh.ip6)


def names_of(lab, *names):
    """Which of `names` are containers here now. Only these are looked at: test workers run labs of
    their own side by side, whose containers come and go meanwhile (a list of every container
    inspects each one, and one removed in between raised NotFound)."""
    found = set()
    for name in names:
        listed = lab.client.containers.list(all=True, filters={"name": name}, ignore_removed=True)
        found |= {c.name for c in listed if c.name == name}
    return found


def test_leftovers_of_a_crashed_run_are_cleaned_and_nothing_else_is_touched(lab):
    """Runs last here: it re-creates the lab. A leftover container of this lab's namespace goes;
    a container made from a lab image, not by the lab, stays, and so does a container of another
    namespace's lab (another test worker's, or another checkout's: labs side by side never touch
    each other)."""
    image = lab.attacker().container.image
    stray = f"{config.PREFIX}-stray"
    other, outsider = f"pvelab-elsewhere-{token()}", f"not-the-labs-{token()}"
    labels = {config.LABEL: "1", "pvelab.role": "node"}
    made = [
        lab.client.containers.run(
            image, name=stray, command="sleep 600", detach=True,
            labels={**labels, config.NS_LABEL: config.NS_VALUE},
        ),
        lab.client.containers.run(image, name=outsider, command="sleep 600", detach=True),
        lab.client.containers.run(
            image, name=other, command="sleep 600", detach=True,
            labels={**labels, config.NS_LABEL: f"elsewhere-{config.NS_VALUE}"},
        ),
    ]  # fmt: skip
    try:
        nodes = lab.up(data=config.PER_NODE_COUNT)  # its clean-up first: lab.down()
        assert names_of(lab, stray, outsider, other) == {outsider, other}
        assert [n.variant for n in nodes] == ["pve8", "pve9", "legacy"]
    finally:
        for container in made:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
