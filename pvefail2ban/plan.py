"""What one node needs: which backend, log source, ban action and ports each jail gets, which
packages to install, which addresses are never banned. Pure: settings + node facts in, plan out.

plan_node puts together what its parts decide, one concern each: the jails (sshd_jail, product_jail,
recidive_jail) and their sources (log_source), the ban action (firewall), the filters, the packages,
and the addresses never banned (never_banned)."""

import hashlib
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from .events import EXPORTER, events_config
from .facts import FILTER_DIR, FILTERS, RECIDIVE_JAIL, SSHD_JAIL
from .products import ACCESS_FILTER, ACCESS_LOGIN_FAILURE, PRODUCTS, PVE
from .proxies import BY_KEY as PROXY_OF
from .proxies import PROXIES, REAL_IP_HEADER, REAL_IP_MARK, with_real_ip
from .scripts.nodelib import FAIL2BAN_LOG

AUTH_LOG = "/var/log/auth.log"
DAEMON_LOG = "/var/log/daemon.log"
# sshd on Debian runs as ssh.service; OpenSSH >= 9.8 (Debian 13) logs from sshd-session. A line of
# a per-connection process that exited at once can lose its unit and _COMM in the journal (systemd
# issue 2913): its name (SYSLOG_IDENTIFIER) is in the line itself. A line is read once. Any local
# user can choose a process name and an identifier (`logger -t sshd`): those alternatives count
# root's lines only (_UID, which journald takes from the kernel, never from the line; sshd logs as
# root). Only root can write a line of the unit.
SSHD_JOURNALMATCH = (
    "_SYSTEMD_UNIT=ssh.service + _COMM=sshd _UID=0 + _COMM=sshd-session _UID=0"
    " + SYSLOG_IDENTIFIER=sshd _UID=0 + SYSLOG_IDENTIFIER=sshd-session _UID=0"
)
LOOPBACK = ["127.0.0.1/8", "::1"]
REAL_IP_MAX = 64 << 10  # bytes of /etc/default/pveproxy the probe reads (a bigger one: not ours)
# Our jails whose name the distribution may define too (Debian 13 enables sshd; fail2ban 1.1 ships
# a proxmox jail): where ours does not run, a `.local` file keeps the distribution's off as well.
OUR_JAILS = {
    "sshd": SSHD_JAIL,
    **{p.jail: p.jail_file for p in PRODUCTS if p.distribution_jail},
    "recidive": RECIDIVE_JAIL,
}
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
    about: str = ""  # a product's jail: what it protects (its jail file's comment)
    share_as: str = None  # the jail its bans are made in on the peers (a proxy's: the product's)
    failure: list = None  # [failure line regex, filter] of verify's check, where not FAILURES's
    log_made_late: bool = False  # its log files' program makes them at its first line (Caddy)


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
    filters: dict = field(default_factory=dict)  # {path on the node: filter file of ours}
    share: bool = False  # our jails send their bans to the peers (share.py)
    events: dict = None  # metrics and notifications (events.events_config), or None
    warnings: list = field(default_factory=list)
    blind: list = field(default_factory=list)  # why a jail cannot see its attackers: not protected
    # /etc/default/pveproxy as fail2ban_trusted_proxies wants it, where that differs; else None
    pveproxy_defaults: str = None
    trusted_proxies: list = field(default_factory=list)  # fail2ban_trusted_proxies (never banned)


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


def _backend(choice, log, facts):
    """'systemd' or 'file' for a jail whose classic log file is `log`: the file only where it exists
    and an active rsyslog still writes it (a stale file would leave the jail blind)."""
    has_log = log in facts["logs"]
    written = log in facts["logs_written"]
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
    if choice == "systemd" and not facts["journal"]:
        raise NodeError("fail2ban_backend = 'systemd' but this node has no journal (journalctl)")
    if choice == "auto":
        if has_log and written:
            return "file", f"{log} exists, written by rsyslog"
        if has_log:
            return "systemd", f"{log} is no longer written by rsyslog: the journal"
        return "systemd", f"no {log}: the journal"
    return choice, f"fail2ban_backend = {choice!r}"


