"""What one node needs: which backend, log source, ban action and ports each jail gets, which
packages to install, which addresses are never banned. Pure: settings + node facts in, plan out."""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from .events import EXPORTER, events_config
from .facts import (
    FILTER,
    FILTER_LOCAL,
    PBS_AUTH_LOG,
    PBS_CHANGELOG,
    PBS_FILTER,
    PBS_JAIL,
    PMG_FILTER,
    PMG_JAIL,
    PROXMOX_JAIL,
    RECIDIVE_JAIL,
    SSHD_JAIL,
)

AUTH_LOG = "/var/log/auth.log"
DAEMON_LOG = "/var/log/daemon.log"
FAIL2BAN_LOG = "/var/log/fail2ban.log"
# sshd on Debian runs as ssh.service; OpenSSH >= 9.8 (Debian 13) logs from sshd-session.
SSHD_JOURNALMATCH = "_SYSTEMD_UNIT=ssh.service + _COMM=sshd + _COMM=sshd-session"
LOOPBACK = ["127.0.0.1/8", "::1"]
# Our jails whose name the distribution may define too (Debian 13 enables sshd; fail2ban 1.1 ships
# a proxmox jail): where ours does not run, a `.local` file keeps the distribution's off as well.
OUR_JAILS = {"sshd": SSHD_JAIL, "proxmox": PROXMOX_JAIL, "recidive": RECIDIVE_JAIL}
PRODUCTS = {"pve": "Proxmox VE", "pbs": "Proxmox Backup Server", "pmg": "Proxmox Mail Gateway"}
# Before proxmox-rest-server 1.0.5 (February 2026) PBS's public proxy took the client's address from
# a `Forwarded: for=` header the client sent (shared/PROXMOX-LOGS.md): a PBS release older than this
# date cannot have the fix, so the deploy warns there (see forwarded_risk).
FORWARDED_FIXED = datetime(2026, 3, 1, tzinfo=timezone.utc)
BANACTIONS = {
    "nftables": ("nftables-multiport", "nftables-allports", "nft", "nftables"),
    "iptables": ("iptables-multiport", "iptables-allports", "iptables", "iptables"),
}
# A banned client gets a TCP reset: refused at once. (The default ICMP port-unreachable is
# rate-limited by the kernel, so a banned client may wait a second or more to learn it is refused.)
# iptables accepts tcp-reset only in a rule that matches TCP: the ban rule (`-s <ip> -j <blocktype>`)
# gets `-p tcp` from here (iptables 1.8.9 of Debian 12 refuses the rule otherwise; 1.8.11 does not).
BLOCKTYPES = {
    "nftables": "reject with tcp reset",
    "iptables": "REJECT --reject-with tcp-reset -p tcp",
}


class NodeError(Exception):
    """This node cannot be served as it is; the message says why and what to do."""


@dataclass(kw_only=True)
class Jail:
    """One jail of ours as it is written to its jail.d file."""

    name: str
    path: str  # the guide's file name
    ports: list
    maxretry: int
    bantime: str
    findtime: str
    backend: str  # "systemd" or "file"
    logpath: str = None
    journalmatch: str = None
    filter: str = None
    why: str = ""


@dataclass(kw_only=True)
class Plan:
    """What one node gets (plan_node)."""

    jails: list  # Jail, each running
    off: dict  # {jail name: (path, why)} of OUR_JAILS that do not run here
    banaction: str
    banaction_allports: str
    blocktype: str
    firewall_tool: str  # the command the ban action runs: nft or iptables
    ignoreip: list
    packages: list
    filter_path: str  # where the proxmox filter goes (.local where the package owns the .conf)
    filters: dict = field(default_factory=dict)  # {path on the node: filter file of ours}
    share: bool = False  # our jails send their bans to the peers (cluster_bans.py)
    events: dict = None  # metrics and notifications (events.events_config), or None
    warnings: list = field(default_factory=list)


QUIET_SSHD = ("QUIET", "SILENT", "FATAL", "ERROR")  # sshd LogLevels that drop failed logins (INFO)
LEVELS = [
    "emerg",
    "alert",
    "crit",
    "err",
    "warning",
    "notice",
    "info",
    "debug",
]  # syslog priorities
JOURNALD_DROPIN = "/etc/systemd/journald.conf.d/zz-pve-fail2ban.conf"


def _level(value):
    """journald's MaxLevelStore= (a name or 0-7) -> 0-7; debug (keep all) when not set."""
    if value in (None, ""):
        return 7
    if value.isdigit():
        return int(value)
    aliases = {"emergency": "emerg", "critical": "crit", "error": "err", "warn": "warning"}
    return LEVELS.index(aliases.get(value, value)) if aliases.get(value, value) in LEVELS else 7


