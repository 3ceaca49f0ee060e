"""Events: metrics and notifications (pvefail2ban.events). node_exporter where metrics are `on`
(installed by install, started here: its package start was held back with fail2ban's); the
events daemon's files and configuration (root only: it may hold the webhook's token);
pve-fail2ban-events.service running. Nothing to do with events: all of it taken away again."""
from pyinfra.operations import server, systemd

from ..events import CONFIG_DIR, EXPORTER, SERVICE, events_files, removal
from ..facts import SCRIPTS
from ..operations import daemon_running, placed_files
from ..plan import files_differ


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
    if config["metrics"] and node.settings["metrics"] == "on" and (
        facts.get("exporter_activestate") != "active"
        or facts.get("exporter_unitfilestate") != "enabled"
    ):
        ops.append(
            systemd.service(
                name="node_exporter running and enabled at boot (fail2ban_metrics = 'on')",
                service=EXPORTER,
                running=True,
                enabled=True,
            )
        )
    files = events_files(config, SCRIPTS)
    changed = files_differ(files, facts["events_files"])
    if changed:  # no operation where there is nothing to do (see tasks/share.py)
        ops.append(
            placed_files(
                name="Events daemon and its configuration in place (metrics, notifications)",
                files=files,
                present=facts["events_files"],
                private_dir=CONFIG_DIR,
            )
        )
    ops.append(daemon_running("Events daemon running", SERVICE, changed, facts, "events"))
    return [op for op in ops if op is not None]
