"""Preflight: every setting checked (a bad one stops the run before any node changes), then what
this node is: Debian with systemd, its log sources, sshd's ports, firewall tools, our address."""
from pyinfra import host, inventory, logger

from pvefail2ban.node import node_state
from pvefail2ban.operations import fail

node = node_state(host, inventory)

if node.error:
    fail(name="Node can be protected (preflight)", reason=f"{host.name}: {node.error}")
else:
    for warning in node.plan.warnings:
        logger.warning(f"{host.name}: {warning}")
