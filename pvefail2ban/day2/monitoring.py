"""monitor_fail2ban(): alerts an on-call admin can trust, for an admin with no monitoring of his
own: Debian's Prometheus and Alertmanager on the inventory's `monitoring` hosts, scraping
node_exporter on every other node (set fail2ban_metrics = "on" there), with the rules of the
package, routing every alert to the notification settings the nodes use. An admin with a
Prometheus of his own gets the rules, the dashboard and the scrape job of his inventory written
where he says (`write`), and no host is touched."""

from io import BytesIO
from pathlib import Path

from pyinfra import host, inventory, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from .. import alerting
from ..defaults import DEFAULTS
from ..node import settings_of
from ..operations import shipped_script
from ..scripts.nodelib import STATE_DIR
from ..turns import first_turn

GROUP = "monitoring"  # the inventory group of the hosts that get Prometheus and Alertmanager
STAGE = f"{STATE_DIR}/monitoring"  # the configuration last applied, staged, tested, then live


def nodes_to_scrape():
    """[(name, address)] of every inventory host outside the monitoring group."""
    return [
        (h.name, h.data.get("ssh_hostname") or h.name) for h in inventory if GROUP not in h.groups
    ]


def write_files(folder, nodes):
    """The rules, the dashboard and the scrape job of `nodes` ([(name, address)]), written in
    `folder` on this controller; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {
        folder / alerting.RULES.name: alerting.RULES.read_bytes(),
        folder / alerting.DASHBOARD.name: alerting.DASHBOARD.read_bytes(),
        folder / "pve-fail2ban.scrape.yml": (
            "# pve-fail2ban: add under scrape_configs: of your prometheus.yml\n"
            + alerting.scrape_config(nodes)
        ).encode(),
    }
    for path, data in written.items():
        path.write_bytes(data)
    return sorted(written)


@deploy("fail2ban monitoring", data_defaults=DEFAULTS)
def monitor_fail2ban(write=None):
    """`write`: a folder on this controller for the rules, dashboard and scrape job (nothing on any
    host); else Prometheus and Alertmanager on the hosts of the inventory group `monitoring`."""
    if write:
        if first_turn():
            for path in write_files(write, nodes_to_scrape()):
                logger.info(f"written: {path}")
        return
    if GROUP not in host.groups:
        return
    nodes = nodes_to_scrape()
    if not nodes:
        raise DeployError(f"{host.name}: no node to scrape: the inventory has only {GROUP} hosts")
    settings = settings_of(host)
    if settings["notify_mail"] and not host.get_fact(File, path="/usr/sbin/sendmail"):
        raise DeployError(
            f"{host.name}: fail2ban_notify_mail is set but this host has no MTA (no "
            "/usr/sbin/sendmail): Alertmanager sends its mail through 127.0.0.1:25; install one "
            "(postfix, as on Proxmox nodes) or unset fail2ban_notify_mail for this host"
        )
    if not (settings["notify_mail"] or settings["notify_webhook"]):
        logger.warning(
            f"{host.name}: neither fail2ban_notify_mail nor fail2ban_notify_webhook is set: the "
            "alerts are shown in Alertmanager only (port 9093 on the monitoring host)"
        )
    arguments = [
        files.put(name=f"{path}: loopback only", src=BytesIO(data), dest=path, mode="644")
        for path, data in sorted(alerting.args_files().items())
    ]
    apt.packages(
        name="Prometheus and Alertmanager present (Debian's packages)",
        packages=list(alerting.PACKAGES),
        no_recommends=True,
        update=True,
        cache_time=settings["apt_cache_time"],
    )
    wanted = alerting.monitoring_files(settings, nodes)
    staged = [
        files.put(
            name=f"{path} staged",
            src=BytesIO(data),
            dest=f"{STAGE}{path}",
            mode="600",
            create_remote_dir=True,
        )
        for path, (data, _, _) in sorted(wanted.items())
    ]
    server.shell(
        name="Prometheus and Alertmanager configuration live, tested by promtool and amtool",
        commands=[
            shipped_script(
                "monitoring-apply.sh",
                STAGE,
                *(f"{path}:{mode}:{owner}" for path, (_, mode, owner) in sorted(wanted.items())),
            )
        ],
        _if=any_changed(*arguments, *staged),
    )
    for service in ("prometheus", "prometheus-alertmanager"):
        systemd.service(
            name=f"{service} running and enabled at boot",
            service=service,
            running=True,
            enabled=True,
        )
