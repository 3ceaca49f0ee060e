"""Verify, every run: fail2ban answers, our jails run on a live source, no jail runs that the
settings switched off, the ban action's firewall tool works, the configuration passes fail2ban's
test; the daemons of cluster-wide bans and of metrics and notifications run where they should.
One summary line per node, naming every jail that runs, ours or not. In a run that changes nothing
on the node, the same check read with its facts answers (one SSH command per node)."""

from ..layout import EVENTS_SERVICE, SHARE_SERVICE
from ..operations import Expected, verified

# our daemons and the prefix of their state in NodeFacts (share_activestate, ...)
DAEMON_FACTS = {SHARE_SERVICE: "share", EVENTS_SERVICE: "events"}


def verify(node, ops):
    """`ops`: the operations this run added for the node. Where none of them changes anything,
    what the node said with its facts is the check, if it holds all the check needs."""
    daemons = {
        **({SHARE_SERVICE: "bans shared with the other nodes"} if node.plan.share else {}),
        **({EVENTS_SERVICE: events_summary(node.plan.events)} if node.plan.events else {}),
    }
    recorded = node.facts.get("check")
    if recorded is not None:  # our daemons' state, as the facts read it (systemctl show)
        states = {
            d: node.facts.get(f"{DAEMON_FACTS[d]}_activestate") or "inactive" for d in daemons
        }
        recorded = {**recorded, "daemons": states}
    expected = Expected(
        jails=tuple(jail.name for jail in node.plan.jails),
        off=tuple(sorted(node.plan.off)),
        tool=node.plan.firewall_tool,
        ping_timeout=node.settings["ping_timeout"],
        node_timeout=node.settings["node_timeout"],
        daemons=daemons,
        blind=tuple(node.plan.blind),
        failures={jail.name: jail.failure for jail in node.plan.jails if jail.failure},
        proxies=tuple(node.plan.trusted_proxies),
    )
    verified(
        name="Check: fail2ban protects this node", expected=expected, recorded=recorded, ops=ops
    )


def events_summary(config):
    """What the summary line says the events daemon does, e.g. "metrics, notifications (mail)"."""
    notify = config["notify"] or {}
    channels = [k for k in ("mail", "webhook") if notify.get(k)]
    parts = (["metrics for node_exporter"] if config["metrics"] else []) + (
        [f"notifications ({', '.join(channels)})"] if channels else []
    )
    return ", ".join(parts)
