"""Configure: the guide's jail and filter files, adapted to this node, tested on the node before
they go live; fail2ban restarted only when they changed, and running and enabled in any case."""

from pyinfra import logger
from pyinfra.operations import systemd

from ..facts import probe_config
from ..operations import tested_files
from ..plan import files_to_change, files_to_remove, jails_reading_nothing


def configure(node):
    """Returns the operations added."""
    facts, ops = node.facts, []
    change = files_to_change(node.files, facts)
    remove = files_to_remove(node.files, facts)
    # a jail that started without its log file (rotated away, a proxy's not made yet) reads
    # nothing until fail2ban starts again: where the deploy makes that log, it does, and restarts
    missing = set(probe_config()["logs"]) - set(facts["logs"])  # looked for, not found
    unread = jails_reading_nothing(node.plan, facts.get("check"), missing)
    for jail in unread:
        logger.warning(
            f"{node.name}: jail {jail.name} runs without its log file ({jail.logpath.split()[0]}"
            " was missing when fail2ban started): fail2ban is restarted to read it"
        )
    for path in change:
        if path in facts["files"]:
            logger.warning(
                f"{node.name}: {path} differs from what the settings give (a setting changed, "
                "or the file was edited by hand): it is replaced, after fail2ban's test"
            )
    if change or remove or unread:  # no operation where there is nothing to do (tasks/share.py)
        config = tested_files(
            name="Jails and proxmox filter in place, tested by fail2ban before going live",
            files=node.files,
            change=change,
            remove=remove,
            logs=[
                path
                for jail in node.plan.jails
                if jail.backend == "file" and jail.log_made_late
                for path in jail.logpath.split()
            ],
        )
        ops += (
            config,
            systemd.service(
                name="fail2ban restarted into the new configuration",
                service="fail2ban",
                running=True,  # started if it is not running, else restarted: never both (a stop mid-start hangs)
                restarted=True,
                _if=config.did_change,
            ),
        )
    if (
        facts.get("fail2ban_activestate") != "active"
        or facts.get("fail2ban_unitfilestate") != "enabled"
    ):
        ops.append(
            systemd.service(
                name="fail2ban running and enabled at boot",
                service="fail2ban",
                running=True,
                enabled=True,
            )
        )
    return ops
