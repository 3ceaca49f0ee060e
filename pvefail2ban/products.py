"""The Proxmox products the deploy protects, each described once, here. Everything else reads these
descriptions: which units tell that a product runs (facts), its jail, ports, log source and filters
(plan, render), its settings and their defaults (defaults, settings), the failure lines the check
must see its filter find (verify), what status expects (day2), and its lab variant (lab/config.py).

To add a product: a Product below, its filter(s) in files/etc/fail2ban/filter.d/ with a sample log
in tests/files/logs/<jail> (failJSON annotations), and its simulated daemons in the lab.
"""

from dataclasses import dataclass

# Sources a product's failure lines can be read from (plan.log_source):
# "daemon":  its daemons' err lines, in the journal or in /var/log/daemon.log where rsyslog writes it
# "authlog": the journal of its units, or the auth log its API server writes (auth_log)
SOURCES = ("daemon", "authlog")


@dataclass(frozen=True, kw_only=True)
class AccessLog:
    """A product's own web proxy (pveproxy, pmgproxy) logs every request it answers to an access
    log, the only place where a failed API token, ticket or SPICE ticket has its client's address
    (pveproxy checks those itself: no daemon line names the client). Its jail counts those 401s;
    the password logins there are the product jail's (its daemon names the client), counted once.
    """

    daemon: str  # the proxy daemon that writes it
    path: str
    jail: str  # its jail's name
    jail_file: str
    ports: tuple  # beyond the product's ports: spiceproxy's (it writes the same log)
    # PROXY_REAL_IP_HEADER / _ALLOW_FROM are read from this file (pveproxy >= 8.3.4): the logged
    # address is then a header's; None: the TCP peer's, always (pmgproxy)
    real_ip_defaults: str = None
    # a failure line the jail's filter must find before a configuration goes live (apply.sh)
    self_test: tuple = ()


@dataclass(frozen=True, kw_only=True)
class Product:
    key: str  # how facts, status and the lab name it
    name: str  # what the admin calls it
    short: str  # ... in a short sentence
    jail: str  # its jail's name, which is also its settings' prefix (fail2ban_<jail>_*)
    jail_file: str  # where its jail goes (a .local in jail.d: read after the distribution's)
    about: str  # the jail file's comment: what it protects and with which filter
    units: tuple  # unit files that tell it runs here (any one of them, not masked)
    ports: tuple  # default of fail2ban_<jail>_port: where its web UI / API listens
    logins: str  # whose logins the jail counts (settings' section title)
    source: str  # one of SOURCES
    filters: tuple  # its filter files (files/etc/fail2ban/filter.d/), the jail's own last
    failure: (
        str  # a regex that finds its login failure lines (the check runs fail2ban-regex on them)
    )
    auth_log: str = None  # source "authlog": the file its API server writes every failure to
    changelog: str = (
        None  # its Debian changelog: the release and its date (see client_address_risk)
    )
    # releases before this month log an address the client chose (a `Forwarded` header: before
    # proxmox-rest-server 1.0.5, February 2026; shared/PROXMOX-LOGS.md); None: no such risk
    forwarded_fixed: str = None
    distribution_jail: bool = False  # fail2ban's own jail.conf defines a jail of this name
    # failure lines its daemons write, as the journal shows them and (authlog) as its auth log has
    # them: its filter must find every one before a configuration goes live (scripts/apply.sh)
    self_test: tuple = ()
    # the detection canary (events.canary_of): (the daemon's name in the journal, the message
    # of a failed login of it from {address}), written where the daemon writes, at err
    canary: tuple = ()
    access: AccessLog = None  # its web proxy's access log (API tokens, tickets), if it has one

    @property
    def filter(self):
        """The filter the jail names: its last filter file, without `.conf`."""
        return self.filters[-1].removesuffix(".conf")


