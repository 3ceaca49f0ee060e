"""The custom pyinfra facts: NodeFacts reads everything the deploy needs from a node in one command
(scripts/probe.py, which prints one JSON document), Fail2banState what the day-2 operations need
(scripts/state.py). One SSH command each.

The parsing is plain functions (parse_node here, model.parse_state), unit-tested without a node:
every value a node reports is parsed into its canonical form (pvefail2ban.canonical) or refused with
a ValueError naming it, which pyinfra turns into a failure of that node alone (FactProcessError).
"""

import json
import re
from pathlib import Path
from typing import TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

from . import canonical, proxies
from .jailstatus import check_result
from .layout import EVENTS_ACTION, EVENTS_FILES, EVENTS_SERVICE, EXPORTER, MARK, SHARE_FILES
from .layout import SHARE_SERVICE as SERVICE
from .products import ACCESS_FAILURE, ACCESS_FILTER, ACCESS_LOGS, BY_KEY, PRODUCTS, UNITS
from .proxies import PROXIES
from .scripts.nodelib import EXPECTED, KEY, NO_LOG, PEERS

SCRIPTS = Path(__file__).resolve().parent / "scripts"  # shell and Python scripts run on the nodes
NODELIB_IMPORT = re.compile(r"^from nodelib import (?:\([^)]*\)|[^\n]*)\n", re.M)


def bundled(name):
    """The text of node script NAME as one program for `python3 -c`: where it imports from
    nodelib (which only the daemons have installed beside them), nodelib's text goes first."""
    text = (SCRIPTS / name).read_text()
    if not NODELIB_IMPORT.search(text):
        return text
    return (SCRIPTS / "nodelib.py").read_text() + "\n" + NODELIB_IMPORT.sub("", text)


# Files the deploy manages. The jails are `.local` files in jail.d: fail2ban reads every
# jail.d/*.conf (the package's defaults-debian.conf among them) and jail.local before any
# jail.d/*.local, so our settings win over whatever the distribution ships or adds later,
# without editing a file the package owns. The guide's numbering is kept; each product's jail file
# is its own (products.py).
SSHD_JAIL = "/etc/fail2ban/jail.d/01_sshd.local"
RECIDIVE_JAIL = "/etc/fail2ban/jail.d/03_recidive.local"
# Where earlier releases of this deploy (and the guide) put the jails: removed when found.
EARLIER_JAILS = (
    "/etc/fail2ban/jail.d/01_sshd.conf",
    "/etc/fail2ban/jail.d/02_proxmox.conf",
    "/etc/fail2ban/jail.d/03_recidive.conf",
)
FILTER_DIR = "/etc/fail2ban/filter.d"
# Our filters, by file name. Where the fail2ban package ships one of the same name (fail2ban 1.1:
# proxmox.conf), ours goes beside it as .local, which fail2ban reads after it.
FILTERS = tuple(
    dict.fromkeys(
        [
            *(name for p in PRODUCTS for name in p.filters),
            *(f"{p.filter}.conf" for p in PROXIES),
            f"{ACCESS_FILTER}.conf",
        ]
    )
)
SHARE_ACTION = "/etc/fail2ban/action.d/pve-fail2ban-share.conf"  # cluster-wide bans
MANAGED = (
    SSHD_JAIL,
    RECIDIVE_JAIL,
    *(p.jail_file for p in PRODUCTS),
    *(p.jail_file for p in PROXIES),
    *(a.jail_file for a in ACCESS_LOGS),
    *(f"{FILTER_DIR}/{name.removesuffix('.conf')}{ext}" for name in FILTERS for ext in (".conf", ".local")),
    SHARE_ACTION,
    EVENTS_ACTION,
    NO_LOG,
    EXPECTED,
    *EARLIER_JAILS,
)  # fmt: skip
PACKAGES = ("fail2ban", "python3-systemd", "python3-pyinotify", "nftables", "iptables", EXPORTER)
LOGS = ("/var/log/auth.log", "/var/log/daemon.log")
# The units whose state the facts report, and the prefix of their keys (fail2ban_activestate, ...)
UNIT_PREFIXES = {
    "fail2ban.service": "fail2ban_",
    f"{SERVICE}.service": "share_",
    f"{EXPORTER}.service": "exporter_",
    f"{EVENTS_SERVICE}.service": "events_",
}
# The lines of each jail of ours that are login failures, and its filter: the check runs
# fail2ban-regex with that filter on them (fail2ban-regex takes a filter's name, not a jail's)
FAILURES = {
    "sshd": ["Failed password for|Invalid user", "sshd"],
    **{p.jail: [p.failure, p.filter] for p in (*PRODUCTS, *PROXIES)},
    **{a.jail: [ACCESS_FAILURE, ACCESS_FILTER] for a in ACCESS_LOGS},
}


