"""Share bans: `pyinfra -y inventory.py sync.py`. Every node's banned addresses, per jail, are banned
on every other node that has that jail, so an attacker stopped at one node's door is stopped at all.
Never spreads an address that is in the receiving node's ignoreip. A second run adds nothing.
With --limit: the bans of every reachable node are read, only the limited nodes are written to.
"""

from pvefail2ban import sync_fail2ban

sync_fail2ban()
