"""Configure: the guide's jail and filter files, adapted to this node, tested on the node before
they go live; fail2ban restarted only when they changed, and running and enabled in any case."""

from pyinfra import logger
from pyinfra.operations import systemd

from ..operations import tested_files
from ..plan import files_to_change, files_to_remove


def configure(node):
    """Returns the operations added."""
    facts, ops = node.facts, []
    change = files_to_change(node.files, facts)
    remove = files_to_remove(node.files, facts)
    for path in change:
        if path in facts["files"]:
            logger.warning(
                f"{node.name}: {path} differs from what the settings give (a setting changed, "
                "or the file was edited by hand): it is replaced, after fail2ban's test"
            )
    if change or remove:  # no operation where there is nothing to do (see tasks/sharing.py)
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