def probe_config():
    """What scripts/probe.py `facts` looks at on a node."""
    return {
        "units": [*UNITS, *UNIT_PREFIXES, "rsyslog.service", *(p.unit for p in PROXIES)],
        "logs": [
            *LOGS,
            *(p.auth_log for p in PRODUCTS if p.auth_log),
            *(a.path for a in ACCESS_LOGS),
        ],
        "packages": list(PACKAGES),
        "filters": list(FILTERS),
        "files": [*MANAGED, *SHARE_FILES, *EVENTS_FILES],
        "changelogs": {p.key: p.changelog for p in PRODUCTS if p.changelog},
        "proxies": {p.key: {"unit": p.unit, "configs": list(p.configs)} for p in PROXIES},
        "access_defaults": {
            p.key: p.access.real_ip_defaults
            for p in PRODUCTS
            if p.access and p.access.real_ip_defaults
        },
        "share_key": f"{KEY}.pub",
        "share_peers": PEERS,
        "mark": MARK,
        "exporter_defaults": f"/etc/default/{EXPORTER}",
        # the check as read now: every jail that runs, the tool banaction auto would pick
        "check": {"tool": "auto", "jails": ["*"], "failures": FAILURES},
    }


MAX_BYTES = 4 << 20  # the longest answer of a node script: a few KB is usual; far more is no answer
DEFAULT_TIMEOUT = 120  # defaults.py fail2ban_node_timeout


def node_read(script, *args, absent, seconds=DEFAULT_TIMEOUT, flags=(), limit=MAX_BYTES):
    """`python3 FLAGS -c <script> ARGS`, bounded on the node: killed after `seconds` (and 5 more:
    pyinfra's own `_timeout` of the same `seconds` fails the node first, naming the bound), its
    output cut after `limit` + 1 bytes (more than any answer: the parser refuses it), so that a
    node whose python3 hangs or prints without end costs the controller neither a stalled run nor
    its memory. `absent`: what it prints where python3 is missing (a JSON text)."""
    return StringCommand(
        "{ if command -v python3 >/dev/null 2>&1; then timeout -k 5",
        str(int(seconds) + 5),
        "python3",
        *flags,
        "-c",
        QuoteString(bundled(script)),
        *args,
        "; else echo",
        QuoteString(absent),
        "; fi; } | head -c",
        str(limit + 1),
    )


def node_command(seconds=DEFAULT_TIMEOUT):
    """The facts' one command (scripts/probe.py `facts`), bounded (node_read)."""
    config = QuoteString(json.dumps(probe_config(), sort_keys=True))
    return node_read(
        "probe.py", "facts", config, absent='{"python3": false}', seconds=seconds, flags=("-S",)
    )


NODE_COMMAND = node_command()


class Unit(TypedDict):
    load: str  # LoadState: loaded, not-found, masked
    active: str  # ActiveState: active, inactive, failed, ...
    enabled: str  # UnitFileState: enabled, disabled, ...
    pid: int  # MainPID (0: none)


class Proxied(TypedDict):
    forwards: list  # the products' ports it sends requests to (8006, ...)
    listens: list  # the ports it listens on
    logs: list  # the access log files it writes that the jail can read ([]: the journal)
    why: str  # why its log cannot be read, or None


