"""Cluster report, read-only: `pyinfra -y inventory.py status.py [--data report=status.json]`.

Every node of the run appears: for each jail running, failed, banned, the banned addresses (each
checked against the node's firewall: "NOT ENFORCED" when fail2ban lists a ban the firewall does not
hold) and recent Ban/Unban events; a node that cannot be reached or read as UNREACHABLE with
pyinfra's reason. Exit code 0 when every node is protected, 1 otherwise. Changes nothing.
"""

from pyinfra import host

from pvefail2ban import status_fail2ban

status_fail2ban(report=host.data.get("report"))
