"""Unban everywhere: `pyinfra inventory.py unban.py --data ip=192.0.2.7` (or ip=a,b or a JSON list).

Each address is removed from every jail on every node where it is banned; the output names where.
A malformed address stops the run before any node changes; a second run is a no-op.
"""
from pyinfra import host
from pyinfra.operations import server

from pvefail2ban.day2 import Fail2banState, parse_addresses

addresses = parse_addresses(host.data.get("ip"))
state = host.get_fact(Fail2banState)

for address in addresses:
    where = [jail for jail, status in sorted(state["jails"].items()) if address in status["banned_ips"]]
    if not where:
        host.noop(f"{address} is not banned on {host.name}")
    for jail in where:
        server.shell(
            name=f"{address} unbanned from jail {jail} (it was banned here)",
            commands=[f"fail2ban-client set {jail} unbanip {address}"],
        )