class Facts(TypedDict, total=False):
    """What the deploy adapts to (NodeFacts), every value parsed (parse_node)."""

    python3: bool  # False: nothing else was read (fail2ban needs python3 too)
    os_id: str  # "debian"
    os_like: str  # ID_LIKE, or None
    os_version: str  # "12"
    systemd: bool  # systemd is PID 1
    journal: bool  # journalctl exists
    logs: list  # classic log files that exist (LOGS and the products' auth logs)
    logs_written: list  # ... of LOGS, that an active rsyslog still writes
    journald_storage: str  # journald's effective Storage= (None: unset)
    journald_maxlevelstore: str  # ... and MaxLevelStore=, drop-ins included
    tools: list  # firewall commands found: "nft", "iptables"
    sshd_ports: list  # ["22"], from sshd -T
    sshd_maxauthtries: int
    sshd_loglevel: str  # "INFO"
    sshd_permitrootlogin: str  # "yes", "prohibit-password", ...
    client: str  # this controller, as the node sees it (SSH_CLIENT), canonical
    addresses: list  # the node's own global host addresses, canonical
    packages: dict  # {package of PACKAGES: version} installed
    packaged_filters: list  # our filter file names that the fail2ban package ships itself
    files: dict  # {path of MANAGED: (sha1, mode, owner)} present
    share_files: dict  # ... of layout.SHARE_FILES
    events_files: dict  # ... of layout.EVENTS_FILES
    units: dict  # {unit: Unit} of the products', ours, fail2ban's, node_exporter's, rsyslog's
    products: list  # the products it runs (a unit of theirs exists, not masked): ["pve", "pbs"]
    releases: dict  # {product key: {"version", "date"}} from its Debian changelog
    fail2ban_activestate: str  # and fail2ban_unitfilestate, fail2ban_mainpid, share_*, events_*,
    fail2ban_mainpid: int  # exporter_*: UNIT_PREFIXES's units, as `units` has them
    apt_lists_age: int  # seconds since the apt lists were refreshed (None: no lists)
    share_key: str  # this node's share public key "ssh-ed25519 base64", if made
    hostkeys: list  # its sshd host keys, "type base64"
    share_peers: list  # its peers.json's peers (canonical.peer_record), None when unreadable
    authorized: list  # our lines in root's authorized_keys (only compared, never used)
    textfile_dir: str  # node_exporter's, where its ARGS name one
    sendmail: bool  # an MTA's /usr/sbin/sendmail exists
    proxies: dict  # {proxy key: Proxied} of the reverse proxies that run here (proxies.py)
    real_ip: dict  # {product key: proxies.real_ip} of its web proxy (/etc/default/pveproxy)
    check: dict  # the check as read with the facts (jailstatus.check_result), None: not read


def _kind(doc, key, kind, default=None):
    """`doc[key]` when it is a `kind` (or `default` when it is not there); ValueError otherwise
    (null included: a key the probe always writes is never null)."""
    if key not in doc:
        return default
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        if value is None and default is None:
            return None  # a value the probe writes as null when it has none
        raise ValueError(f"the node reported {key}={canonical.shown(value)}: not a {kind.__name__}")
    return value


def _word(value, what):
    if value in (None, ""):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", value):
        raise ValueError(f"the node reported {what} {canonical.shown(value)}: not a plain word")
    return value


def _one(value, parse, what):
    if value in (None, ""):
        return None
    try:
        return parse(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"the node reported {what} {canonical.shown(value)}: {error}") from None


def _listed(doc, key, parse, what, limit=1024):
    values = _kind(doc, key, list, [])
    if len(values) > limit:
        raise ValueError(f"the node reported {len(values)} {what}: more than {limit}")
    out = []
    for value in values:
        try:
            out.append(parse(value))
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"the node reported {what} {canonical.shown(value)}: {error}"
            ) from None
    return out


def _files(doc):
    found = {"files": {}, "share_files": {}, "events_files": {}}
    for path, entry in _kind(doc, "files", dict, {}).items():
        key = (
            "files" if path in MANAGED else "share_files" if path in SHARE_FILES else "events_files"
        )
        if path not in (*MANAGED, *SHARE_FILES, *EVENTS_FILES) or not isinstance(entry, list):
            raise ValueError(
                f"the node reported a file {canonical.shown(path)} that is no file of ours"
            )
        sha1, mode, owner = (entry + ["", "", ""])[:3]
        if not (
            re.fullmatch(r"[0-9a-f]{40}", str(sha1)) and re.fullmatch(r"[0-7]{3,4}", str(mode))
        ):
            raise ValueError(f"the node reported for {path}: {canonical.shown(entry)}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}:[A-Za-z0-9_.-]{1,32}", str(owner)):
            raise ValueError(f"the node reported for {path}: owner {canonical.shown(owner)}")
        found[key][path] = (sha1, mode, owner)
    return found


