"""Behind a reverse proxy: Debian's nginx (Proxmox's wiki example), HAProxy and Caddy, each on its
own PVE 8 node in front of the simulated pveproxy on 8006 (which then sees the proxy as its client,
as the real one does: rhost=::ffff:127.0.0.1, never banned). The deploy finds each proxy and bans
on its access log; an attacker through the proxy is refused on 443 and 8006, here and on the
peers; a forged X-Forwarded-For bans only its sender; the admin behind the proxy is never banned;
a proxy node with fail2ban_web_proxy = "off" fails verify with the reason.

pve1: nginx (443, 80), pve2: HAProxy (443), pve3: Caddy (443, its log in a file), pve4: a plain
pve8 peer. Cluster-wide bans on."""

import re
import shlex
import subprocess
import time

import pytest

from lab import attack, config
from lab.checks import banned, verified_nodes, wait_for

A = config.ATTACKER_IP
PEM, KEY = "/etc/pvelab/pve-ssl.pem", "/etc/pvelab/pve-ssl.key"
SETUP = {
    "nginx": f"""cat > /etc/nginx/sites-enabled/default <<'EOF'
server {{
    listen 80 default_server;
    rewrite ^(.*) https://$host$1 permanent;
}}
server {{
    listen 443 ssl;
    server_name _;
    ssl_certificate {PEM};
    ssl_certificate_key {KEY};
    proxy_redirect off;
    location / {{
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_pass https://localhost:8006;
        proxy_buffering off;
        client_max_body_size 0;
    }}
}}
EOF
systemctl restart nginx""",
    "haproxy": f"""cat {PEM} {KEY} > /etc/haproxy/pve.pem && cat >> /etc/haproxy/haproxy.cfg <<'EOF'

frontend fe_https
    bind :443 ssl crt /etc/haproxy/pve.pem
    default_backend be_pve

backend be_pve
    server pve1 127.0.0.1:8006 ssl verify none
EOF
systemctl restart haproxy""",
    "caddy": f"""install -o caddy -g caddy -m 600 {KEY} /etc/caddy/pve.key &&
install -o caddy -g caddy -m 644 {PEM} /etc/caddy/pve.pem && cat > /etc/caddy/Caddyfile <<'EOF'
{{
    auto_https off
}}
:443 {{
    tls /etc/caddy/pve.pem /etc/caddy/pve.key
    reverse_proxy https://127.0.0.1:8006 {{
        transport http {{
            tls_insecure_skip_verify
        }}
    }}
    log {{
        output file /var/log/caddy/access.log
    }}
}}
EOF
systemctl restart caddy""",
}
PROXY = {"pve1": "nginx", "pve2": "haproxy", "pve3": "caddy"}


@pytest.fixture(scope="module")
def lab(lab_control):
    # its tests count the attacker's failures per node (the 10th of 10 bans): config.PER_NODE_COUNT
    nodes = lab_control.up(variants=["proxy", "proxy", "proxy", "pve8"], data=config.PER_NODE_COUNT)
    for node in nodes[:3]:
        proxy = PROXY[node.name]
        node.sh(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
            f"{proxy} >/tmp/apt.log 2>&1 || {{ tail -20 /tmp/apt.log; exit 1; }}",
            timeout=300,
            check=True,
        )
        node.sh(SETUP[proxy], check=True)
        assert wait_for(lambda n=node: attack.port_open(lab_control.attacker(), n, 443), 20)
    run = lab_control.pyinfra()
    assert run.returncode == 0, run.report
    lab_control.first_run = run
    return lab_control


def node_named(lab, name):
    return next(n for n in lab.nodes() if n.name == name)


def unban_everywhere(lab, address):
    run = lab.pyinfra("--data", f"ip={address}", deploy="unban.py")
    assert run.returncode == 0, run.report


def test_each_proxy_gets_a_jail_on_its_log_and_every_node_is_verified(lab):
    assert verified_nodes(lab.first_run.text, lab.nodes()) == ["pve1", "pve2", "pve3", "pve4"]
    for name, proxy in PROXY.items():
        node = node_named(lab, name)
        status = node.sh(f"fail2ban-client status proxy-{proxy}")[1]
        assert "Currently banned:\t0" in status, status
        ports = node.sh(f"fail2ban-client get proxy-{proxy} action nftables-multiport port")[1]
        assert "443" in ports and "8006" in ports, ports
    assert "proxy-" not in node_named(lab, "pve4").sh("fail2ban-client status")[1]


