"""monitor_fail2ban(): alerts an on-call admin can trust, for an admin with no monitoring of his
own: Debian's Prometheus and Alertmanager on the inventory's `monitoring` hosts, scraping
node_exporter on every other node (set fail2ban_metrics = "on" there), with the rules of the
package, routing every alert to the notification settings the nodes use. An admin with a
Prometheus of his own gets the rules, the dashboard and the scrape job of his inventory written
where he says (`write`), and no host is touched."""

import os
from io import BytesIO
from pathlib import Path

from pyinfra import host, inventory, logger
from pyinfra.api import QuoteString, StringCommand, deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import File, Sha1File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from .. import alerting
from ..defaults import DEFAULTS
from ..facts import SCRIPTS
from ..node import settings_of
from ..operations import files_in_place, shipped_script
from ..scripts.nodelib import STATE_DIR
from ..turns import first_turn

GROUP = "monitoring"  # the inventory group of the hosts that get Prometheus and Alertmanager
STAGE = f"{STATE_DIR}/monitoring"  # the configuration last applied, staged, tested, then live


def nodes_to_scrape():
    """[(name, address)] of every inventory host outside the monitoring group."""
    return [
        (h.name, h.data.get("ssh_hostname") or h.name) for h in inventory if GROUP not in h.groups
    ]


def bound():
    """This host's fail2ban_node_timeout: the longest a read of it may take."""
    return settings_of(host)["node_timeout"]


def present_file(path):
    """(sha1, mode, owner) of a file on this host, as plan.files_differ compares, or None."""
    info = host.get_fact(File, path=path, _timeout=bound())
    if not info:
        return None
    # pyinfra's File fact gives the mode as the digits of its octal form (600)
    return (
        host.get_fact(Sha1File, path=path, _timeout=bound()),
        str(info["mode"]),
        f"{info['user']}:{info['group']}",
    )


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
    for path, data in written.items():  # a new file renamed over: a planted symlink is replaced
        temp = path.with_name(f".{path.name}.new")
        temp.unlink(missing_ok=True)
        with open(temp, "xb") as out:
            out.write(data)
        os.replace(temp, path)
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
    if settings["notify_mail"] and not host.get_fact(
        File, path="/usr/sbin/sendmail", _timeout=bound()
    ):
        raise DeployError(
            f"{host.name}: fail2ban_notify_mail is set but this host has no MTA (no "
            "/usr/sbin/sendmail): Alertmanager sends its mail through 127.0.0.1:25; install one "
            "(postfix, as on Proxmox nodes) or unset fail2ban_notify_mail for this host"
        )
    if settings["notify_webhook"] and settings["notify_webhook_format"] == "gotify":
        raise DeployError(
            f"{host.name}: fail2ban_notify_webhook_format = 'gotify': Alertmanager posts its own "
            "JSON to the webhook, which Gotify refuses; give this host a webhook that takes it "
            "(ntfy, a JSON receiver) or fail2ban_notify_mail"
        )
    if not (settings["notify_mail"] or settings["notify_webhook"]):
        logger.warning(
            f"{host.name}: neither fail2ban_notify_mail nor fail2ban_notify_webhook is set: the "
            "alerts are shown in Alertmanager only (port 9093 on the monitoring host)"
        )
    if not all(
        host.get_fact(File, path=path, _timeout=bound())
        for path in (alerting.PASSWORD, alerting.WEB_CONFIG)
    ):
        server.shell(
            name="Alertmanager's API password made (once, before Alertmanager is installed)",
            commands=[
                StringCommand(
                    "python3",
                    "-c",
                    QuoteString((SCRIPTS / "monitoring-credentials.py").read_text()),
                    *map(QuoteString, (alerting.PASSWORD, alerting.WEB_CONFIG, alerting.API_USER)),
                )
            ],
            _timeout=bound(),
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
    # staged in a root-only folder, each file 0600, never shown by `--diff` (the token is one);
    # a failed apply removes the stage, so the next run stages and applies again
    staged = {f"{STAGE}{path}": (data, "600") for path, (data, _, _) in wanted.items()}
    changed = files_in_place(
        "Prometheus and Alertmanager configuration staged",
        staged,
        {path: present_file(path) for path in staged},
        private_dir=STAGE,
    )
    server.shell(
        name="Prometheus and Alertmanager configuration live, tested by promtool and amtool",
        commands=[
            shipped_script(
                "monitoring-apply.sh",
                STAGE,
                *(f"{path}:{mode}:{owner}" for path, (_, mode, owner) in sorted(wanted.items())),
            )
        ],
        **({} if changed else {"_if": any_changed(*arguments)}),
    )
    files.file(  # Prometheus sends it, nobody else reads it
        name=f"{alerting.PASSWORD}: root's and Prometheus's only",
        path=alerting.PASSWORD,
        user="root",
        group="prometheus",
        mode="640",
    )
    if alerting.TOKEN_PATH not in wanted:  # the token setting removed: its copies go
        for path in (alerting.TOKEN_PATH, f"{STAGE}{alerting.TOKEN_PATH}"):
            files.file(name=f"{path} absent (no webhook token)", path=path, present=False)
    for service in ("prometheus", "prometheus-alertmanager"):
        systemd.service(
            name=f"{service} running and enabled at boot",
            service=service,
            running=True,
            enabled=True,
        )
