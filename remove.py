"""Take the deploy away: `pyinfra -y inventory.py remove.py [--data purge=true]`.

Removes only the files the deploy put on the node (never a file of the fail2ban package), then
restarts fail2ban on the distribution's own configuration; where that cannot run (Debian 12 without
auth.log) fail2ban is stopped and disabled, and the output says so. With purge=true the fail2ban
package is purged instead. A second run is a no-op.
"""

from pyinfra import host

from pvefail2ban import remove_fail2ban

remove_fail2ban(purge=host.data.get("purge", False))
