"""A realistic PVE daemon.log for the filter benchmark: mostly noise, some failures, some hostile lines.

python bench/gen_daemon_log.py OUT [LINES]   (deterministic: same lines every time)
"""

import random
import sys
from datetime import datetime, timedelta

NOISE = [
    "pvedaemon[{pid}]: <root@pam> starting task UPID:pve1:{hex}:vncproxy:100:root@pam:",
    "pvedaemon[{pid}]: <root@pam> end task UPID:pve1:{hex}:vncproxy:100:root@pam: OK",
    "pvedaemon[{pid}]: <root@pam> successful auth for user 'root@pam'",
    "pvedaemon[{pid}]: worker {pid2} finished",
    "pvedaemon[{pid}]: starting 1 worker(s)",
    "pveproxy[{pid}]: proxy detected vanished client connection",
    "pvestatd[{pid}]: status update time (5.123 seconds)",
    "pve-firewall[{pid}]: status update error: iptables_restore_cmdlist: Try `iptables-restore -h' for more information.",
    "systemd[1]: Started session-{pid}.scope - Session {pid} of User root.",
    "pmxcfs[{pid}]: [status] notice: received log",
    "corosync[{pid}]:   [KNET  ] link: host: 2 link: 0 is up",
    "IPCC.xs[{pid}]: pam_unix(proxmox-ve-auth:auth): authentication failure; logname= uid=0 euid=0 tty= ruser= rhost=::ffff:{ip}  user=root",
]
FAILURES = [
    "pvedaemon[{pid}]: authentication failure; rhost=::ffff:{ip} user=root@pam msg=Authentication failure",
    "pvedaemon[{pid}]: authentication failure; rhost=::ffff:{ip} user=admin{n}@pve msg=no such user ('admin{n}@pve')",
    "pvedaemon[{pid}]: authentication failure; rhost=2001:db8::{n:x} user=root@pam msg=Authentication failure",
    "pvedaemon[{pid}]: openid authentication failure; rhost=::ffff:{ip} msg=Failed to verify the authorization code",
    "pvedaemon[{pid}]: authentication failure; rhost=::ffff:{ip} user=x rhost=192.0.2.66 user=root@pam msg=no such user ('x')",
]


def lines(count, seed=42):
    rnd = random.Random(seed)
    t = datetime(2026, 11, 24, 0, 0, 0)
    for _ in range(count):
        t += timedelta(milliseconds=rnd.randint(1, 400))
        kind = FAILURES if rnd.random() < 0.05 else NOISE
        text = rnd.choice(kind).format(
            pid=rnd.randint(900, 99999),
            pid2=rnd.randint(900, 99999),
            hex=f"{rnd.getrandbits(64):016X}",
            n=rnd.randint(1, 4000),
            ip=f"198.51.100.{rnd.randint(1, 254)}",
        )
        yield f"{t:%b %d %H:%M:%S} pve1 {text}\n"


if __name__ == "__main__":
    with open(sys.argv[1], "w") as out:
        out.writelines(lines(int(sys.argv[2]) if len(sys.argv) > 2 else 200_000))
