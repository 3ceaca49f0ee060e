"""Verify, every run: fail2ban answers, sshd and proxmox jails run on a live source, the ban
action's firewall tool works, the configuration passes fail2ban's test. One summary line per node."""
from pyinfra import host, inventory

from pvefail2ban.node import node_state
from pvefail2ban.operations import verified
from pvefail2ban.plan import BANACTIONS

settings, facts, plan, files, error = node_state(host, inventory)
tool = next(t for name, (multi, _, t, _) in BANACTIONS.items() if multi == plan.banaction)

verified(
    name="Check: fail2ban protects this node",
    jails=[jail.name for jail in plan.jails],
    tool=tool,
    ping_timeout=settings["ping_timeout"],
)
