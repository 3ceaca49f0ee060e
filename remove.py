"""Take the deploy away: `pyinfra inventory.py remove.py [--data purge=true]`.

Removes only the files the deploy put on the node (never a file of the fail2ban package), then
restarts fail2ban on the distribution's own configuration; where that cannot run (Debian 12 without
auth.log) fail2ban is stopped and disabled, and the output says so. With purge=true the fail2ban
package is purged instead. A second run is a no-op.
"""
from pyinfra import host
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files

from pvefail2ban.facts import NodeFacts
from pvefail2ban.operations import STAGE, script_reported
from pvefail2ban.plan import files_to_remove

purge = host.data.get("purge", False)
if not isinstance(purge, bool):
    raise DeployError(f"purge = {purge!r}: must be true or false; nothing was changed")
facts = host.get_fact(NodeFacts)

removed = [files.file(name=f"{path} removed", path=path, present=False)
           for path in files_to_remove({}, facts)]
files.directory(name="the deploy's work folder removed", path=STAGE.rsplit("/", 1)[0], present=False)

if "fail2ban" in facts["packages"]:
    if purge:
        apt.packages(name="fail2ban purged", packages=["fail2ban"], present=False, purge=True)
    elif removed:
        script_reported(
            name="fail2ban on the distribution's own configuration (stopped if that cannot run here)",
            script="restore.sh",
        )