@pytest.mark.parametrize("name", ["pve1", "pve2", "pve3"])
def test_an_attacker_through_the_proxy_is_refused_on_443_and_8006_here_and_on_the_peers(lab, name):
    node, attacker, peer = node_named(lab, name), lab.attacker(), node_named(lab, "pve4")
    jail = f"proxy-{PROXY[name]}"
    unban_everywhere(lab, A)
    before = node.sh("fail2ban-client status proxmox")[1]
    started = time.monotonic()
    codes = attack.web_login(attacker, node, "root@pam", count=3, port=443)
    assert codes[:2] == ["401", "401"], codes
    assert wait_for(lambda: A in banned(node, jail)), node.sh(f"fail2ban-client status {jail}")[1]
    assert wait_for(lambda: not attack.port_open(attacker, node, 443))
    took = time.monotonic() - started
    assert not attack.port_open(attacker, node, 8006)
    # the product saw the proxy: its jail counted nothing (loopback is never banned)
    line = node.journal("pvedaemon").splitlines()[-1]
    assert re.search(r"rhost=(::ffff:127\.0\.0\.1|::1|127\.0\.0\.1) ", line), line
    assert node.sh("fail2ban-client status proxmox")[1] == before
    # the peer bans it in its proxmox jail
    assert wait_for(lambda: A in banned(peer, "proxmox"))
    assert not attack.port_open(attacker, peer, 8006)
    print(f"{name} ({PROXY[name]}): refused on 443 {took:.1f} s after the first try")
    unban_everywhere(lab, A)
    assert wait_for(lambda: attack.port_open(attacker, node, 443))


@pytest.mark.parametrize("name", ["pve1", "pve3"])  # HAProxy cannot tell them (its byte count)
def test_failed_web_ui_logins_through_the_proxy_are_counted(lab, name):
    node, attacker = node_named(lab, name), lab.attacker()
    codes = attack.web_post(
        attacker,
        node,
        "/api2/extjs/access/ticket",
        {"username": "root@pam", "password": "wrong"},
        count=3,
        port=443,
    )
    assert codes[:2] == ["200", "200"], codes  # extjs: the failure inside a 200
    assert wait_for(lambda: A in banned(node, f"proxy-{PROXY[name]}"))
    unban_everywhere(lab, A)


def test_a_forged_x_forwarded_for_bans_only_its_sender(lab):
    node, attacker = node_named(lab, "pve1"), lab.attacker()
    victim = node_named(lab, "pve4").ip  # the sender claims to be a peer
    forged = "X-Forwarded-For: 198.51.100.23"
    for header in (forged, f"X-Forwarded-For: {victim}", f"X-Real-IP: {victim}"):
        attack.web_login(attacker, node, "root@pam", count=1, port=443, headers=(header,))
    assert wait_for(lambda: banned(node, "proxy-nginx") == [A])
    unban_everywhere(lab, A)


def total_failed(node, jail):
    text = node.sh(f"fail2ban-client status {jail}")[1]
    return int(re.search(r"Total failed:\s+(\d+)", text).group(1))


def test_the_admin_behind_the_proxy_is_never_banned(lab):
    node = node_named(lab, "pve1")
    before = total_failed(node, "proxy-nginx")
    for _ in range(4):  # from this controller, through nginx
        subprocess.run(
            ["curl", "-sk", "-o", "/dev/null", "--max-time", "5", "-d",
             "username=root@pam&password=wrong",
             f"https://{node.ip}:443/api2/json/access/ticket"],
            check=False,
        )  # fmt: skip
    time.sleep(2)
    assert banned(node, "proxy-nginx") == []
    assert total_failed(node, "proxy-nginx") == before  # ignored before it is counted


def test_a_proxy_node_without_the_setting_fails_verify_with_the_reason(lab, tmp_path):
    inventory = tmp_path / "inventory.py"
    data = {n.name: dict(config.PER_NODE_COUNT) for n in lab.nodes()}
    data["pve1"]["fail2ban_web_proxy"] = "off"
    lab.write_inventory(lab.nodes(), data, path=inventory)
    run = lab.pyinfra("--limit", "pve1", inventory=inventory)
    assert run.returncode != 0
    assert re.search(
        r"NOT PROTECTED: nginx \(listening on [0-9, ]*443[0-9, ]*\) forwards to 8006 here, "
        r"so the proxmox jail sees the proxy's address",
        run.text,
    ), run.report
    assert "fail2ban_web_proxy = 'off'" in run.text
    # and, on its own, what the daemon logged: every failure from loopback
    assert "NOT PROTECTED: jail proxmox sees only loopback" in run.text
    again = lab.pyinfra("--limit", "pve1")
    assert again.returncode == 0, again.report


# ---- pveproxy's own access log: API tokens, tickets, SPICE (pve4: no proxy in front) -----------

BAD_TOKEN = "Authorization: PVEAPIToken=root@pam!lab=not-the-secret"