PVE = Product(
    key="pve",
    name="Proxmox VE",
    short="PVE",
    jail="proxmox",
    jail_file="/etc/fail2ban/jail.d/02_proxmox.local",
    about="The guide's Proxmox VE web UI / API jail (pvedaemon logins), with the filter in "
    "filter.d/proxmox.conf.",
    units=("pvedaemon.service",),
    ports=("https", "http", 8006),
    logins="the guide's 02_proxmox",
    source="daemon",
    filters=("proxmox.conf",),
    failure="authentication (verification )?failure; rhost=[0-9A-Fa-f:.]",
    distribution_jail=True,  # fail2ban 1.1 ships a [proxmox] jail
    self_test=(
        "Nov 24 21:52:11 pve1 pvedaemon[4242]: authentication failure; rhost=::ffff:192.0.2.1 "
        "user=root@pam msg=Authentication failure",
    ),
    canary=(
        "pvedaemon",
        "authentication failure; rhost={address} user=canary@pve-fail2ban msg={why}",
    ),
    access=AccessLog(
        daemon="pveproxy",
        path="/var/log/pveproxy/access.log",
        jail="pveproxy",
        jail_file="/etc/fail2ban/jail.d/10_pveproxy.local",
        ports=(3128,),  # spiceproxy
        real_ip_defaults="/etc/default/pveproxy",
        self_test=(
            '::ffff:192.0.2.1 - - [24/11/2026:21:52:11 +0000] "GET /api2/json/nodes HTTP/1.1" 401 -',
        ),
    ),
)
PBS = Product(
    key="pbs",
    name="Proxmox Backup Server",
    short="PBS",
    jail="pbs",
    jail_file="/etc/fail2ban/jail.d/04_pbs.local",
    about="Proxmox Backup Server web UI / API (proxmox-backup-api and -proxy logins), filter in "
    "filter.d/pbs.conf.",
    units=("proxmox-backup.service", "proxmox-backup-proxy.service"),
    ports=(8007,),
    logins="Proxmox Backup Server: proxmox-backup-api / -proxy logins",
    source="authlog",
    filters=("proxmox-rest-server.conf", "pbs.conf"),
    failure=r"authentication failure; rhost=\[?[0-9A-Fa-f:.]",
    auth_log="/var/log/proxmox-backup/api/auth.log",
    changelog="/usr/share/doc/proxmox-backup-server/changelog.Debian.gz",
    forwarded_fixed="2026-03",
    self_test=(
        "Nov 24 21:52:11 pbs1 proxmox-backup-api[4242]: authentication failure; "
        "rhost=[::ffff:192.0.2.1]:50412 user=root@pam msg=invalid credentials",
        "2026-11-24T21:52:11+00:00: authentication failure; rhost=[::ffff:192.0.2.1]:50412 "
        "msg=no authentication credentials provided.",
    ),
    canary=(
        "proxmox-backup-api",
        "authentication failure; rhost=[::ffff:{address}]:9 user=canary@pve-fail2ban msg={why}",
    ),
)
PMG = Product(
    key="pmg",
    name="Proxmox Mail Gateway",
    short="PMG",
    jail="pmg",
    jail_file="/etc/fail2ban/jail.d/05_pmg.local",
    about="Proxmox Mail Gateway web UI / API (pmgdaemon logins), with the filter in "
    "filter.d/pmg.conf.",
    units=("pmgdaemon.service",),
    ports=(8006,),
    logins="Proxmox Mail Gateway: pmgdaemon logins",
    source="daemon",
    filters=("pmg.conf",),
    failure="authentication (verification )?failure; rhost=[0-9A-Fa-f:.]",
    self_test=(
        "Nov 24 21:52:11 pmg1 pmgdaemon[4242]: authentication failure; rhost=::ffff:192.0.2.1 "
        "user=root@pam msg=Authentication failure",
    ),
    canary=(
        "pmgdaemon",
        "authentication failure; rhost={address} user=canary@pve-fail2ban msg={why}",
    ),
    access=AccessLog(
        daemon="pmgproxy",
        path="/var/log/pmgproxy/pmgproxy.log",
        jail="pmgproxy",
        jail_file="/etc/fail2ban/jail.d/11_pmgproxy.local",
        ports=(),
        self_test=(
            '::ffff:192.0.2.1 - - [24/11/2026:21:52:11 +0000] "GET /api2/json/nodes HTTP/1.1" 401 -',
        ),
    ),
)
# Proxmox Datacenter Manager: its API is built from PBS's crates (proxmox-rest-server,
# proxmox-auth-api), so it logs PBS's lines under its own daemons' names (shared/PROXMOX-LOGS.md).
PDM = Product(
    key="pdm",
    name="Proxmox Datacenter Manager",
    short="PDM",
    jail="pdm",
    jail_file="/etc/fail2ban/jail.d/06_pdm.local",
    about="Proxmox Datacenter Manager web UI / API (proxmox-datacenter-api and -privileged-api "
    "logins), filter in filter.d/pdm.conf.",
    units=("proxmox-datacenter-api.service", "proxmox-datacenter-privileged-api.service"),
    ports=(8443,),
    logins="Proxmox Datacenter Manager: proxmox-datacenter-(privileged-)api logins",
    source="authlog",
    filters=("proxmox-rest-server.conf", "pdm.conf"),
    failure=r"authentication failure; rhost=\[?[0-9A-Fa-f:.]",
    auth_log="/var/log/proxmox-datacenter-manager/api/auth.log",
    changelog="/usr/share/doc/proxmox-datacenter-manager/changelog.gz",  # a native package
    forwarded_fixed="2026-03",
    self_test=(
        "Nov 24 21:52:11 pdm1 proxmox-datacenter-privileged-api[4242]: authentication failure; "
        "rhost=[::ffff:192.0.2.1]:50412 user=root@pam msg=authentication error - AUTH_ERR (7)",
        "2026-11-24T21:52:11+00:00: authentication failure; rhost=[::ffff:192.0.2.1]:50412 "
        "msg=no authentication credentials provided.",
    ),
    canary=(
        "proxmox-datacenter-privileged-api",
        "authentication failure; rhost=[::ffff:{address}]:9 user=canary@pve-fail2ban msg={why}",
    ),
)
PRODUCTS = (PVE, PBS, PMG, PDM)
ACCESS_LOGS = tuple(p.access for p in PRODUCTS if p.access)
ACCESS_FILTER = "proxmox-access"  # files/etc/fail2ban/filter.d/proxmox-access.conf
# what verify's check runs fail2ban-regex on in an access log: a 401 that is no password login
# what verify's check runs fail2ban-regex on in an access log: pveproxy's own 401 (no body), and
# spiceproxy's (filter.d/proxmox-access.conf) ...
_LOGIN_401 = r'"POST /+api2/+[a-z]+/+access/+(?:vnc)?ticket/*(?:\?\S*)? HTTP/1\.[01]" 401 -$'
ACCESS_FAILURE = (
    r"^(?!\S+ - \S+ \[[^\]]*\] " + _LOGIN_401 + r')\S+ - .*" 401 -$'
    r'|^\S+ - \S+ \[[^\]]*\] "CONNECT .*" 401 [0-9]+$'
)
# ... and (mode=logins, behind fail2ban_trusted_proxies) the daemon's 401s and a web UI login's 200
ACCESS_LOGIN_FAILURE = (
    r'^\S+ - \S+ \[[^\]]*\] "(?!CONNECT ).*" 401 [0-9]+$|' + _LOGIN_401 + "|"
    r'"POST /+api2/+extjs/+(?:access/+ticket/*[ ?]|\S*%).*" 200 75$|'
    r'"POST /+api2/+htmljs/+(?:access/+ticket/*[ ?]|\S*%).*" 200 (?:[1-9][0-9]?|[12][0-9][0-9])$'
)
BY_KEY = {product.key: product for product in PRODUCTS}
UNITS = {unit: product.key for product in PRODUCTS for unit in product.units}
SELF_TESTS = {
    **{product.filter: product.self_test for product in PRODUCTS},
    ACCESS_FILTER: tuple(line for access in ACCESS_LOGS for line in access.self_test),
}
assert all(p.source in SOURCES and (p.source != "authlog" or p.auth_log) for p in PRODUCTS)
assert all(p.self_test for p in PRODUCTS), "every filter is tested before it goes live"
assert all(p.canary for p in PRODUCTS), "every jail's detection is proven while it runs"


