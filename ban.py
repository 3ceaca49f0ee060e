"""Ban everywhere: `pyinfra -y inventory.py ban.py --data ip=192.0.2.7 [--data jails=sshd,proxmox]`.

Bans the address(es) in the chosen jails (default: every login jail of ours running there: sshd,
proxmox, pbs, pmg) on every node. Refuses, before any node changes, to ban this controller, a node
of the inventory or an address in a jail's ignoreip, unless --data force=true. A second run is a
no-op.
"""

from pyinfra import host

from pvefail2ban import ban_fail2ban

ban_fail2ban(
    ip=host.data.get("ip"), jails=host.data.get("jails"), force=host.data.get("force", False)
)
