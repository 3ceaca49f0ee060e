"""Metrics and notifications: what each node needs so that its bans are seen without asking.
Pure: the node's settings and facts in, its events configuration and files out (the flow is
pvefail2ban.tasks.events; the node side is scripts/events.py).

- fail2ban's `pve-fail2ban-events` action (in each of our jails) appends every ban and unban, and
  every jail start and stop, to an outbox: it never waits;
- pve-fail2ban-events.service rewrites node_exporter's textfile (the metrics) and sends the
  notifications, asynchronously, folding a flood into few messages.
"""

import json
import shlex

# where its files live on the node (layout.py: the facts read them there too)
from .layout import EVENTS_DAEMON as DAEMON
from .layout import EVENTS_FILES, EXPORTER, PROM, TEXTFILE_DIR, daemon_unit  # noqa: F401
from .layout import EVENTS_LIB as LIB
from .layout import EVENTS_SERVICE as SERVICE
from .layout import EVENTS_STATE_DIR as STATE_DIR
from .layout import EVENTS_UNIT as UNIT
from .products import PRODUCTS
from .scripts.nodelib import CONFIG_DIR, EVENTS_CONFIG

CONFIG = EVENTS_CONFIG  # 0600: it may hold the webhook's token

UNIT_TEXT = daemon_unit(
    "metrics and notifications of this node's bans.",
    "metrics and notifications of this node's bans",
    DAEMON,
    "pve-fail2ban/events",
)


# The detection canary: where metrics are on, the events daemon writes one failure line per jail of
# ours every few minutes, where the jail's daemon writes, from this loopback address, which every
# jail ignores already (127.0.0.1/8 is in every ignoreip) and no client elsewhere can have (the
# kernel drops loopback sources that arrive on another interface): it exempts nobody from anything.
# fail2ban's `Ignore` of it proves the jail sees its daemon's lines. Its age per jail is a metric
# (alert Fail2banJailBlind).
CANARY_ADDRESS = "127.0.0.254"
CANARY_WHY = "detection canary of pve-fail2ban, never banned"
SSHD_CANARY = f"Invalid user pve-fail2ban-canary from {CANARY_ADDRESS} port 9"
# ... in a product web proxy's access log (pveproxy's format, after "<address> - - [<date>] "): a
# failed login for a product jail that reads it (behind fail2ban_trusted_proxies), a 401 of
# another request for the access-log jail (products.AccessLog)
ACCESS_CANARY = {
    "login": '"POST /api2/json/access/ticket HTTP/1.1" 401 50',
    "other": '"GET /api2/json/pve-fail2ban-canary HTTP/1.1" 401 -',
}


def canary_of(jails):
    """{jail: {ident, facility, priority, line, file}}: how the canary of each jail of ours
    (plan.Jail) is written: to syslog under its daemon's name (the journal, and rsyslog's files),
    and where the jail reads a product's own auth log, to that file too."""
    products = {p.jail: p for p in PRODUCTS}
    access_logs = {p.access.path for p in PRODUCTS if p.access}
    found = {}
    for jail in jails:
        if jail.logpath in access_logs:  # written to that file alone, as pveproxy does
            found[jail.name] = {
                "ident": None, "facility": "daemon", "priority": "err", "file": jail.logpath,
                "line": ACCESS_CANARY["login" if jail.name in products else "other"],
                "access": True,
            }  # fmt: skip
        elif jail.name == "sshd":
            found["sshd"] = {
                "ident": "sshd", "facility": "authpriv", "priority": "info", "line": SSHD_CANARY,
                "file": None,
            }  # fmt: skip
        elif jail.name in products:
            ident, line = products[jail.name].canary
            found[jail.name] = {
                "ident": ident, "facility": "daemon", "priority": "err",
                "line": line.format(address=CANARY_ADDRESS, why=CANARY_WHY),
                "file": jail.logpath if jail.logpath == products[jail.name].auth_log else None,
            }  # fmt: skip
    return found


def events_config(name, settings, facts, jails=()):
    """What node `name` does with its ban events, or None when nothing: {"node", "metrics": the
    textfile directory or None, "notify": {...} or None, "canary":
    canary_of(jails) where metrics are on, else None}. `settings`: validated; `facts`: Facts;
    `jails`: plan.Jail of each jail of ours that runs there."""
    metrics = None
    if settings["metrics"] == "on" or (
        settings["metrics"] == "auto" and EXPORTER in facts["packages"]
    ):
        metrics = facts.get("textfile_dir") or TEXTFILE_DIR
    notify = None
    if settings["notify_mail"] or settings["notify_webhook"]:
        notify = {
            "mail": settings["notify_mail"],
            "webhook": settings["notify_webhook"],
            "format": settings["notify_webhook_format"],
            "token": settings["notify_webhook_token"],
            "unban": settings["notify_unban"],
        }
    if metrics is None and notify is None:
        return None
    return {
        "node": name,
        "metrics": metrics,
        "notify": notify,
        "canary": {
            "address": CANARY_ADDRESS,
            "every": settings["canary_interval"],
            "jails": canary_of(jails),
        }
        if metrics
        else None,
    }


def events_files(config, scripts):
    """{path: (bytes, mode)} of the events daemon for `config` (events_config); `scripts`: the
    folder of the node scripts (pvefail2ban/scripts)."""
    return {
        CONFIG: (json.dumps(config, indent=1, sort_keys=True).encode() + b"\n", "600"),
        DAEMON: ((scripts / "events.py").read_bytes(), "755"),
        f"{LIB}/state.py": ((scripts / "state.py").read_bytes(), "644"),
        f"{LIB}/nodelib.py": ((scripts / "nodelib.py").read_bytes(), "644"),
        UNIT: (UNIT_TEXT.encode(), "644"),
    }


def removal(textfile_dir):
    """The shell command that takes the events daemon away (its prom file too)."""
    return (  # the textfile directory is one the node reported (facts.parse_node): quoted
        f"systemctl disable --now {SERVICE} 2>/dev/null; rm -f {UNIT}; systemctl daemon-reload; "
        f"rm -rf {LIB} {STATE_DIR} {CONFIG} {shlex.quote((textfile_dir or TEXTFILE_DIR) + '/' + PROM)}; "
        f"rmdir {CONFIG_DIR} 2>/dev/null; true"
    )