def settings_section(product):
    """(title, [(key, default, meaning)]) of the product's settings (defaults.SECTIONS)."""
    key, short = f"fail2ban_{product.jail}", product.short
    units = " / ".join(u.removesuffix(".service") for u in product.units)
    ports = ", ".join(str(p) for p in product.ports)
    return (
        f"{product.jail} jail ({product.logins})",
        [
            (f"{key}_enabled", True, f"protect the {short} web UI / API where {short} runs ({units})"),
            (f"{key}_port", list(product.ports), f"ports to ban on (names or numbers; {short}: {ports})"),
            (f"{key}_maxretry", 3, f"failed {short} logins within findtime before a ban"),
            (f"{key}_bantime", 600, f"{short} ban length (seconds, fail2ban forms, or -1 = forever)"),
            *access_setting(product),
        ],
    )  # fmt: skip


def access_setting(product):
    """[(key, default, meaning)] of the product's access-log jail (AccessLog), if it has one."""
    access = product.access
    if access is None:
        return []
    spice = " and spiceproxy's SPICE tickets" if access.ports else ""
    key = f"fail2ban_{product.jail}_access_log"
    return [
        (
            key,
            True,
            f"also ban failed API tokens and tickets{spice}, read from {access.daemon}'s access "
            f"log (jail {access.jail}: its ports{''.join(f' and {p}' for p in access.ports)}, "
            "its bantime)",
        ),
        (
            f"{key}_maxretry",
            10,
            "401s there within findtime before a ban: more than a login's, as a browser whose "
            "ticket expired (a laptop waking up) sends one from each open tab",
        ),
    ]
