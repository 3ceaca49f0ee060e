"""Reverse proxies in front of a product (pvefail2ban/proxies.py): what a node's proxy
configuration and `ss` say, parsed (hostile input: hypothesis), and what the plan makes of it."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pvefail2ban import proxies
from pvefail2ban.defaults import DEFAULTS
from pvefail2ban.facts import parse_node
from pvefail2ban.plan import plan_node
from pvefail2ban.products import PVE
from pvefail2ban.render import render_files
from pvefail2ban.settings import validate
from tests.unit.nodes import recorded

# Proxmox's wiki example (pve.proxmox.com/wiki/Web_Interface_Via_Nginx_Proxy), as Debian's nginx
# reads it from sites-enabled
NGINX_WIKI = """
upstream proxmox {
    server "pve1.example.com";
}
server {
    listen 80 default_server;
    rewrite ^(.*) https://$host$1 permanent;
}
server {
    listen 443 ssl;
    server_name _;
    ssl_certificate /etc/pve/local/pve-ssl.pem;
    ssl_certificate_key /etc/pve/local/pve-ssl.key;
    proxy_redirect off;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_pass https://localhost:8006;
        proxy_buffering off;
    }
}
"""
DEBIAN_NGINX = "http {\n    access_log /var/log/nginx/access.log;\n    include /etc/nginx/sites-enabled/*;\n}\n"
HAPROXY = """
frontend fe_https
    bind :::443 v4v6 ssl crt /etc/haproxy/pve.pem
    default_backend be_pve
backend be_pve
    # server old 127.0.0.1:8007
    server pve1 127.0.0.1:8006 ssl verify none
