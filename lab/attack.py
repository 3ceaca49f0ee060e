"""What the attacker container does to a node: failed web and SSH logins, reachability probes.

Every call is bounded (curl/ssh time-outs, counts given by the caller) and aims only at lab nodes.
`ip` picks the node's address to aim at (default its IPv4 one; its ip6 attribute for IPv6).
"""

import shlex
import subprocess

TICKET = "/api2/json/access/ticket"
OPENID = "/api2/json/access/openid/login"


def _url(node, path, ip=None, port=8006):
    host = ip or node.ip
    return f"https://{'[' + host + ']' if ':' in host else host}:{port}{path}"


def web_post(
    attacker, node, path, fields, count=1, timeout=5, ip=None, cookie=None, port=8006, headers=()
):
    """POST `fields` ({name: value}) to the simulated PVE (PMG on 8006, PBS on port 8007) `count`
    times, with extra `headers` ("Name: value"); return the HTTP codes ("000" = no connection)."""
    data = " ".join(f"--data-urlencode {shlex.quote(f'{k}={v}')}" for k, v in fields.items())
    extra = f"-H {shlex.quote('Cookie: ' + cookie)} " if cookie else ""
    extra += "".join(f"-H {shlex.quote(h)} " for h in headers)
    cmd = (
        f"for i in $(seq {int(count)}); do curl -gsk -o /dev/null -w '%{{http_code}}\\n' "
        f"--max-time {timeout} {extra}{data} {shlex.quote(_url(node, path, ip, port))}; done"
    )
    return attacker.sh(cmd, timeout=count * (timeout + 1) + 5)[1].split()


def web_get(attacker, node, path, count=1, timeout=5, port=8006, headers=()):
    """GET `path` `count` times with extra `headers` ("Name: value", e.g. a bad API token);
    return the HTTP codes."""
    extra = "".join(f"-H {shlex.quote(h)} " for h in headers)
    cmd = (
        f"for i in $(seq {int(count)}); do curl -gsk -o /dev/null -w '%{{http_code}}\\n' "
        f"--max-time {timeout} {extra}{shlex.quote(_url(node, path, None, port))}; done"
    )
    return attacker.sh(cmd, timeout=count * (timeout + 1) + 5)[1].split()


def spice_connect(attacker, node, count=1, timeout=5):
    """CONNECT through the node's spiceproxy (3128) `count` times, as remote-viewer does with a
    (here: bad) ticket; return the proxy's HTTP codes."""
    proxy = shlex.quote(f"http://{node.ip}:3128")
    cmd = (
        f"for i in $(seq {int(count)}); do curl -s -o /dev/null -w '%{{http_connect}}\\n' "
        f"--max-time {timeout} -p -x {proxy} http://pvespiceproxy.invalid:61000/; done"
    )
    return attacker.sh(cmd, timeout=count * (timeout + 1) + 5)[1].split()


def web_login(
    attacker,
    node,
    username,
    password="wrong",
    count=1,
    timeout=5,
    ip=None,
    port=8006,
    headers=(),
    **fields,
):
    """The login call (PVE's, PMG's; PBS's with port=8007) `count` times (extra form fields, e.g.
    realm=, go along)."""
    return web_post(
        attacker,
        node,
        TICKET,
        {"username": username, "password": password, **fields},
        count,
        timeout,
        ip,
        port=port,
        headers=headers,
    )


def openid_login(attacker, node, timeout=5, ip=None):
    cmd = f"curl -gsk -o /dev/null -w '%{{http_code}}' --max-time {timeout} -X POST {_url(node, OPENID, ip)}"
    return attacker.sh(cmd, timeout=timeout + 5)[1].strip()


def ssh_login(attacker, node, user="root", password="wrong", count=1, timeout=5, ip=None):
    """Try `count` SSH password logins; return ssh's exit codes (5 = denied, 255 = refused/failed)."""
    cmd = (
        f"for i in $(seq {int(count)}); do sshpass -p {shlex.quote(password)} ssh -n "
        f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout={timeout} "
        f"-o PreferredAuthentications=password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 "
        f"{shlex.quote(user)}@{ip or node.ip} true 2>/dev/null; echo $?; done"
    )
    return [int(c) for c in attacker.sh(cmd, timeout=count * (timeout + 2) + 5)[1].split()]


def port_open(attacker, node, port, timeout=3, ip=None):
    """True when a TCP connection from the attacker to node:port is accepted."""
    cmd = f"timeout {timeout} bash -c 'exec 3<>/dev/tcp/{ip or node.ip}/{int(port)}' 2>/dev/null"
    return attacker.sh(cmd, timeout=timeout + 5)[0] == 0


def controller_fails(address, key, count=4):
    """From this controller: `count` SSH logins with `key` (one no node trusts) and `count` failed web
    logins, aimed at `address` (IPv4 or IPv6). Each bounded to 5 s."""
    url_host = f"[{address}]" if ":" in address else address
    for _ in range(count):
        subprocess.run(
            [
                "ssh",
                "-i",
                str(key),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=5",
                f"nosuchuser@{address}",
                "true",
            ],
            capture_output=True,
            timeout=30,
        )
        subprocess.run(
            [
                "curl",
                "-gsk",
                "-o",
                "/dev/null",
                "--max-time",
                "5",
                "-d",
                "username=root@pam&password=x",
                f"https://{url_host}:8006/api2/json/access/ticket",
            ],
            capture_output=True,
            timeout=30,
        )
