"""Events: metrics and notifications (pvefail2ban.events). node_exporter where metrics are `on`
(installed by install, started here: its package start was held back with fail2ban's); the
events daemon's files and configuration (root only: it may hold the webhook's token);
pve-fail2ban-events.service running. Nothing to do with events: all of it taken away again."""

from pyinfra.operations import server, systemd

from ..events import CONFIG_DIR, EXPORTER, SERVICE, events_files, removal
from ..facts import SCRIPTS
from ..operations import daemon_running, files_in_place


def events(node):
    """Returns the operations added."""
    facts, config, ops = node.facts, node.plan.events, []
    if config is None:
        if facts["events_files"] or facts.get("events_activestate") == "active":
            ops.append(
                server.shell(
                    name="Metrics and notifications switched off on this node",
                    commands=[removal(facts.get("textfile_dir"))],
                )
            )
        return ops
    if (
        config["metrics"]
        and node.settings["metrics"] == "on"
        and (
            facts.get("exporter_activestate") != "active"
            or facts.get("exporter_unitfilestate") != "enabled"
        )
    ):
        ops.append(
            systemd.service(
                name="node_exporter running and enabled at boot (fail2ban_metrics = 'on')",
                service=EXPORTER,
                running=True,
                enabled=True,
            )
        )
    placed = files_in_place(
        "Events daemon and its configuration in place (metrics, notifications)",
        events_files(config, SCRIPTS),
        facts["events_files"],
        CONFIG_DIR,
    )
    ops.append(placed)
    ops.append(
        daemon_running("Events daemon running", SERVICE, placed is not None, facts, "events")
    )
    return [op for op in ops if op is not None]