def _units(doc):
    units = {}
    for name, state in _kind(doc, "units", dict, {}).items():
        if name not in probe_config()["units"] or not isinstance(state, dict):
            raise ValueError(
                f"the node reported a unit {canonical.shown(name)} it was not asked for"
            )
        units[name] = Unit(
            load=_word(state.get("load") or "", "a load state") if state.get("load") else "",
            active=_word(state.get("active"), "an active state") or "",
            enabled=_word(state.get("enabled"), "a unit file state") or "",
            pid=_kind(state, "pid", int, 0),
        )
    return units


def _runs(units, unit):
    """A unit exists on the node (its file is there, not masked)."""
    return units.get(unit, {}).get("load") not in (None, "", "not-found", "masked")


def _release(value):
    if not isinstance(value, dict):
        return None
    return {
        k: canonical.printable(value.get(k), 100) if value.get(k) else None
        for k in ("version", "date")
    }


def _peers(text):
    """The peers a node's peers.json lists (canonical.peer_record), or None when it is not JSON of
    ours (it is rewritten); ValueError when a record in it is forged."""
    try:
        peers = json.loads(text)["peers"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(peers, list):
        return None
    found = []
    for peer in peers[:1024]:  # a record that is none is left out: it names no peer
        try:
            found.append(canonical.peer_record(peer))
        except ValueError:
            continue
    return found


def parse_node(output):
    """The probe's JSON (its lines, or the text) -> Facts. Every value that leaves the node
    (addresses, ports, keys, peers, paths) is parsed into its canonical form (pvefail2ban.canonical);
    ValueError naming the value on anything else: then nothing the node said is used."""
    text = output if isinstance(output, str) else "\n".join(output)
    if len(text) > MAX_BYTES:
        raise ValueError(
            f"more than {MAX_BYTES} bytes (cut there on the node): far more than the probe prints"
        )
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError(f"not the probe's JSON: {canonical.shown(text, 200)}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"not the probe's JSON: {canonical.shown(text, 200)}")
    if doc.get("python3") is False:  # nothing else was read: every fact as on a bare node
        return Facts(_parse({}), python3=False)
    try:
        return _parse(doc)
    except (TypeError, AttributeError, KeyError) as error:  # a value of the wrong shape
        raise ValueError(f"not the probe's answer ({error!r})") from None


def _parse(doc):
    os_, sshd, journald = (_kind(doc, k, dict, {}) for k in ("os", "sshd", "journald"))
    units = _units(doc)
    facts = Facts(
        python3=True,
        os_id=_word(os_.get("id"), "an OS id"),
        os_like=canonical.printable(os_["like"], 100) if os_.get("like") else None,
        os_version=canonical.printable(os_["version"], 40) if os_.get("version") else None,
        systemd=_kind(doc, "systemd", bool, False),
        journal=_kind(doc, "journal", bool, False),
        logs=[log for log in _kind(doc, "logs", list, []) if log in probe_config()["logs"]],
        logs_written=[log for log in _kind(doc, "logs_written", list, []) if log in LOGS],
        journald_storage=_word(journald.get("storage"), "a journald Storage="),
        journald_maxlevelstore=_word(journald.get("maxlevelstore"), "a journald MaxLevelStore="),
        tools=[t for t in _kind(doc, "tools", list, []) if t in ("nft", "iptables")],
        sshd_ports=[str(p) for p in _listed(sshd, "ports", canonical.port, "sshd port", 64)],
        sshd_maxauthtries=_one(sshd.get("maxauthtries"), canonical.port, "sshd MaxAuthTries"),
        sshd_loglevel=(_word(sshd.get("loglevel"), "an sshd LogLevel") or "").upper() or None,
        sshd_permitrootlogin=_word(sshd.get("permitrootlogin"), "an sshd PermitRootLogin"),
        client=_one(doc.get("client"), canonical.canonical_address, "its client address"),
        addresses=_listed(doc, "addresses", canonical.host_address, "address", canonical.MAX_ADDRESSES),
        packages={
            name: canonical.printable(version, 64)
            for name, version in _kind(doc, "packages", dict, {}).items()
            if name in PACKAGES
        },
        packaged_filters=[
            name.rsplit("/", 1)[-1]
            for name in _kind(doc, "packaged_filters", list, [])
            if isinstance(name, str) and name.rsplit("/", 1)[-1] in FILTERS
        ],
        **_files(doc),
        units=units,
        products=[p.key for p in PRODUCTS if any(_runs(units, u) for u in p.units)],
        releases={
            key: _release(value)
            for key, value in _kind(doc, "releases", dict, {}).items()
            if key in {p.key for p in PRODUCTS}
        },
        apt_lists_age=_kind(doc, "apt_lists_age", int),
        share_key=_one(doc.get("share_key"), canonical.share_key, "its share key"),
        hostkeys=_listed(doc, "hostkeys", canonical.public_key, "host key", 16),
        share_peers=_peers(doc["share_peers"]) if isinstance(doc.get("share_peers"), str) else None,
        authorized=[line for line in _kind(doc, "authorized", list, []) if isinstance(line, str)],
        textfile_dir=_one(doc.get("textfile_dir"), canonical.safe_path, "a textfile directory"),
        sendmail=_kind(doc, "sendmail", bool, False),
        proxies=_proxies(doc),
        real_ip=_real_ip(doc),
        check=_check(doc.get("check")),
    )  # fmt: skip
    for unit, prefix in UNIT_PREFIXES.items():
        state = units.get(unit, Unit(load="", active="", enabled="", pid=0))
        facts[f"{prefix}activestate"] = state["active"]
        facts[f"{prefix}unitfilestate"] = state["enabled"]
        facts[f"{prefix}mainpid"] = state["pid"]
    return facts


def _proxies(doc):
    """{key: Proxied} of the proxies whose unit runs, from their configuration's text and
    `ss -Hltnp`'s lines (both parsed here, hostile: proxies.py)."""
    texts = _kind(doc, "proxies", dict, {})
    lines = [line for line in _kind(doc, "listening", list, []) if isinstance(line, str)]
    ports = proxies.listening(lines)
    found = {}
    for key, text in texts.items():
        proxy = proxies.BY_KEY.get(key)
        if proxy is None or not isinstance(text, str):
            raise ValueError(
                f"the node reported a proxy {canonical.shown(key)} it was not asked for"
            )
        if proxy.key == "nginx":
            logs, why = proxies.nginx_logs(text)
        elif proxy.key == "caddy":
            path, why = proxies.caddy_log(text)
            logs = [path] if path else []
        else:
            logs, why = [], None
        found[key] = Proxied(
            forwards=proxies.forwards(proxy, text),
            listens=ports.get(proxy.process, []),
            logs=logs,
            why=why,
        )
    return found


def _real_ip(doc):
    """{product key: proxies.real_ip} of the products whose web proxy settings the node reported."""
    found = {}
    for key, value in _kind(doc, "access_defaults", dict, {}).items():
        product = BY_KEY.get(key)
        if (
            product is None
            or not product.access
            or not isinstance(value, dict)
            or not all(isinstance(value.get(k), str) for k in ("header", "allow_from"))
            or not isinstance(value.get("text"), (str, type(None)))
        ):
            raise ValueError(f"the node reported web proxy settings of {canonical.shown(key)}")
        found[key] = {
            **proxies.real_ip(value["header"], value["allow_from"]),
            "text": value["text"],  # rewritten for fail2ban_trusted_proxies; None: not whole UTF-8
        }
    return found


def _check(doc):
    """The check as read with the facts; None where it could not be read (then it runs live)."""
    if doc is None:
        return None
    try:
        return check_result(doc)
    except (ValueError, TypeError, KeyError):
        return None


class NodeFacts(FactBase):
    """What the deploy adapts to: Facts (see there), from scripts/probe.py's JSON."""

    def command(self, seconds=DEFAULT_TIMEOUT):
        return node_command(seconds)

    def process(self, output):
        try:
            return parse_node(output)
        except Exception as error:  # noqa: BLE001 - whatever a node says fails that node alone
            raise FactProcessError(f"{error}; nothing it said was used") from error