def test_an_api_token_brute_force_and_bad_spice_tickets_are_banned(lab):
    node, attacker, peer = node_named(lab, "pve4"), lab.attacker(), node_named(lab, "pve1")
    unban_everywhere(lab, A)
    before = total_failed(node, "proxmox")
    codes = attack.web_get(attacker, node, "/api2/json/nodes", count=10, headers=(BAD_TOKEN,))
    assert codes[:9] == ["401"] * 9, codes
    assert wait_for(lambda: A in banned(node, "pveproxy")), node.sh(
        "fail2ban-client status pveproxy"
    )[1]
    assert wait_for(lambda: not attack.port_open(attacker, node, 8006))
    assert not attack.port_open(attacker, node, 3128)  # spiceproxy's port too
    assert total_failed(node, "proxmox") == before  # no daemon line names a token's client
    assert wait_for(lambda: A in banned(peer, "pveproxy"))  # cluster-wide
    unban_everywhere(lab, A)
    assert wait_for(lambda: attack.port_open(attacker, node, 3128))
    codes = attack.spice_connect(attacker, node, count=10)
    assert codes[:9] == ["401"] * 9, codes
    assert wait_for(lambda: A in banned(node, "pveproxy"))
    unban_everywhere(lab, A)


def test_a_password_login_counts_once_in_the_proxmox_jail_not_twice(lab):
    node, attacker = node_named(lab, "pve4"), lab.attacker()
    unban_everywhere(lab, A)
    login, access = total_failed(node, "proxmox"), total_failed(node, "pveproxy")
    attack.web_login(attacker, node, "root@pam", count=2)
    assert wait_for(lambda: total_failed(node, "proxmox") == login + 2)
    log = node.sh("tail -n 2 /var/log/pveproxy/access.log")[1]
    assert log.count('POST /api2/json/access/ticket HTTP/1.1" 401 50') == 2, log
    assert total_failed(node, "pveproxy") == access  # logged there too, counted once
    unban_everywhere(lab, A)


def write_real_ip(node, text):
    """/etc/default/pveproxy as `text`, pveproxy restarted on it and answering again."""
    node.sh(
        f"printf '%s' {shlex.quote(text)} > /etc/default/pveproxy && systemctl restart pvedaemon "
        "&& for i in $(seq 50); do ss -Hltn | grep -q ':8006 ' && exit 0; sleep 0.1; done; exit 1",
        check=True,
    )


def test_the_real_ip_header_counts_only_from_the_proxies_pveproxy_allows(lab):
    node, attacker = node_named(lab, "pve4"), lab.attacker()
    claimed = ("X-Forwarded-For: 198.51.100.23",)
    try:
        # a proxy elsewhere is allowed: a client that is not it chooses nothing, bans itself
        write_real_ip(node, 'PROXY_REAL_IP_HEADER="X-Forwarded-For"\n'
                      'PROXY_REAL_IP_ALLOW_FROM="192.0.2.80"\n')  # fmt: skip
        run = lab.pyinfra("--limit", "pve4")
        assert run.returncode == 0 and "PROXY_REAL_IP" not in run.text, run.report
        unban_everywhere(lab, A)
        assert wait_for(lambda: attack.port_open(attacker, node, 8006))
        codes = attack.web_get(attacker, node, "/api2/json/nodes", count=10,
                               headers=(BAD_TOKEN, *claimed))  # fmt: skip
        assert codes[:9] == ["401"] * 9, codes
        assert wait_for(lambda: banned(node, "pveproxy") == [A])
        unban_everywhere(lab, A)
        assert wait_for(lambda: attack.port_open(attacker, node, 8006))
        # the attacker's address allowed (a trusted proxy's): the header names the client
        write_real_ip(node, 'PROXY_REAL_IP_HEADER="X-Forwarded-For"\n'
                      f'PROXY_REAL_IP_ALLOW_FROM="{A}"\n')  # fmt: skip
        codes = attack.web_get(attacker, node, "/api2/json/nodes", count=10,
                               headers=(BAD_TOKEN, *claimed))  # fmt: skip
        assert codes == ["401"] * 10, codes  # the client named is banned, not its sender
        assert wait_for(lambda: banned(node, "pveproxy") == ["198.51.100.23"]), node.sh(
            "tail -n 12 /var/log/pveproxy/access.log; tail -n 20 /var/log/fail2ban.log"
        )[1]
        unban_everywhere(lab, "198.51.100.23")
        # no allow-list: any client chooses the logged address, so there is no jail on it
        write_real_ip(node, 'PROXY_REAL_IP_HEADER="X-Forwarded-For"\n')
        run = lab.pyinfra("--limit", "pve4")
        assert run.returncode == 0, run.report
        assert "PROXY_REAL_IP_HEADER=X-Forwarded-For without PROXY_REAL_IP_ALLOW_FROM" in run.text
        assert "pveproxy" not in node.sh("fail2ban-client status")[1]
    finally:
        write_real_ip(node, "")
    run = lab.pyinfra("--limit", "pve4")
    assert run.returncode == 0, run.report
    assert "pveproxy" in node.sh("fail2ban-client status")[1]