def _journal_keeps(facts, jail, priority):
    """NodeError when journald's effective settings drop what `jail` reads at `priority`."""
    fix = (
        f"Fix: a drop-in such as {JOURNALD_DROPIN} with [Journal] Storage=auto and "
        f"MaxLevelStore=info, then `systemctl restart systemd-journald`"
    )
    if facts.get("journald_storage") == "none":
        raise NodeError(
            f"journald has Storage=none (systemd-analyze cat-config systemd/journald.conf): the journal "
            f"keeps nothing, so the {jail} jail would never see a failure. {fix}"
        )
    if _level(facts.get("journald_maxlevelstore")) < LEVELS.index(priority):
        raise NodeError(
            f"journald has MaxLevelStore={facts['journald_maxlevelstore']}: the {jail} jail reads "
            f"{priority}-level messages, which the journal drops, so it would never see a failure. {fix}"
        )


def _banaction(choice, facts):
    if choice == "auto":
        choice = (
            "nftables"
            if "nft" in facts["tools"] or "iptables" not in facts["tools"]
            else "iptables"
        )
    return choice


def log_source(product, settings, facts):
    """(backend, logpath, why) of `product`'s jail (products.SOURCES): its daemons' err lines in
    the journal or daemon.log ("daemon"); the journal of its units or its own auth log ("authlog")."""
    if product.source == "daemon":
        backend, why = _backend(settings["backend"], DAEMON_LOG, facts)
        if backend == "systemd":
            _journal_keeps(facts, product.jail, "err")
        return backend, DAEMON_LOG if backend == "file" else None, why
    return _authlog_source(product, settings["backend"], facts)


def _authlog_source(product, choice, facts):
    """'systemd' (the journal of the product's units) or 'file' (the auth log its API server always
    writes). `auto` takes the journal unless journald drops the product's err lines."""
    log, has_log, short = product.auth_log, product.auth_log in facts["logs"], product.short
    if choice == "file" and not has_log:
        raise NodeError(
            f"fail2ban_backend = 'file' but {log} does not exist on this node: use 'auto' or "
            f"'systemd' (the journal of {short}'s units)"
        )
    if choice == "file":
        return "file", log, f"fail2ban_backend = 'file': {log}"
    if not facts["journal"]:
        if choice == "auto" and has_log:
            return "file", log, f"no journal: {log}"
        raise NodeError(
            f"the {product.jail} jail reads the journal, but this node has no journal (journalctl)"
        )
    try:
        _journal_keeps(facts, product.jail, "err")
    except NodeError:
        if choice == "auto" and has_log:
            return "file", log, f"journald drops {short}'s err lines here: {log}"
        raise
    return "systemd", None, f"the journal of {short}'s units"


def real_ip_logged(product, settings):
    """True where the product's web proxy logs the clients of fail2ban_trusted_proxies (pveproxy,
    which the deploy sets up for them): its daemon logs the proxy, only that access log the client."""
    return bool(settings["trusted_proxies"] and product.access and product.access.real_ip_defaults)


def product_jail(product, settings, facts):
    """The jail of a product's web UI / API: its fail2ban_<jail>_* settings, its filter, its
    source (log_source); behind trusted proxies on PVE, the logins in pveproxy's access log."""
    source = {"filter": product.filter}
    if real_ip_logged(product, settings):
        access, logins = product.access, f"{ACCESS_FILTER}[mode=logins]"
        source = {
            "backend": "file",
            "logpath": access.path,
            "filter": logins,
            "why": f"{access.daemon}'s access log: behind fail2ban_trusted_proxies "
            f"{product.short}'s daemon logs the proxy, {access.daemon} the client (PROXY_REAL_IP_*)",
            "failure": [ACCESS_LOGIN_FAILURE, logins],
            "log_made_late": True,
        }
    else:
        source["backend"], source["logpath"], source["why"] = log_source(product, settings, facts)
    return Jail(
        name=product.jail,
        path=product.jail_file,
        ports=settings[f"{product.jail}_port"],
        maxretry=settings[f"{product.jail}_maxretry"],
        bantime=settings[f"{product.jail}_bantime"],
        findtime=settings["findtime"],
        about=product.about,
        **source,
    )


