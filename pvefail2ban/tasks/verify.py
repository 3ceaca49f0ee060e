"""Verify, every run: fail2ban answers, our jails run on a live source, no jail runs that the
settings switched off, the ban action's firewall tool works, the configuration passes fail2ban's
test; the daemons of cluster-wide bans and of metrics and notifications run where they should.
One summary line per node, naming every jail that runs, ours or not."""
from .. import cluster_bans, events
from ..operations import verified


def verify(node):
    verified(
        name="Check: fail2ban protects this node",
        jails=[jail.name for jail in node.plan.jails],
        off=sorted(node.plan.off),
        tool=node.plan.firewall_tool,
        ping_timeout=node.settings["ping_timeout"],
        daemons={
            **({cluster_bans.SERVICE: "bans shared with the other nodes"} if node.plan.share else {}),
            **({events.SERVICE: events_summary(node.plan.events)} if node.plan.events else {}),
        },
    )


def events_summary(config):
    """What the summary line says the events daemon does, e.g. "metrics, notifications (mail)"."""
    notify = config["notify"] or {}
    channels = [k for k in ("mail", "webhook") if notify.get(k)]
    parts = (["metrics for node_exporter"] if config["metrics"] else []) + (
        [f"notifications ({', '.join(channels)})"] if channels else []
    )
    return ", ".join(parts)
