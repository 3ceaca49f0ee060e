"""Share bans: `pyinfra inventory.py sync.py`. Every node's banned addresses, per jail, are banned on
every other node that has that jail, so an attacker stopped at one node's door is stopped at all.
Never spreads an address that is in the receiving node's ignoreip. A second run adds nothing.
"""
from pyinfra import host, inventory
from pyinfra.operations import server

from pvefail2ban.day2 import Fail2banState, bans_to_sync

states = {h.name: h.get_fact(Fail2banState) for h in inventory.get_active_hosts()}

for jail, address, sources in bans_to_sync(host.name, states):
    server.shell(
        name=f"{address} banned in jail {jail} (banned on {', '.join(sources)})",
        commands=[f"fail2ban-client set {jail} banip {address}"],
    )