def _backend(choice, log, node):
    """'systemd' or 'file' for a jail whose classic log file is `log`: the file only where it exists
    and an active rsyslog still writes it (a stale file would leave the jail blind)."""
    has_log = log in node["logs"]
    written = log in node["logs_written"]
    if choice == "file" and not (has_log and written):
        why = (
            "does not exist on this node (journald only, like PVE 8/9)"
            if not has_log
            else (
                "exists, but no active rsyslog rule writes it any more, so the jail would see nothing"
            )
        )
        raise NodeError(
            f"fail2ban_backend = 'file' but {log} {why}: use 'auto' or 'systemd', or restore the "
            f"rsyslog rule that writes {log} and restart rsyslog"
        )
    if choice == "systemd" and not node["journal"]:
        raise NodeError("fail2ban_backend = 'systemd' but this node has no journal (journalctl)")
    if choice == "auto":
        if has_log and written:
            return "file", f"{log} exists, written by rsyslog"
        if has_log:
            return "systemd", f"{log} is no longer written by rsyslog: the journal"
        return "systemd", f"no {log}: the journal"
    return choice, f"fail2ban_backend = {choice!r}"


def _journal_keeps(node, jail, priority):
    """NodeError when journald's effective settings drop what `jail` reads at `priority`."""
    fix = (
        f"Fix: a drop-in such as {JOURNALD_DROPIN} with [Journal] Storage=auto and "
        f"MaxLevelStore=info, then `systemctl restart systemd-journald`"
    )
    if node.get("journald_storage") == "none":
        raise NodeError(
            f"journald has Storage=none (systemd-analyze cat-config systemd/journald.conf): the journal "
            f"keeps nothing, so the {jail} jail would never see a failure. {fix}"
        )
    if _level(node.get("journald_maxlevelstore")) < LEVELS.index(priority):
        raise NodeError(
            f"journald has MaxLevelStore={node['journald_maxlevelstore']}: the {jail} jail reads "
            f"{priority}-level messages, which the journal drops, so it would never see a failure. {fix}"
        )


def _banaction(choice, node):
    if choice == "auto":
        choice = (
            "nftables" if "nft" in node["tools"] or "iptables" not in node["tools"] else "iptables"
        )
    return choice


def _daemon_log_source(jail, settings, node):
    """(backend, logpath, why) of a jail that reads a Proxmox daemon's err lines (proxmox, pmg):
    the journal, or daemon.log where rsyslog still writes it."""
    backend, why = _backend(settings["backend"], DAEMON_LOG, node)
    if backend == "systemd":
        _journal_keeps(node, jail, "err")
    return backend, DAEMON_LOG if backend == "file" else None, why


def _web_jail(name, path, settings, source):
    """The jail of a Proxmox web UI / API: its fail2ban_<name>_* settings, its filter of the same
    name, its `source` (backend, logpath, why)."""
    backend, logpath, why = source
    return Jail(
        name=name,
        path=path,
        ports=settings[f"{name}_port"],
        maxretry=settings[f"{name}_maxretry"],
        bantime=settings[f"{name}_bantime"],
        findtime=settings["findtime"],
        backend=backend,
        logpath=logpath,
        filter=name,
        why=why,
    )


def _pbs_backend(choice, node):
    """(backend, logpath, why) of the pbs jail: 'systemd' (the PBS units' journal) or 'file' (PBS's
    own auth log, which it always writes). `auto` takes the journal unless journald drops PBS's
    lines."""
    has_log = node.get("pbs_authlog")
    if choice == "file" and not has_log:
        raise NodeError(
            f"fail2ban_backend = 'file' but {PBS_AUTH_LOG} does not exist on this node: use "
            "'auto' or 'systemd' (the journal of PBS's units)"
        )
    if choice == "file":
        return "file", PBS_AUTH_LOG, f"fail2ban_backend = 'file': {PBS_AUTH_LOG}"
    if not node["journal"]:
        if choice == "auto" and has_log:
            return "file", PBS_AUTH_LOG, f"no journal: {PBS_AUTH_LOG}"
        raise NodeError("the pbs jail reads the journal, but this node has no journal (journalctl)")
    try:
        _journal_keeps(node, "pbs", "err")
    except NodeError:
        if choice == "auto" and has_log:
            return "file", PBS_AUTH_LOG, f"journald drops PBS's err lines here: {PBS_AUTH_LOG}"
        raise
    return "systemd", None, "the journal of PBS's units"


