"""Unban everywhere: `pyinfra -y inventory.py unban.py --data ip=192.0.2.7` (or ip=a,b or a JSON list).

Each address is removed from every jail on every node where it is banned; the output names where.
A malformed address stops the run before any node changes; a second run is a no-op.
"""

from pyinfra import host

from pvefail2ban import unban_fail2ban

unban_fail2ban(ip=host.data.get("ip"))
