"""What the attacker container does to a node: failed web and SSH logins, reachability probes.

Every call is bounded (curl/ssh time-outs, counts given by the caller) and aims only at lab nodes.
"""

import shlex

TICKET = "/api2/json/access/ticket"
OPENID = "/api2/json/access/openid/login"


def web_login(attacker, node, username, password="wrong", count=1, timeout=5):
    """POST PVE's login call `count` times; return the HTTP codes ("000" = no connection)."""
    cmd = (
        f"for i in $(seq {int(count)}); do curl -sk -o /dev/null -w '%{{http_code}}\\n' "
        f"--max-time {timeout} --data-urlencode username={shlex.quote(username)} "
        f"--data-urlencode password={shlex.quote(password)} https://{node.ip}:8006{TICKET}; done"
    )
    return attacker.sh(cmd, timeout=count * (timeout + 1) + 5)[1].split()


def openid_login(attacker, node, timeout=5):
    cmd = f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time {timeout} -X POST https://{node.ip}:8006{OPENID}"
    return attacker.sh(cmd, timeout=timeout + 5)[1].strip()


def ssh_login(attacker, node, user="root", password="wrong", count=1, timeout=5):
    """Try `count` SSH password logins; return ssh's exit codes (5 = denied, 255 = refused/failed)."""
    cmd = (
        f"for i in $(seq {int(count)}); do sshpass -p {shlex.quote(password)} ssh -n "
        f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout={timeout} "
        f"-o PreferredAuthentications=password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 "
        f"{shlex.quote(user)}@{node.ip} true 2>/dev/null; echo $?; done"
    )
    return [int(c) for c in attacker.sh(cmd, timeout=count * (timeout + 2) + 5)[1].split()]


def port_open(attacker, node, port, timeout=3):
    """True when a TCP connection from the attacker to node:port is accepted."""
    cmd = f"timeout {timeout} bash -c 'exec 3<>/dev/tcp/{node.ip}/{int(port)}' 2>/dev/null"
    return attacker.sh(cmd, timeout=timeout + 5)[0] == 0