def forwarded_risk(node):
    """Why the addresses this PBS node logs may have been chosen by a client, or None. PBS releases
    before FORWARDED_FIXED took them from a client-sent `Forwarded` header; the release's date is
    read from its Debian changelog (NodeFacts pbs_version / pbs_date)."""
    try:
        when = parsedate_to_datetime(node["pbs_date"]) if node.get("pbs_date") else None
    except (TypeError, ValueError):
        when = None
    if when is not None and when >= FORWARDED_FIXED:
        return None
    release = (
        f"PBS {node.get('pbs_version') or '(version unknown)'} of {when:%Y-%m-%d}"
        if when
        else f"the PBS release cannot be read ({PBS_CHANGELOG})"
    )
    return (
        f"{release}: PBS releases before March 2026 (proxmox-rest-server < 1.0.5) log the address "
        "a client claims in a `Forwarded` header, so a client can get another address banned. "
        "This controller, the inventory's nodes and ignoreip are never banned (lockout protection); "
        "upgrade PBS (apt full-upgrade) to close it"
    )


def unsupported(node):
    """Why a node (NodeFacts) is no Proxmox node we can serve, or None. Such a node is never
    anybody's peer either."""
    if not node.get("systemd"):
        return (
            "systemd is not running as init on this node: only Debian-based nodes with "
            "systemd (Proxmox VE 7/8/9) are supported"
        )
    family = f"{node.get('os_id') or ''} {node.get('os_like') or ''}".split()
    if "debian" not in family:
        return (
            f"this node runs {node.get('os_id') or 'an unknown OS'!r}, not Debian: "
            "only Debian-based nodes (Proxmox VE) are supported"
        )
    return None


