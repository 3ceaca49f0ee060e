"""fail2ban on every Proxmox node: the hardening guide's steps, adapted to PVE 7, 8 and 9, and
the jails of Proxmox Backup Server and Mail Gateway where they run.

    pyinfra inventory.py deploy.py           (add --dry to see what would change)

The flow is pvefail2ban/protect.py: preflight -> install -> share -> events -> configure ->
verify, one file each in tasks/. A node that fails preflight is left untouched, and a failure on
one node never stops the others. Settings and their defaults: group_data/all.py (generated from pvefail2ban/defaults.py).
This is the same call you make from a deploy repository of your own (see the README).
"""

from pvefail2ban import deploy_fail2ban

deploy_fail2ban()