def client_address_risk(product, facts):
    """Why the addresses this product logs on this node may have been chosen by a client, or None.
    Its releases before `forwarded_fixed` took them from a client-sent `Forwarded` header
    (proxmox-rest-server < 1.0.5); the release's date is read from its Debian changelog."""
    if not product.forwarded_fixed:
        return None
    release = (facts.get("releases") or {}).get(product.key) or {}
    try:
        when = parsedate_to_datetime(release["date"]) if release.get("date") else None
    except (TypeError, ValueError):
        when = None
    if when is not None and f"{when:%Y-%m}" >= product.forwarded_fixed:
        return None
    named = (
        f"{product.short} {release.get('version') or '(version unknown)'} of {when:%Y-%m-%d}"
        if when
        else f"the {product.short} release cannot be read ({product.changelog})"
    )
    return (
        f"{named}: {product.short} releases before {product.forwarded_fixed} (proxmox-rest-server "
        "< 1.0.5) log the address a client claims in a `Forwarded` header, so a client can get "
        "another address banned. This controller, the inventory's nodes and ignoreip are never "
        f"banned (lockout protection); upgrade {product.short} (apt full-upgrade) to close it"
    )


def unsupported(facts):
    """Why a node (Facts) is no Proxmox node we can serve, or None. Such a node is never anybody's
    peer either."""
    if facts.get("python3") is False:
        return (
            "python3 is not installed on this node (fail2ban needs it too, and the deploy reads "
            "the node with it): `apt install python3`, then run again"
        )
    if not facts.get("systemd"):
        return (
            "systemd is not running as init on this node: only Debian-based nodes with "
            "systemd (Proxmox VE 7/8/9) are supported"
        )
    family = f"{facts.get('os_id') or ''} {facts.get('os_like') or ''}".split()
    if "debian" not in family:
        return (
            f"this node runs {facts.get('os_id') or 'an unknown OS'!r}, not Debian: "
            "only Debian-based nodes (Proxmox VE) are supported"
        )
    return None


