"""Ban everywhere: `pyinfra inventory.py ban.py --data ip=192.0.2.7 [--data jails=sshd,proxmox]`.

Bans the address(es) in the chosen jails (default: sshd and proxmox) on every node. Refuses, before
any node changes, to ban this controller, a node of the inventory or an address in a jail's ignoreip,
unless --data force=true. A second run is a no-op.
"""
from pyinfra import host, inventory
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import server

from pvefail2ban.day2 import Fail2banState, check_ban_allowed, parse_addresses, parse_jails
from pvefail2ban.facts import NodeFacts
from pvefail2ban.node import inventory_addresses

addresses = parse_addresses(host.data.get("ip"))
force = host.data.get("force", False)
if not isinstance(force, bool):
    raise DeployError(f"force = {force!r}: must be true or false")
state = host.get_fact(Fail2banState)
jails = parse_jails(host.data.get("jails"), state, host.name)
check_ban_allowed(addresses, jails, state, host.get_fact(NodeFacts)["client"],
                  inventory_addresses(inventory), force, host.name)

for jail in jails:
    for address in addresses:
        if address in state["jails"][jail]["banned_ips"]:
            host.noop(f"{address} is already banned in {jail}")
            continue
        server.shell(name=f"{address} banned in jail {jail}", commands=[f"fail2ban-client set {jail} banip {address}"])
