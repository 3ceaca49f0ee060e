"""Cluster report, read-only: `pyinfra inventory.py status.py [--data report=status.json]`.

For every node and jail: running, failed, banned, the banned addresses (each checked against the
node's firewall: "NOT ENFORCED" when fail2ban lists a ban the firewall does not hold) and recent
Ban/Unban events. One table at the end; a JSON file with --data report=PATH. Exits non-zero when a
node's fail2ban is down, a jail is missing or a ban is not enforced. Changes nothing on any node.
"""
from pyinfra import host, inventory

from pvefail2ban.day2 import Fail2banState, report_when_complete

report_when_complete(host, inventory, host.get_fact(Fail2banState), host.data.get("report"))