def sshd_jail(settings, facts, warnings):
    """The sshd jail: the journal or auth.log, on sshd's own ports (sshd -T) unless set."""
    backend, why = _backend(settings["backend"], AUTH_LOG, facts)
    if backend == "systemd":
        _journal_keeps(facts, "sshd", "info")
    if facts.get("sshd_loglevel") in QUIET_SSHD:
        raise NodeError(
            f"sshd has LogLevel {facts['sshd_loglevel']} (sshd -T): it does not log failed logins, "
            "so the sshd jail would never see one. Fix: LogLevel INFO (or VERBOSE) in "
            "/etc/ssh/sshd_config, then `systemctl reload ssh`"
        )
    ports = settings["sshd_port"] or facts["sshd_ports"] or ["22"]
    maxauthtries = facts.get("sshd_maxauthtries")
    if maxauthtries is not None and maxauthtries != settings["sshd_maxretry"]:
        warnings.append(
            f"sshd MaxAuthTries is {maxauthtries} but fail2ban_sshd_maxretry is "
            f"{settings['sshd_maxretry']} (the guide makes them the same)"
        )
    source = "from fail2ban_sshd_port" if settings["sshd_port"] else "from sshd -T"
    return Jail(
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


def recidive_jail(settings):
    return Jail(
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


def jails_of(settings, facts, warnings):
    """(the jails that run here, {jail of OUR_JAILS that does not: (path, why)}). A jail switched
    off is written as `enabled = false`: the distribution's own jail of that name (Debian 13
    enables sshd in jail.d/defaults-debian.conf) does not run either."""
    runs = facts.get("products") or []
    if not runs:
        warnings.append(
            f"this node runs none of {', '.join(p.name for p in PRODUCTS)} (no unit of theirs: "
            f"{', '.join(u for p in PRODUCTS for u in p.units)}): it gets the sshd jail only"
        )
    jails = [sshd_jail(settings, facts, warnings)] if settings["sshd_enabled"] else []
    for product in PRODUCTS:
        if settings[f"{product.jail}_enabled"] and product.key in runs:
            jails.append(product_jail(product, settings, facts))
            risk = client_address_risk(product, facts)
            warnings += [risk] if risk else []
    proxied, blind = proxy_jails(settings, facts, jails)
    jails += proxied + access_jails(settings, facts, jails, warnings)
    jails += [recidive_jail(settings)] if settings["recidive_enabled"] else []
    running = {jail.name for jail in jails}
    products = {p.jail: p for p in PRODUCTS}
    off = {
        name: (
            path,
            f"this node does not run {products[name].name} (no {' or '.join(products[name].units)})"
            if name in products and settings[f"{name}_enabled"]
            else f"switched off in the deploy's settings (fail2ban_{name}_enabled = False)",
        )
        for name, path in OUR_JAILS.items()
        if name not in running
    }
    return jails, off, blind


# the products' ports a proxy may send requests to, and the products that listen there
PORT_PRODUCTS = {"8006": ("pve", "pmg"), "8007": ("pbs",), "8443": ("pdm",)}


def proxy_jails(settings, facts, product_jails):
    """(a jail on the access log of each reverse proxy of this node that forwards to a product
    whose jail runs here, why a product's jail is blind behind a proxy: [sentence]). Behind a
    proxy the product logs the proxy as its client, which is never banned (loopback, the node):
    only the proxy's log names the client (proxies.py). fail2ban_web_proxy says which proxies get a
    jail; one it leaves out leaves the product's jail blind, and the node is not protected."""
    products = {p.key: p for p in PRODUCTS}
    by_jail = {jail.name: jail for jail in product_jails}
    choice, jails, blind = settings["web_proxy"], [], []
    for key, seen in sorted((facts.get("proxies") or {}).items()):
        proxy = PROXY_OF[key]
        fronted = [
            by_jail[products[p].jail]
            for port in seen["forwards"]
            for p in PORT_PRODUCTS.get(str(port), ())
            if products[p].jail in by_jail
        ]
        fronted = list({jail.name: jail for jail in fronted}.values())
        if not fronted:
            continue
        names = ", ".join(jail.name for jail in fronted)
        listens = ", ".join(map(str, seen["listens"])) or "no port found"
        where = (
            f"{proxy.name} (listening on {listens}) forwards to "
            f"{', '.join(map(str, seen['forwards']))} here, so the {names} jail sees the proxy's "
            "address (loopback or this node: never banned), not the client's"
        )
        if choice not in ("auto", key):
            blind.append(
                f"{where}; fail2ban_web_proxy = {choice!r}: set it to 'auto' (or {key!r}) to ban "
                f"on {proxy.name}'s access log"
            )
            continue
        if seen["why"] or (not seen["logs"] and not proxy.journalmatch):
            blind.append(f"{where}; {seen['why'] or proxy.name + ' writes no access log'}")
            continue
        if not seen["logs"] and not facts["journal"]:
            blind.append(f"{where}; {proxy.name} logs to the journal and this node has none")
            continue
        ports = list(
            dict.fromkeys([*map(str, seen["listens"]), *(p for j in fronted for p in j.ports)])
        )
        jails.append(
            Jail(
                name=proxy.jail,
                path=proxy.jail_file,
                ports=ports,
                maxretry=min(jail.maxretry for jail in fronted),
                bantime=fronted[0].bantime,
                findtime=settings["findtime"],
                backend="file" if seen["logs"] else "systemd",
                logpath="\n            ".join(seen["logs"]) or None,
                journalmatch=None if seen["logs"] else proxy.journalmatch,
                filter=proxy.filter,
                why=f"{proxy.name}'s access log: "
                + (", ".join(seen["logs"]) if seen["logs"] else "the journal of its unit"),
                about=f"Logins to {names} through {proxy.name}, the reverse proxy in front of it "
                f"on this node: their clients' addresses are in {proxy.name}'s log only.",
                share_as=fronted[0].name,
                log_made_late=bool(seen["logs"]),
            )
        )
    return jails, blind


def access_jails(settings, facts, product_jails, warnings):
    """A jail on the access log of the web proxy of each product whose jail runs here
    (products.AccessLog: failed API tokens, tickets, SPICE tickets; the product jail's bantime and
    ports), where the address that log names is the client's: pveproxy takes it from
    PROXY_REAL_IP_HEADER only with PROXY_REAL_IP_ALLOW_FROM naming the proxies that may set it;
    without, any client chooses it, and the jail would ban whom a client names: none then."""
    by_jail, jails = {jail.name: jail for jail in product_jails}, []
    for product in PRODUCTS:
        access, fronted = product.access, by_jail.get(product.jail)
        if not access or not fronted or not settings[f"{product.jail}_access_log"]:
            continue
        real = (facts.get("real_ip") or {}).get(product.key) or {}
        if real_ip_logged(product, settings):  # as this run sets it
            real = {"header": REAL_IP_HEADER, "allow_from": settings["trusted_proxies"]}
        if real.get("why") or (real.get("header") and not real.get("allow_from")):
            warnings.append(
                f"{access.real_ip_defaults}: "
                + (real.get("why") or f"PROXY_REAL_IP_HEADER={real['header']} without "
                   "PROXY_REAL_IP_ALLOW_FROM")
                + f": {access.daemon} logs the address any client names in that header, so a "
                f"jail on its access log would ban whom a client chooses; the {access.jail} jail "
                "(API tokens, tickets) is not set up. Set PROXY_REAL_IP_ALLOW_FROM to your "
                f"proxies' addresses and restart {access.daemon} (docs/reverse-proxy.md)"
            )  # fmt: skip
            continue
        jails.append(
            Jail(
                name=access.jail,
                path=access.jail_file,
                ports=list(dict.fromkeys([*map(str, fronted.ports), *map(str, access.ports)])),
                maxretry=settings[f"{product.jail}_access_log_maxretry"],
                bantime=fronted.bantime,
                findtime=fronted.findtime,
                backend="file",  # the daemon writes no journal line with the client in it
                logpath=access.path,
                filter=ACCESS_FILTER,
                why=f"{access.daemon}'s access log: {access.path}",
                about=f"Failed API tokens and tickets of {product.name}, which only "
                f"{access.daemon}'s access log names with their client (the logins are the "
                f"{product.jail} jail's).",
                log_made_late=True,
            )
        )
    return jails


def filters_of(jails, facts):
    """{path on the node: our filter file} for the products whose jail runs here, and PVE's
    everywhere (fail2ban-regex by hand needs it). Where the fail2ban package ships a filter of the
    same name, ours goes beside it as .local (read after the package's .conf)."""
    running = {jail.name for jail in jails}
    names = [n for p in PRODUCTS if p is PVE or p.jail in running for n in p.filters]
    names += [f"{p.filter}.conf" for p in PROXIES if p.jail in running]
    names += [f"{ACCESS_FILTER}.conf" for j in jails if (j.filter or "").startswith(ACCESS_FILTER)]
    return {filter_path(name, facts): name for name in dict.fromkeys(names)}


def filter_path(name, facts):
    """Where our filter file `name` goes on this node: filter.d/<name>, or its .local where the
    fail2ban package owns <name> (NodeFacts packaged_filters)."""
    if name in (facts.get("packaged_filters") or []):
        return f"{FILTER_DIR}/{name.removesuffix('.conf')}.local"
    return f"{FILTER_DIR}/{name}"


def packages_of(jails, tool_package, settings, facts):
    """The packages this node still needs: fail2ban, what its jails' sources need, the ban
    action's firewall tool, node_exporter where metrics are `on`."""
    packages = ["fail2ban"]
    if any(j.backend == "systemd" for j in jails):
        packages.append("python3-systemd")
    if any(j.backend == "file" for j in jails):
        packages.append("python3-pyinotify")  # file changes seen at once, not on the next poll
    if tool_package[0] not in facts["tools"]:
        packages.append(tool_package[1])
    if settings["metrics"] == "on":
        packages.append(EXPORTER)
    return [p for p in packages if p not in facts["packages"]]


def never_banned(settings, facts, peers, controller):
    """ignoreip: loopback; with lockout protection this controller (as the node sees it and its
    own addresses) and every inventory node; then fail2ban_ignoreip. Once each, order kept: the
    same input gives the same bytes."""
    ignoreip = list(LOOPBACK)
    if settings["lockout_protection"]:
        if not facts.get("client"):
            raise NodeError(
                "cannot tell this controller's address as the node sees it (no SSH_CLIENT); "
                "set fail2ban_lockout_protection = False to go on without it"
            )
        ignoreip += [facts["client"], *controller, *peers]
    ignoreip += settings["trusted_proxies"]  # a proxy is never banned for its clients
    ignoreip += settings["ignoreip"]
    return list(dict.fromkeys(ignoreip))


def plan_node(settings, facts, peers=(), controller=(), share=False, name="node"):
    """settings: validated (settings.validate); facts: Facts of the node; peers: every address of every
    inventory node (node.cluster_addresses); controller: this controller's own addresses and networks;
    share: this node shares bans with its peers (share.members); name: the node's
    inventory name (it names the node in notifications)."""
    reason = unsupported(facts)
    if reason:
        raise NodeError(reason)
    warnings = []
    jails, off, blind = jails_of(settings, facts, warnings)
    banaction = _banaction(settings["banaction"], facts)
    multiport, allports, tool, package = BANACTIONS[banaction]
    events = events_config(name, settings, facts, jails)
    if events and events["notify"] and events["notify"]["mail"] and not facts.get("sendmail"):
        warnings.append(
            "fail2ban_notify_mail is set but this node has no /usr/sbin/sendmail (no MTA): its "
            "ban mails cannot be delivered (PVE installs postfix; `apt install postfix`)"
        )
    if share and facts.get("sshd_permitrootlogin") == "no":
        warnings.append(
            "sshd has PermitRootLogin no: this node cannot receive its peers' bans (their key runs "
            "one forced command as root; PermitRootLogin forced-commands-only is enough)"
        )
    return Plan(
        pveproxy_defaults=pveproxy_defaults(settings, facts, warnings),
        trusted_proxies=settings["trusted_proxies"],
        jails=jails,
        off=off,
        banaction=multiport,
        banaction_allports=allports,
        blocktype=BLOCKTYPES[banaction],
        firewall_tool=tool,
        ignoreip=never_banned(settings, facts, peers, controller),  # the canary's included
        packages=packages_of(jails, (tool, package), settings, facts),
        filters=filters_of(jails, facts),
        share=share,
        events=events,
        warnings=warnings,
        blind=blind,
    )


def pveproxy_defaults(settings, facts, warnings):
    """The text /etc/default/pveproxy gets on a PVE node for fail2ban_trusted_proxies
    (proxies.with_real_ip), where it differs from the node's; None otherwise. The other products
    cannot log the client behind a proxy elsewhere: a warning says so."""
    trusted, runs = settings["trusted_proxies"], facts.get("products") or []
    for product in PRODUCTS:
        if trusted and product.key in runs and not real_ip_logged(product, settings):
            warnings.append(
                f"fail2ban_trusted_proxies: {product.name} cannot log the client of a proxy on "
                f"another host (no real-IP setting), so its {product.jail} jail sees the proxy, "
                "which is never banned: ban on the proxy host itself (docs/reverse-proxy.md)"
            )
    if "pve" not in runs:
        return None
    current = ((facts.get("real_ip") or {}).get("pve") or {"text": ""}).get("text")
    if current is None:  # bigger than the probe reads, or not UTF-8: never rewritten
        if trusted:
            raise NodeError(
                f"/etc/default/pveproxy is over {REAL_IP_MAX} bytes or not UTF-8 text: the deploy "
                "does not rewrite it for fail2ban_trusted_proxies; set PROXY_REAL_IP_* there by hand"
            )
        return None
    if not trusted and REAL_IP_MARK not in current:
        return None  # nothing of ours there: the admin's file is left as it is
    wanted = with_real_ip(current, trusted)
    return wanted if wanted != current else None


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def files_to_change(wanted, facts):
    """Paths of `wanted` ({path: bytes}) whose bytes, mode or owner differ on the node."""
    return [
        path
        for path, data in wanted.items()
        if facts["files"].get(path) != (sha1(data), "644", "root:root")
    ]


def files_differ(files, present):
    """Paths of `files` ({path: (bytes, mode)}) whose bytes, mode or owner differ from `present`
    ({path: (sha1, mode, owner)} as NodeFacts reads them); every file is root:root."""
    return [
        p for p, (data, mode) in files.items() if present.get(p) != (sha1(data), mode, "root:root")
    ]


def jails_reading_nothing(plan, check, missing=()):
    """The jails of `plan` that read log files and run, per `check` (the check as read with the
    facts: jailstatus.check_result), on none of them: their log was missing when fail2ban started
    (nodelib.NO_LOG kept fail2ban itself from failing). Only those a restart makes read: the deploy
    makes their log (log_made_late), or not every one of their logs is still in `missing` (the
    logs the facts looked for and did not find). One whose logs stay missing would read nothing
    after a restart either, and fail2ban would be restarted at every run for nothing: the check
    names it."""
    if not check or not check.get("ping"):
        return []
    return [
        jail
        for jail in plan.jails
        if jail.backend == "file"
        and jail.name in check["jails"]
        and not check["status"].get(jail.name, {}).get("file_list")
        and (jail.log_made_late or not all(path in missing for path in jail.logpath.split()))
    ]


def files_to_remove(wanted, facts):
    """Files of ours on the node that this run no longer wants (a jail switched off, a filter that
    moved to .local). Never a file the fail2ban package owns, and never the admin's own .local of
    a filter: a filter's .local is ours only where the package owns its .conf."""
    packaged = set(facts.get("packaged_filters") or [])
    not_ours = {
        f"{FILTER_DIR}/{name}"
        if name in packaged
        else f"{FILTER_DIR}/{name.removesuffix('.conf')}.local"
        for name in FILTERS
    }
    return [path for path in facts["files"] if path not in wanted and path not in not_ours]
