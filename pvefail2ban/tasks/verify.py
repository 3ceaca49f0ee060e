"""Verify, every run: fail2ban answers, our jails run on a live source, no jail runs that the
settings switched off, the ban action's firewall tool works, the configuration passes fail2ban's
test. One summary line per node, naming every jail that runs, ours or not."""
from ..cluster_bans import SERVICE
from ..operations import verified


def verify(node):
    verified(
        name="Check: fail2ban protects this node",
        jails=[jail.name for jail in node.plan.jails],
        off=sorted(node.plan.off),
        tool=node.plan.firewall_tool,
        ping_timeout=node.settings["ping_timeout"],
        share=SERVICE if node.plan.share else "-",
    )
