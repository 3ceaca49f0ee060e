"""Alerts for the cluster: the Prometheus rules and Grafana dashboard that ship with the package
(pvefail2ban/prometheus/), the scrape configuration of the inventory's nodes, and the configuration
of Debian's Prometheus and Alertmanager on a monitoring host of the admin's (day2/monitoring.py).
Pure: the inventory's nodes and the settings in, file texts out."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent / "prometheus"
RULES = HERE / "pve-fail2ban.rules.yml"
DASHBOARD = HERE / "pve-fail2ban.dashboard.json"
JOB = "pve-fail2ban"  # the scrape job the rules name
EXPORTER_PORT = 9100  # Debian's prometheus-node-exporter
PROMETHEUS = "/etc/prometheus/prometheus.yml"
ALERTMANAGER = "/etc/prometheus/alertmanager.yml"
RULES_PATH = "/etc/prometheus/pve-fail2ban.rules.yml"
TOKEN_PATH = "/etc/prometheus/pve-fail2ban-webhook.token"  # root:prometheus 0640: the webhook's
PACKAGES = ("prometheus", "prometheus-alertmanager")
# Alertmanager's API asks for a password (HTTP basic auth): on loopback every local account could
# otherwise read the webhook's URL (the secret, for an ntfy topic) from /api/v2/status, and silence
# every alert. The password is made on the host, once, before Alertmanager is installed
# (scripts/monitoring-credentials.py): PASSWORD (root:prometheus 0640, Prometheus sends it), its
# bcrypt hash in WEB_CONFIG. Root reads it: `curl -u pve-fail2ban:$(cat PASSWORD) ...`.
API_USER = "pve-fail2ban"
PASSWORD = "/etc/prometheus/pve-fail2ban-alertmanager.password"
WEB_CONFIG = "/etc/prometheus/pve-fail2ban-alertmanager-web.yml"
# Both listen on loopback only, nothing new open to the network: reach them with
# `ssh -L 9090:127.0.0.1:9090 <host>`. Alertmanager's cluster gossip port (9094) is off: one
# Alertmanager. Debian's units read ARGS from these files.
ARGS = {
    "/etc/default/prometheus": "--web.listen-address=127.0.0.1:9090",
    "/etc/default/prometheus-alertmanager": "--web.listen-address=127.0.0.1:9093 "
    f"--cluster.listen-address= --web.config.file={WEB_CONFIG}",
}
HEADER = "# Managed by pve-fail2ban (pyinfra monitoring.py): changes made here are replaced.\n"


def quoted(text):
    """A YAML double-quoted string (JSON's, which YAML reads; UTF-8 kept as it is: go-yaml refuses
    JSON's surrogate pairs)."""
    return json.dumps(text, ensure_ascii=False)


def targets(nodes):
    """[(name, "address:9100")] of the nodes to scrape (`nodes`: [(name, address)])."""
    found = []
    for name, address in nodes:
        where = f"[{address}]" if ":" in address else address
        found.append((name, f"{where}:{EXPORTER_PORT}"))
    return found


def scrape_config(nodes):
    """The scrape job of the inventory's nodes (node_exporter on each), as YAML: each target keeps
    the node's inventory name as its `instance`, which the alerts name."""
    lines = [f"  - job_name: {JOB}", "    scrape_interval: 15s", "    static_configs:"]
    for name, target in targets(nodes):
        lines += [
            f"      - targets: [{quoted(target)}]",
            f"        labels: {{instance: {quoted(name)}}}",
        ]
    return "\n".join(lines) + "\n"


def prometheus_config(nodes):
    """/etc/prometheus/prometheus.yml of a monitoring host: our rules, the local Alertmanager,
    every node of the inventory."""
    return (
        HEADER
        + "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
        + "alerting:\n  alertmanagers:\n"
        + f"    - basic_auth: {{username: {API_USER}, password_file: {PASSWORD}}}\n"
        + '      static_configs:\n        - targets: ["127.0.0.1:9093"]\n'
        + f"rule_files:\n  - {RULES_PATH}\n"
        + "scrape_configs:\n"
        + scrape_config(nodes)
    )


def mail_address(to):
    """Alertmanager wants whole addresses: a local user ("root", as the nodes' sendmail takes it)
    is the host's own mailbox, user@localhost."""
    return to if "@" in to else f"{to}@localhost"


def alertmanager_config(settings):
    """/etc/prometheus/alertmanager.yml: every alert to the nodes' own notification settings
    (fail2ban_notify_mail through the host's MTA, fail2ban_notify_webhook with its token from
    TOKEN_PATH), firing and resolved, grouped per alert, node and jail."""
    receiver = ["  - name: pve-fail2ban"]
    if settings["notify_webhook"]:
        receiver += [
            "    webhook_configs:",
            f"      - url: {quoted(settings['notify_webhook'])}",
            "        send_resolved: true",
            # a redirect could carry the token to another host: refused, as the nodes do
            "        http_config:",
            "          follow_redirects: false",
        ]
        if settings["notify_webhook_token"]:
            receiver += [
                f"          authorization: {{type: Bearer, credentials_file: {TOKEN_PATH}}}",
            ]
    if settings["notify_mail"]:
        receiver += [
            "    email_configs:",
            f"      - to: {quoted(mail_address(settings['notify_mail']))}",
            '        from: "alertmanager@localhost"',
            "        smarthost: 127.0.0.1:25",
            "        require_tls: false",
            "        send_resolved: true",
        ]
    return (
        HEADER
        + "route:\n  receiver: pve-fail2ban\n  group_by: [alertname, instance, jail]\n"
        + "  group_wait: 10s\n  group_interval: 1m\n  repeat_interval: 4h\n"
        + "receivers:\n"
        + "\n".join(receiver)
        + "\n"
    )


def args_files():
    """{path: bytes} of the services' arguments (/etc/default), in place before they are installed:
    they never listen beyond loopback, not even for a moment (apt keeps them: --force-confold)."""
    return {path: f'{HEADER}ARGS="{args}"\n'.encode() for path, args in ARGS.items()}


def monitoring_files(settings, nodes):
    """{path: (bytes, mode, owner)} of a monitoring host."""
    files = {
        PROMETHEUS: (prometheus_config(nodes).encode(), "644", "root:root"),
        RULES_PATH: (RULES.read_bytes(), "644", "root:root"),
        # the webhook's URL may be a secret (an ntfy topic): root's and Alertmanager's only
        ALERTMANAGER: (alertmanager_config(settings).encode(), "640", "root:prometheus"),
    }
    if settings["notify_webhook_token"]:  # Alertmanager runs as prometheus: it reads, nobody else
        files[TOKEN_PATH] = (settings["notify_webhook_token"].encode(), "640", "root:prometheus")
    return files
