"""Verify, every run: fail2ban answers, sshd and proxmox jails run on a live source, the ban
action's firewall tool works, the configuration passes fail2ban's test. One summary line per node."""
from pyinfra import host, inventory

from pvefail2ban.node import node_state
from pvefail2ban.operations import verified

node = node_state(host, inventory)
verified(
    name="Check: fail2ban protects this node",
    jails=[jail.name for jail in node.plan.jails],
    tool=node.plan.firewall_tool,
    ping_timeout=node.settings["ping_timeout"],
)
