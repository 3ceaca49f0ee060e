"""pveproxy's real-IP settings: on a PVE node behind fail2ban_trusted_proxies, /etc/default/pveproxy
names the header those proxies set and only them (PROXY_REAL_IP_*), so that pveproxy's access log,
which the proxmox and pveproxy jails then read, names their clients; pveproxy restarted once."""

from ..operations import pveproxy_real_ip
from ..proxies import REAL_IP_HEADER


def real_ip(node):
    """Returns the operations added: none where the file is already as wanted."""
    if node.plan.pveproxy_defaults is None:
        return []
    trusted = node.plan.trusted_proxies
    return [
        pveproxy_real_ip(
            name="pveproxy logs the clients of fail2ban_trusted_proxies (PROXY_REAL_IP_*)",
            text=node.plan.pveproxy_defaults,
            header=REAL_IP_HEADER if trusted else "-",
            allow=",".join(trusted) if trusted else "-",
        )
    ]
