"""fail2ban on every Proxmox VE node: the hardening guide's steps, adapted to PVE 7, 8 and 9.

    pyinfra inventory.py deploy.py           (add --dry to see what would change)

Settings: group_data/all.py. Flow: preflight -> install -> configure -> verify; a node that fails
preflight is left untouched, and a failure on one node never stops the others.
"""
from pyinfra import host, inventory, local

from pvefail2ban.node import node_state

local.include("tasks/preflight.py")

if not node_state(host, inventory).error:
    local.include("tasks/install.py")
    local.include("tasks/configure.py")
    local.include("tasks/verify.py")
