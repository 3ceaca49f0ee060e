"""Reverse proxies in front of a product's web UI on the node itself (nginx, HAProxy, Caddy, as
Debian packages them), each described once: how one is found, where it records the client's
address, the jail that reads it. Behind such a proxy the product logs the proxy as its client
(pvedaemon: `rhost=::ffff:127.0.0.1`, which every jail ignores): its own jail is blind, and only
the proxy's log names the attacker (shared/PROXMOX-LOGS.md, docs/reverse-proxy.md).

Pure: what the probe read on a node (configuration text, `ss -Hltnp` lines: hostile input) in,
canonical values out.
"""

import ipaddress
import re
from dataclasses import dataclass

# the products' own ports, as a proxy's configuration names its upstream (PVE/PMG 8006, PBS 8007,
# PDM 8443)
PRODUCT_PORTS = (8006, 8007, 8443)
MAX_CONFIG = 256 << 10  # bytes of a proxy's configuration read (all its files together)


@dataclass(frozen=True, kw_only=True)
class Proxy:
    key: str  # fail2ban_web_proxy's value for it
    name: str
    unit: str  # the unit that tells it runs
    process: str  # the name `ss -p` shows for its listening sockets
    configs: tuple  # its configuration files (globs)
    jail: str
    jail_file: str
    filter: str  # files/etc/fail2ban/filter.d/<filter>.conf
    failure: str  # a regex that finds a failed login in its log (the check's fail2ban-regex)
    default_log: str = None  # the access log it writes unless configured otherwise; None: journal
    journalmatch: str = None  # where it logs to the journal: its unit (one long-lived process)


NGINX = Proxy(
    key="nginx",
    name="nginx",
    unit="nginx.service",
    process="nginx",
    configs=("/etc/nginx/nginx.conf", "/etc/nginx/conf.d/*.conf", "/etc/nginx/sites-enabled/*"),
    jail="proxy-nginx",
    jail_file="/etc/fail2ban/jail.d/07_proxy-nginx.local",
    filter="proxy-nginx",
    failure=r'"POST [^"]*" 401 [1-9]',
    default_log="/var/log/nginx/access.log",
)
HAPROXY = Proxy(
    key="haproxy",
    name="HAProxy",
    unit="haproxy.service",
    process="haproxy",
    configs=("/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d/*.cfg"),
    jail="proxy-haproxy",
    jail_file="/etc/fail2ban/jail.d/08_proxy-haproxy.local",
    filter="proxy-haproxy",
    failure=r' 401 .*"POST ',
    journalmatch="_SYSTEMD_UNIT=haproxy.service",
)
CADDY = Proxy(
    key="caddy",
    name="Caddy",
    unit="caddy.service",
    process="caddy",
    configs=("/etc/caddy/Caddyfile", "/etc/caddy/conf.d/*"),
    jail="proxy-caddy",
    jail_file="/etc/fail2ban/jail.d/09_proxy-caddy.local",
    filter="proxy-caddy",
    failure=r'"method":"POST".*"size":[1-9][0-9]*,"status":401,',
    journalmatch="_SYSTEMD_UNIT=caddy.service",
)
PROXIES = (NGINX, HAPROXY, CADDY)
BY_KEY = {p.key: p for p in PROXIES}

_PATH = re.compile(r"/[A-Za-z0-9._/-]{1,200}")
_UPSTREAM = re.compile(
    r"(?:^|[\s/@\"'=])(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+|\$[A-Za-z_(][^\s:]*)?:(\d{4,5})(?![\d.])"
)


def _lines(text):
    """The configuration's lines without comments (`#` to the end of the line)."""
    return [line.split("#", 1)[0].strip() for line in text[:MAX_CONFIG].splitlines()]


def forwards(proxy, text):
    """The products' ports (PRODUCT_PORTS) the proxy's configuration sends requests to: a
    `proxy_pass` (nginx), `server` (HAProxy) or `reverse_proxy`/`to` (Caddy) line naming one."""
    words = {
        "nginx": ("proxy_pass", "server"),  # `server host:port;` in an `upstream` block
        "haproxy": ("server",),
        "caddy": ("reverse_proxy", "to"),
    }
    found = set()
    for line in _lines(text):
        for statement in re.split(r"[;{}]", line):  # `location / { proxy_pass ...; }` on a line
            first = statement.split(None, 1)[0] if statement.strip() else ""
            if first not in words[proxy.key]:
                continue
            for match in _UPSTREAM.finditer(statement):
                port = int(match.group(1))
                if port in PRODUCT_PORTS:
                    found.add(port)
    return sorted(found)