def plan_node(settings, node, peers=(), controller=(), share=False, name="node"):
    """settings: validated (settings.validate); node: NodeFacts; peers: every address of every
    inventory node (node.cluster_addresses); controller: this controller's own stable addresses;
    share: this node shares bans with its peers (cluster_bans.members); name: the node's
    inventory name (it names the node in notifications)."""
    reason = unsupported(node)
    if reason:
        raise NodeError(reason)

    warnings = []
    jails = []
    products = node.get("products") or []
    if not products:
        warnings.append(
            "this node runs none of Proxmox VE, Backup Server or Mail Gateway (no pvedaemon, "
            "proxmox-backup(-proxy) or pmgdaemon unit): it gets the sshd jail only"
        )
    if settings["sshd_enabled"]:
        backend, why = _backend(settings["backend"], AUTH_LOG, node)
        if backend == "systemd":
            _journal_keeps(node, "sshd", "info")
        if node.get("sshd_loglevel") in QUIET_SSHD:
            raise NodeError(
                f"sshd has LogLevel {node['sshd_loglevel']} (sshd -T): it does not log failed logins, "
                "so the sshd jail would never see one. Fix: LogLevel INFO (or VERBOSE) in "
                "/etc/ssh/sshd_config, then `systemctl reload ssh`"
            )
        ports = settings["sshd_port"] or node["sshd_ports"] or ["22"]
        maxauthtries = node.get("sshd_maxauthtries")
        if maxauthtries is not None and maxauthtries != settings["sshd_maxretry"]:
            warnings.append(
                f"sshd MaxAuthTries is {maxauthtries} but fail2ban_sshd_maxretry is "
                f"{settings['sshd_maxretry']} (the guide makes them the same)"
            )
        source = "from fail2ban_sshd_port" if settings["sshd_port"] else "from sshd -T"
        jails.append(
            Jail(
                name="sshd",
                path=SSHD_JAIL,
                ports=ports,
                maxretry=settings["sshd_maxretry"],
                bantime=settings["sshd_bantime"],
                findtime=settings["findtime"],
                backend=backend,
                logpath=AUTH_LOG if backend == "file" else None,
                journalmatch=SSHD_JOURNALMATCH if backend == "systemd" else None,
                filter="sshd",
                why=f"{why}; port{'s' if len(ports) > 1 else ''} {source}",
            )
        )
    if settings["proxmox_enabled"] and "pve" in products:
        jails.append(
            _web_jail(
                "proxmox", PROXMOX_JAIL, settings, _daemon_log_source("proxmox", settings, node)
            )
        )
    if settings["pbs_enabled"] and "pbs" in products:
        jails.append(_web_jail("pbs", PBS_JAIL, settings, _pbs_backend(settings["backend"], node)))
        risk = forwarded_risk(node)
        if risk:
            warnings.append(risk)
    if settings["pmg_enabled"] and "pmg" in products:
        jails.append(
            _web_jail("pmg", PMG_JAIL, settings, _daemon_log_source("pmg", settings, node))
        )
    if settings["recidive_enabled"]:
        jails.append(
            Jail(
                name="recidive",
                path=RECIDIVE_JAIL,
                ports=["all"],
                maxretry=settings["recidive_maxretry"],
                bantime=settings["recidive_bantime"],
                findtime=settings["recidive_findtime"],
                backend="file",
                logpath=FAIL2BAN_LOG,
                filter="recidive",
                why="repeat offenders, from fail2ban's own log",
            )
        )
    # A jail switched off is written as `enabled = false`: the distribution's own jail of that name
    # (Debian 13 enables sshd in jail.d/defaults-debian.conf) does not run either.
    running = {jail.name for jail in jails}
    off = {
        name: (
            path,
            f"this node does not run {PRODUCTS['pve']} (no pvedaemon unit)"
            if name == "proxmox" and settings["proxmox_enabled"]
            else f"switched off in the deploy's settings (fail2ban_{name}_enabled = False)",
        )
        for name, path in OUR_JAILS.items()
        if name not in running
    }
    filter_path = FILTER_LOCAL if node.get("filter_owner") else FILTER
    filters = {filter_path: "proxmox.conf"}  # kept everywhere: fail2ban-regex by hand needs it
    filters.update({PBS_FILTER: "pbs.conf"} if "pbs" in running else {})
    filters.update({PMG_FILTER: "pmg.conf"} if "pmg" in running else {})

    banaction = _banaction(settings["banaction"], node)
    multiport, allports, tool, package = BANACTIONS[banaction]

    packages = ["fail2ban"]
    if any(j.backend == "systemd" for j in jails):
        packages.append("python3-systemd")
    if any(j.backend == "file" for j in jails):
        packages.append("python3-pyinotify")  # file changes seen at once, not on the next poll
    if tool not in node["tools"]:
        packages.append(package)
    events = events_config(name, settings, node)
    if settings["metrics"] == "on":
        packages.append(EXPORTER)
    if events and events["notify"] and events["notify"]["mail"] and not node.get("sendmail"):
        warnings.append(
            "fail2ban_notify_mail is set but this node has no /usr/sbin/sendmail (no MTA): its "
            "ban mails cannot be delivered (PVE installs postfix; `apt install postfix`)"
        )
    missing = [p for p in packages if p not in node["packages"]]

    if share and node.get("sshd_permitrootlogin") == "no":
        warnings.append(
            "sshd has PermitRootLogin no: this node cannot receive its peers' bans (their key runs "
            "one forced command as root; PermitRootLogin forced-commands-only is enough)"
        )
    ignoreip = list(LOOPBACK)
    if settings["lockout_protection"]:
        if not node.get("client"):
            raise NodeError(
                "cannot tell this controller's address as the node sees it (no SSH_CLIENT); "
                "set fail2ban_lockout_protection = False to go on without it"
            )
        ignoreip += [node["client"], *controller, *peers]
    ignoreip += settings["ignoreip"]
    ignoreip = list(dict.fromkeys(ignoreip))  # once each, order kept: same input, same bytes

    return Plan(
        jails=jails,
        off=off,
        banaction=multiport,
        banaction_allports=allports,
        blocktype=BLOCKTYPES[banaction],
        firewall_tool=tool,
        ignoreip=ignoreip,
        packages=missing,
        filter_path=filter_path,
        filters=filters,
        share=share,
        events=events,
        warnings=warnings,
    )


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def files_to_change(wanted, node):
    """Paths of `wanted` ({path: bytes}) whose bytes, mode or owner differ on the node."""
    return [
        path
        for path, data in wanted.items()
        if node["files"].get(path) != (sha1(data), "644", "root:root")
    ]


def files_differ(files, present):
    """Paths of `files` ({path: (bytes, mode)}) whose bytes, mode or owner differ from `present`
    ({path: (sha1, mode, owner)} as NodeFacts reads them); every file is root:root."""
    return [
        p for p, (data, mode) in files.items() if present.get(p) != (sha1(data), mode, "root:root")
    ]


def files_to_remove(wanted, node):
    """Files of ours on the node that this run no longer wants (a jail switched off, a filter that
    moved to .local). Never a file the fail2ban package owns, and never the admin's own
    filter.d/proxmox.local: it is ours only where the package owns proxmox.conf."""
    not_ours = {FILTER} if node.get("filter_owner") else {FILTER_LOCAL}
    return [path for path in node["files"] if path not in wanted and path not in not_ours]
