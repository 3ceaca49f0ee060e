"""Install: fail2ban and what this node's jails need (python3-systemd for the journal, the ban
action's firewall tool). The apt lists are refreshed only when older than fail2ban_apt_cache_time,
whoever refreshed them last; a held apt lock is waited for (bounded). fail2ban is not started on the
package's default configuration (which fails on PVE 8): configure starts it once its files are in."""

from pyinfra.operations import server

from ..operations import shipped_script


def install(node):
    """The operations added (none when every package is there)."""
    if not node.plan.packages:
        return []
    age, lock_wait = node.facts["apt_lists_age"], node.settings["apt_lock_timeout"]
    stale = age is None or age > node.settings["apt_cache_time"]
    op = server.shell(
        name=f"Packages present: {', '.join(node.plan.packages)}",
        commands=[
            shipped_script(
                "apt-install.sh", "yes" if stale else "no", lock_wait, *node.plan.packages
            )
        ],
        # `apt-get update` may not wait for a lock as install does: retry it (bounded) meanwhile.
        _retries=lock_wait // 10,
        _retry_delay=10,
    )
    return [op]
