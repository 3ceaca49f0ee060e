"""pve-fail2ban: fail2ban on every Proxmox node, as a packaged pyinfra deploy.

    from pvefail2ban import deploy_fail2ban
    deploy_fail2ban()

Day-2 operations, cluster-wide: status_fail2ban, ban_fail2ban, unban_fail2ban, sync_fail2ban,
remove_fail2ban; monitor_fail2ban (Prometheus and Alertmanager). Defaults of every setting: DEFAULTS (pvefail2ban/defaults.py).
"""

from .day2.deploys import (
    ban_fail2ban,
    remove_fail2ban,
    status_fail2ban,
    sync_fail2ban,
    unban_fail2ban,
)
from .day2.monitoring import monitor_fail2ban
from .defaults import DEFAULTS
from .deploy import deploy_fail2ban

__all__ = [
    "DEFAULTS",
    "deploy_fail2ban",
    "status_fail2ban",
    "ban_fail2ban",
    "unban_fail2ban",
    "sync_fail2ban",
    "remove_fail2ban",
    "monitor_fail2ban",
]
