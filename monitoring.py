"""Alerts for the cluster: `pyinfra -y inventory.py monitoring.py`.

With no monitoring of your own: Debian's Prometheus and Alertmanager on the hosts of the
inventory's `monitoring` group, scraping node_exporter on every node (fail2ban_metrics = "on"
there), with the alert rules of the package, sending every alert to the nodes' notification
settings (fail2ban_notify_mail, fail2ban_notify_webhook). With a Prometheus of your own:
`--data write=<folder>` writes the rules, the Grafana dashboard and the scrape job of your
inventory there, on this machine, and touches no host. A second run changes nothing.
"""

from pyinfra import host

from pvefail2ban import monitor_fail2ban

monitor_fail2ban(write=host.data.get("write"))
