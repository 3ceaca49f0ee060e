"""Preflight: what this node is (Debian with systemd, its log sources, sshd's ports, firewall
tools, our address as it sees us) decides whether it can be protected. A node that cannot is
failed with the reason and left untouched; the other nodes go on. (The settings were checked for
every node before this: a bad one stops the run before any node changes.)"""

from pyinfra import logger

from ..operations import fail


def preflight(node):
    """True when `node` (pvefail2ban.node.Node) can be protected; else its failure is added."""
    if node.error:
        if node.facts is not None:  # facts that could not be read already failed the node
            fail(name="Node can be protected (preflight)", reason=f"{node.name}: {node.error}")
        return False
    for warning in node.plan.warnings:
        logger.warning(f"{node.name}: {warning}")
    return True