"""
CADDY = """
:443 {
    tls internal
    reverse_proxy https://127.0.0.1:8006 {
        transport http {
            tls_insecure_skip_verify
        }
    }
    log {
        output file /var/log/caddy/access.log
    }
}
"""
SS = [
    'LISTEN 0 511 0.0.0.0:443 0.0.0.0:* users:(("nginx",pid=812,fd=6),("nginx",pid=811,fd=6))',
    'LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=812,fd=5))',
    'LISTEN 0 4096 *:8006 *:* users:(("pveproxy worker",pid=900,fd=6))',
    'LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=300,fd=4))',
]


def test_each_proxy_names_the_products_port_it_forwards_to():
    assert proxies.forwards(proxies.NGINX, DEBIAN_NGINX + NGINX_WIKI) == [8006]
    assert proxies.forwards(proxies.HAPROXY, HAPROXY) == [8006]  # the commented server is none
    assert proxies.forwards(proxies.CADDY, CADDY) == [8006]
    assert proxies.forwards(proxies.CADDY, "x {\n  reverse_proxy localhost:8007\n}") == [8007]
    assert proxies.forwards(proxies.NGINX, "listen 8006;\nproxy_pass http://[::1]:8443/;") == [8443]
    assert proxies.forwards(proxies.NGINX, "proxy_pass http://127.0.0.1:18006;") == []


def test_where_each_proxy_logs():
    assert proxies.nginx_logs(DEBIAN_NGINX + NGINX_WIKI) == (["/var/log/nginx/access.log"], None)
    assert proxies.nginx_logs("server {}") == (["/var/log/nginx/access.log"], None)
    paths, why = proxies.nginx_logs("access_log /var/log/nginx/pve.log main;")
    assert paths == [] and "log format of its own (main)" in why
    assert proxies.nginx_logs("access_log /var/log/nginx/a.log combined;\naccess_log off;") == (
        ["/var/log/nginx/a.log"],
        None,
    )
    assert proxies.caddy_log(CADDY) == ("/var/log/caddy/access.log", None)
    assert proxies.caddy_log(":443 {\n  log\n}") == (None, None)  # the journal
    path, why = proxies.caddy_log(":443 {\n  reverse_proxy localhost:8006\n}")
    assert path is None and "no `log` directive" in why
    path, why = proxies.caddy_log("x {\n log {\n  format console\n }\n}")
    assert path is None and "console" in why


def test_what_listens_where():
    assert proxies.listening(SS) == {
        "nginx": [80, 443],
        "sshd": [22],
    }  # a name with a space is no process of ours


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000), st.lists(st.text(max_size=300), max_size=20))
def test_hostile_configuration_gives_canonical_values_or_nothing(text, lines):
    for proxy in proxies.PROXIES:
        assert set(proxies.forwards(proxy, text)) <= set(proxies.PRODUCT_PORTS)
    paths, why = proxies.nginx_logs(text)
    assert all(proxies._PATH.fullmatch(p) for p in paths) and (why is None or isinstance(why, str))
    path, why = proxies.caddy_log(text)
    assert path is None or proxies._PATH.fullmatch(path)
    for name, ports in proxies.listening(lines).items():
        assert all(0 < p < 65536 for p in ports) and len(name) <= 32


def facts_with(**texts):
    """The recorded pve8 node, converged, with these proxies running (their configuration)."""
    doc = recorded("pve8")
    doc["proxies"], doc["listening"] = texts, SS
    return parse_node(json.dumps(doc))


def plan(facts, **data):
    return plan_node(validate({**DEFAULTS, **data}), facts, share=True)


def test_a_proxy_in_front_of_pve_gets_a_jail_on_its_log_banning_on_its_ports_too():
    facts = facts_with(nginx=DEBIAN_NGINX + NGINX_WIKI)
    assert facts["proxies"] == {
        "nginx": {
            "forwards": [8006],
            "listens": [80, 443],
            "logs": ["/var/log/nginx/access.log"],
            "why": None,
        }
    }
    node = plan(facts)
    jail = next(j for j in node.jails if j.name == "proxy-nginx")
    assert jail.ports == ["80", "443", "8006"]  # its own, then the product's (443, 80, 8006)
    assert (jail.backend, jail.logpath, jail.filter) == (
        "file",
        "/var/log/nginx/access.log",
        "proxy-nginx",
    )
    assert node.blind == []
    files = render_files(node, validate(DEFAULTS))
    text = files[proxies.NGINX.jail_file].decode()
    assert "pve-fail2ban-share[name=proxmox]" in text  # the peers ban it in their proxmox jail
    assert "logpath   = /var/log/nginx/access.log" in text
    assert "/etc/fail2ban/filter.d/proxy-nginx.conf" in files


def test_a_proxy_logging_to_the_journal_is_read_there():
    node = plan(facts_with(haproxy=HAPROXY))
    jail = next(j for j in node.jails if j.name == "proxy-haproxy")
    assert (jail.backend, jail.journalmatch) == ("systemd", "_SYSTEMD_UNIT=haproxy.service")


def test_a_proxy_left_out_by_the_setting_or_unreadable_leaves_the_node_not_protected():
    off = plan(facts_with(nginx=NGINX_WIKI), fail2ban_web_proxy="off")
    assert not [j for j in off.jails if j.name.startswith("proxy-")]
    (why,) = off.blind
    assert "nginx (listening on 80, 443) forwards to 8006" in why and "'auto'" in why
    other = plan(facts_with(nginx=NGINX_WIKI), fail2ban_web_proxy="caddy")
    assert other.blind and "nginx" in other.blind[0]
    silent = plan(facts_with(caddy=":443 {\n  reverse_proxy https://127.0.0.1:8006\n}"))
    assert silent.blind and "no `log` directive" in silent.blind[0]


def test_a_proxy_in_front_of_nothing_here_changes_nothing():
    node = plan(facts_with(nginx="location / {\n  proxy_pass http://127.0.0.1:3000;\n}"))
    assert not [j for j in node.jails if j.name.startswith("proxy-")] and node.blind == []


# ---- the products' own web proxy: pveproxy's access log (API tokens, tickets, SPICE) ------------


def as_bash_reads(text, tmp=None):
    """{"text", "header", "allow_from"} of /etc/default/pveproxy holding `text`, read the probe's
    way: sourced by bash, as pveproxy reads it."""
    import tempfile
    import types

    from pvefail2ban.facts import bundled

    probe = types.ModuleType("probe")  # as the node runs it (tests/unit/test_probe.py)
    exec(compile(bundled("probe.py"), "probe.py", "exec"), probe.__dict__)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/pveproxy"
        with open(path, "w") as file:
            file.write(text)
        return probe.access_defaults({"pve": path})["pve"]


def facts_real_ip(text):
    """The recorded pve8 node, converged, with this /etc/default/pveproxy."""
    doc = recorded("pve8")
    doc["access_defaults"] = {"pve": as_bash_reads(text)}
    return parse_node(json.dumps(doc))


def pveproxy_reads(text):
    values = as_bash_reads(text)
    return proxies.real_ip(values["header"], values["allow_from"])


def test_pveproxy_s_real_ip_settings_are_read_as_pveproxy_reads_them():
    unset = {"header": None, "allow_from": None, "why": None}
    assert pveproxy_reads("") == unset
    assert pveproxy_reads('LISTEN_IP="::"\n# PROXY_REAL_IP_HEADER="X-Real-IP"\n') == unset
    doc = 'PROXY_REAL_IP_HEADER="X-Forwarded-For"\nPROXY_REAL_IP_ALLOW_FROM="192.168.0.2, 10.1.0.0/16"'
    assert pveproxy_reads(doc) == {
        "header": "X-Forwarded-For",
        "allow_from": ["10.1.0.0/16", "192.168.0.2/32"],
        "why": None,
    }
    # whatever bash makes of the file: the last assignment, `all`, every address, an unset, a
    # space after `=` (an empty value for one command), a form feed (no line break for bash)
    header = 'PROXY_REAL_IP_HEADER="X-Forwarded-For"\n'
    for tail in (
        "PROXY_REAL_IP_ALLOW_FROM=all",
        "PROXY_REAL_IP_ALLOW_FROM=0.0.0.0/0,::/0",
        "unset PROXY_REAL_IP_ALLOW_FROM",
        "PROXY_REAL_IP_ALLOW_FROM= 192.0.2.80",
        "# old\x0cPROXY_REAL_IP_ALLOW_FROM=192.0.2.80",
        "if false; then PROXY_REAL_IP_ALLOW_FROM=192.0.2.80; fi",
    ):
        found = pveproxy_reads(f'{header}PROXY_REAL_IP_ALLOW_FROM="192.0.2.9"\n{tail}\n')
        assert found == {
            "header": "X-Forwarded-For",
            "allow_from": ["192.0.2.9/32"],
            "why": None,
        } or (found["allow_from"] is None), tail
    assert pveproxy_reads(header + "unset PROXY_REAL_IP_ALLOW_FROM\n")["allow_from"] is None
    assert pveproxy_reads(header + "PROXY_REAL_IP_ALLOW_FROM= 192.0.2.80\n")["allow_from"] is None
    assert pveproxy_reads("declare -x PROXY_REAL_IP_HEADER=X-Real-IP\n")["header"] == "X-Real-IP"
    assert pveproxy_reads(header + "PROXY_REAL_IP_ALLOW_FROM='$NETS'\n")["why"] == (
        "PROXY_REAL_IP_ALLOW_FROM holds '$NETS': no network"
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.text(max_size=600))
def test_hostile_pveproxy_values_give_a_header_name_and_networks_or_a_reason(header, allowed):
    found = proxies.real_ip(header, allowed)
    assert found["header"] is None or proxies.re.fullmatch(r"[A-Za-z0-9-]{1,64}", found["header"])
    for net in found["allow_from"] or []:
        assert str(proxies.ipaddress.ip_network(net)) == net  # canonical
    assert found["why"] is None or found["allow_from"] is None


def test_a_pve_node_gets_a_jail_on_pveproxy_s_access_log_for_tokens_tickets_and_spice():
    node = plan(facts_real_ip(""))
    jail = next(j for j in node.jails if j.name == "pveproxy")
    assert (jail.backend, jail.logpath, jail.filter) == (
        "file",
        "/var/log/pveproxy/access.log",
        "proxmox-access",
    )
    assert jail.ports == ["443", "80", "8006", "3128"] and jail.maxretry == 10
    files = render_files(node, validate(DEFAULTS))
    text = files["/etc/fail2ban/jail.d/10_pveproxy.local"].decode()
    assert "[pveproxy]" in text and "logpath   = /var/log/pveproxy/access.log" in text
    assert "/etc/fail2ban/filter.d/proxmox-access.conf" in files
    off = plan(facts_real_ip(""), fail2ban_proxmox_access_log=False)
    assert "pveproxy" not in [j.name for j in off.jails]


def test_an_address_any_client_may_choose_gets_no_jail_and_a_warning():
    chosen = 'PROXY_REAL_IP_HEADER="X-Forwarded-For"\n'
    node = plan(facts_real_ip(chosen))
    assert "pveproxy" not in [j.name for j in node.jails]
    (warning,) = [w for w in node.warnings if "PROXY_REAL_IP" in w]
    assert "without PROXY_REAL_IP_ALLOW_FROM" in warning and "not set up" in warning
    trusted = plan(facts_real_ip(chosen + 'PROXY_REAL_IP_ALLOW_FROM="192.0.2.80"\n'))
    assert "pveproxy" in [j.name for j in trusted.jails]
    assert not [w for w in trusted.warnings if "PROXY_REAL_IP" in w]


# ---- fail2ban_trusted_proxies: a proxy on another host ------------------------------------------


def test_trusted_proxies_are_never_banned_and_pveproxy_logs_their_clients():
    facts = facts_real_ip('LISTEN_IP="::"\nPROXY_REAL_IP_HEADER="X-Real-IP"\n')
    node = plan(facts, fail2ban_trusted_proxies=["192.0.2.80", "10.10.0.0/24"])
    assert "192.0.2.80" in node.ignoreip and "10.10.0.0/24" in node.ignoreip
    assert node.pveproxy_defaults == (
        'LISTEN_IP="::"\n'
        f"{proxies.REAL_IP_MARK}\n"
        'PROXY_REAL_IP_HEADER="X-Forwarded-For"\n'
        'PROXY_REAL_IP_ALLOW_FROM="192.0.2.80,10.10.0.0/24"\n'
    )  # the admin's other lines kept, its own real-IP header replaced: no client chooses
    jails = {j.name: j for j in node.jails}
    assert (jails["proxmox"].logpath, jails["proxmox"].filter) == (
        "/var/log/pveproxy/access.log",
        "proxmox-access[mode=logins]",
    )  # pvedaemon logs the proxy: the logins are counted where pveproxy names the client
    assert jails["pveproxy"].filter == "proxmox-access"  # and the rest of the 401s, once
    files = render_files(node, validate(DEFAULTS))
    assert "filter    = proxmox-access[mode=logins]" in files[PVE.jail_file].decode()
    # once written, nothing to do; emptied, our lines go and the admin's stay
    done = facts_real_ip(node.pveproxy_defaults)
    assert (
        plan(done, fail2ban_trusted_proxies=["192.0.2.80", "10.10.0.0/24"]).pveproxy_defaults
        is None
    )
    back = plan(done)
    assert back.pveproxy_defaults == 'LISTEN_IP="::"\n'
    assert next(j for j in back.jails if j.name == "proxmox").filter == "proxmox"
    assert plan(facts).pveproxy_defaults is None  # never ours: left as it is


def test_trusted_proxies_are_checked_before_any_node_is_touched():
    wide = (["0.0.0.0/0"], ["::/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["::"], ["::ffff:0:0/96"])
    for bad in (["proxy.example.com"], ["10.0.0.1/8"], ["fe80::1%eth0"], "x y", *wide):
        try:
            validate({**DEFAULTS, "fail2ban_trusted_proxies": bad})
        except Exception as error:  # noqa: BLE001
            assert "fail2ban_trusted_proxies" in str(error) and "nothing was changed" in str(error)
        else:
            raise AssertionError(bad)
    ok = validate({**DEFAULTS, "fail2ban_trusted_proxies": ["::ffff:192.0.2.80", "10.0.0.0/8"]})
    assert ok["trusted_proxies"] == ["192.0.2.80", "10.0.0.0/8"]


def test_a_product_without_real_ip_support_behind_trusted_proxies_is_told():
    doc = recorded("pmg")
    node = plan_node(
        validate({**DEFAULTS, "fail2ban_trusted_proxies": ["192.0.2.80"]}),
        parse_node(json.dumps(doc)),
    )
    assert any("Proxmox Mail Gateway cannot log the client" in w for w in node.warnings)
    assert node.pveproxy_defaults is None and "192.0.2.80" in node.ignoreip


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_whatever_the_file_holds_the_rewrite_leaves_only_our_real_ip_lines(text):
    out = proxies.with_real_ip(text, ["192.0.2.80"])
    named = [line for line in out.split("\n") if "PROXY_REAL_IP_" in line.split("#", 1)[0]]
    assert named == [
        'PROXY_REAL_IP_HEADER="X-Forwarded-For"',
        'PROXY_REAL_IP_ALLOW_FROM="192.0.2.80"',
    ]  # what bash makes of the rest is checked before it goes live (pveproxy-real-ip.sh)
    assert proxies.with_real_ip(out, ["192.0.2.80"]) == out  # a second run changes nothing
    back = proxies.with_real_ip(out, [])
    assert proxies.REAL_IP_MARK not in back and 'ALLOW_FROM="192.0.2.80"' not in back


def test_an_upstream_block_or_a_one_line_location_is_read_too():
    upstream = "upstream pve {\n    server 127.0.0.1:8006;\n}\nserver {\n  listen 443 ssl;\n"
    upstream += "  location / { proxy_pass https://pve; }\n}\n"
    assert proxies.forwards(proxies.NGINX, upstream) == [8006]
    one_line = "server { listen 443; location / { proxy_pass https://127.0.0.1:8006; } }"
    assert proxies.forwards(proxies.NGINX, one_line) == [8006]
    assert proxies.forwards(proxies.NGINX, "server {\n  listen 8006;\n}") == []


def test_a_pveproxy_file_the_probe_cannot_read_whole_is_never_rewritten(tmp_path):
    big = as_bash_reads("# é\n" * 40000)
    latin = tmp_path / "pveproxy"
    latin.write_bytes(b"# caf\xe9\nLISTEN_IP=::\n")
    assert big["text"] is None
    for values in (big,):
        doc = recorded("pve8")
        doc["access_defaults"] = {"pve": values}
        facts = parse_node(json.dumps(doc))
        try:
            plan(facts, fail2ban_trusted_proxies=["192.0.2.80"])
        except Exception as error:  # noqa: BLE001 - the node alone fails, naming the file
            assert "/etc/default/pveproxy is over" in str(error)
        else:
            raise AssertionError("rewritten")
        assert plan(facts).pveproxy_defaults is None
