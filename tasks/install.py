"""Install: fail2ban and what this node's jails need (python3-systemd for the journal, the ban
action's firewall tool). The apt lists are refreshed only when older than fail2ban_apt_cache_time,
whoever refreshed them last; a held apt lock is waited for (bounded)."""
from pyinfra import host, inventory
from pyinfra.operations import apt

from pvefail2ban.node import node_state

settings, facts, plan, files, error = node_state(host, inventory)
lock_wait = settings["apt_lock_timeout"]

if plan.packages:
    apt.packages(
        name=f"Packages present: {', '.join(plan.packages)}",
        packages=plan.packages,
        update=facts["apt_lists_age"] is None or facts["apt_lists_age"] > settings["apt_cache_time"],
        no_recommends=True,
        extra_install_args=f"-o DPkg::Lock::Timeout={lock_wait}",
        # `apt-get update` has no lock wait of its own: retry it (bounded) while another apt runs.
        _retries=max(lock_wait // 10, 0),
        _retry_delay=10,
    )