def test_behind_a_trusted_proxy_elsewhere_its_clients_are_banned_never_the_proxy(lab, tmp_path):
    """fail2ban_trusted_proxies: the attacker container plays the proxy on another host; the
    deploy sets pveproxy's PROXY_REAL_IP_* for it, and the proxmox jail reads pveproxy's log."""
    node, proxy, peer = node_named(lab, "pve4"), lab.attacker(), node_named(lab, "pve1")
    inventory = tmp_path / "inventory.py"
    data = {n.name: dict(config.PER_NODE_COUNT) for n in lab.nodes()}
    data["pve4"]["fail2ban_trusted_proxies"] = [A]
    lab.write_inventory(lab.nodes(), data, path=inventory)
    unban_everywhere(lab, A)
    try:
        run = lab.pyinfra("--limit", "pve4", inventory=inventory)
        assert run.returncode == 0, run.report
        assert "pveproxy logs the clients of fail2ban_trusted_proxies" in run.text
        defaults = node.sh("cat /etc/default/pveproxy")[1]
        assert f'PROXY_REAL_IP_ALLOW_FROM="{A}"' in defaults, defaults
        for client, path, code in (
            ("198.51.100.31", "/api2/json/access/ticket", "401"),
            ("198.51.100.32", "/api2/extjs/access/ticket", "200"),  # the web UI's
        ):
            codes = attack.web_post(
                proxy, node, path, {"username": "root@pam", "password": "wrong"}, count=3,
                headers=(f"X-Forwarded-For: {client}",),
            )  # fmt: skip
            assert codes == [code] * 3, codes
            assert wait_for(lambda c=client: c in banned(node, "proxmox")), node.sh(
                "tail -n 5 /var/log/pveproxy/access.log; fail2ban-client status proxmox"
            )[1]
            assert wait_for(lambda c=client: c in banned(peer, "proxmox"))
        assert A not in banned(node, "proxmox") and attack.port_open(proxy, node, 8006)
        # the admin's web UI still answers (pveproxy was restarted once), and a second run
        # changes nothing
        again = lab.pyinfra("--limit", "pve4", inventory=inventory)
        assert again.returncode == 0 and "PROXY_REAL_IP" not in again.text, again.report
        assert "pveproxy logs the clients" not in again.text
    finally:
        for client in ("198.51.100.31", "198.51.100.32"):
            unban_everywhere(lab, client)
        back = lab.pyinfra("--limit", "pve4")  # the setting emptied: our lines go
    assert back.returncode == 0, back.report
    assert "PROXY_REAL_IP" not in node.sh("cat /etc/default/pveproxy")[1]
    assert "journal" in node.sh("fail2ban-client status proxmox")[1].lower()  # pvedaemon's again


def test_a_proxy_purged_after_the_deploy_leaves_every_other_jail_running_after_a_reboot(lab):
    """nginx purged (its log gone with it) after the deploy, then the node reboots: fail2ban 1.0
    would not start at all for the proxy jail's missing log; it starts, sshd and the product are
    protected, verify and status name the blind jail, and the next run converges (runs last: the
    module's pve1 has no proxy after it)."""
    node, attacker = node_named(lab, "pve1"), lab.attacker()
    node.sh(
        "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q nginx nginx-common nginx-core "
        ">/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }; rm -f /var/log/nginx/access.log",
        timeout=300,
        check=True,
    )
    node = lab.reboot(node)
    assert wait_for(lambda: node.sh("fail2ban-client ping")[0] == 0), node.journal("fail2ban")
    jails = node.sh("fail2ban-client status")[1]
    assert "sshd" in jails and "proxmox" in jails and "proxy-nginx" in jails, jails
    status = lab.pyinfra("--limit", "pve1", deploy="status.py")
    assert status.returncode == 1, status.report
    assert "pve1: jail proxy-nginx reads no live source" in status.text, status.report
    unban_everywhere(lab, A)
    attack.ssh_login(attacker, node, count=4)
    assert wait_for(lambda: not attack.port_open(attacker, node, 22))
    attack.web_login(attacker, node, "root@pam", count=3)
    assert wait_for(lambda: A in banned(node, "proxmox"))
    assert wait_for(lambda: not attack.port_open(attacker, node, 8006))
    unban_everywhere(lab, A)
    run = lab.pyinfra("--limit", "pve1")  # no proxy there now: its jail goes, the node is verified
    assert run.returncode == 0, run.report
    assert verified_nodes(run.text, [node]) == ["pve1"], run.report
    assert "proxy-nginx" not in node.sh("fail2ban-client status")[1]
    status = lab.pyinfra("--limit", "pve1", deploy="status.py")
    assert status.returncode == 0, status.report