def nginx_logs(text):
    """(paths, why not): the files nginx writes its access log to in the `combined` format
    (the default one), or why they cannot be read: an access log in a format of the admin's own
    (the filter reads `combined`), or switched off."""
    paths, why = [], None
    for line in _lines(text):
        match = re.match(r"access_log\s+(\S+)(?:\s+(\S+?))?\s*(?:\s\S.*)?;$", line)
        if not match:
            continue
        path, form = match.group(1), match.group(2)
        if path == "off":
            continue
        if not _PATH.fullmatch(path):
            why = f"nginx writes an access log where the deploy does not read it ({path[:80]})"
            continue
        if form and form != "combined":
            why = (
                f"nginx writes {path} in a log format of its own ({form[:40]}): the filter reads "
                "nginx's `combined` format"
            )
            continue
        paths.append(path)
    if not paths and not why:
        paths = [NGINX.default_log]
    return sorted(set(paths)), why


def caddy_log(text):
    """(path or None for the journal, why not): where Caddy writes the access log of its sites:
    `log { output file <path> }`, the journal (`log` to stderr, the default), or why it cannot be
    read (no `log` directive: Caddy logs no request; a format other than json)."""
    lines = _lines(text)
    if not any(re.match(r"log(\s|\{|$)", line) for line in lines):
        return None, (
            "Caddy logs no request here (no `log` directive in its site): add `log` to the site "
            "that proxies the product (docs/reverse-proxy.md)"
        )
    for line in lines:
        match = re.match(r"output\s+file\s+(\S+)", line)
        if match:
            if not _PATH.fullmatch(match.group(1)):
                return (
                    None,
                    f"Caddy writes its log where the deploy does not read it ({match.group(1)[:80]})",
                )
            return match.group(1), None
        match = re.match(r"format\s+(\S+)", line)
        if match and match.group(1) != "json":
            return None, f"Caddy writes its log as {match.group(1)[:40]}: the filter reads json"
    return None, None


def listening(lines):
    """{process name: [ports]} from `ss -Hltnp` lines (what each process listens on, any address)."""
    found = {}
    for line in lines[:4096]:
        fields = line.split()
        if len(fields) < 5:
            continue
        port = fields[3].rsplit(":", 1)[-1]
        if not port.isdigit() or not 0 < int(port) < 65536:
            continue
        for name in re.findall(r'\("([A-Za-z0-9_.-]{1,32})",pid=', line):
            found.setdefault(name, set()).add(int(port))
    return {name: sorted(ports) for name, ports in found.items()}


_REAL_IP_NAMES = re.compile(r"PROXY_REAL_IP_(?:HEADER|ALLOW_FROM)")


def real_ip(header, allowed):
    """{"header": the header pveproxy logs the client's address from, or None; "allow_from": the
    proxies' networks it takes it from (canonical), None when unset (then from any client: the
    address is the client's choice), "why": why the values cannot be trusted, or None}, from
    PROXY_REAL_IP_HEADER and PROXY_REAL_IP_ALLOW_FROM as bash sourced them (the probe), as
    pve-http-server reads them: the allow-list split on commas, `all` (or every address) = unset."""
    result = {"header": None, "allow_from": None, "why": None}
    if not header:
        return result
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
        return {**result, "why": "PROXY_REAL_IP_HEADER is not a plain header name"}
    result["header"] = header
    networks = []
    for item in (allowed or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item == "all":
            return result  # every client may set it: as unset
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            return {**result, "why": f"PROXY_REAL_IP_ALLOW_FROM holds {item[:60]!r}: no network"}
        if network.prefixlen == 0:
            return result  # 0.0.0.0/0, ::/0: every client
        networks.append(str(network))
    result["allow_from"] = sorted(set(networks))[:64] if networks else None
    return result


# fail2ban_trusted_proxies on a PVE node: pveproxy logs the address their X-Forwarded-For names
REAL_IP_HEADER = "X-Forwarded-For"
REAL_IP_MARK = (
    "# pve-fail2ban: fail2ban_trusted_proxies (these lines are its own, rewritten each run)"
)


def with_real_ip(text, trusted):
    """/etc/default/pveproxy's `text` with the PROXY_REAL_IP_* lines fail2ban_trusted_proxies
    gives (`trusted`: canonical addresses/networks): the header and the allow-list of those
    proxies only, under our mark, replacing any other line that names them (a client must never
    choose the logged address; scripts/pveproxy-real-ip.sh checks what bash then reads);
    `trusted` empty: our lines removed, the admin's own kept. Every other line as it was."""
    lines, kept, skip = (text or "").rstrip("\n").split("\n"), [], 0  # bash's lines: \n only
    for line in lines:
        if line == REAL_IP_MARK:
            skip = 2  # our two lines after the mark
            continue
        assignment = _REAL_IP_NAMES.search(line.split("#", 1)[0])  # set, unset, declared...
        if skip and assignment:
            skip -= 1
            continue
        skip = 0
        if trusted and assignment:
            continue
        kept.append(line)
    if trusted:
        kept += [
            REAL_IP_MARK,
            f'PROXY_REAL_IP_HEADER="{REAL_IP_HEADER}"',
            f'PROXY_REAL_IP_ALLOW_FROM="{",".join(trusted)}"',
        ]
    kept = kept if kept != [""] else []
    return "\n".join(kept) + "\n" if kept else ""
