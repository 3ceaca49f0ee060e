"""Check every fail2ban_* setting before any node is touched; return them normalised."""

import ipaddress
import re
import socket
import urllib.parse

from .canonical import canonical_network
from .canonical import shown as shown_value
from .defaults import DEFAULTS
from .products import PRODUCTS
from .scripts.nodelib import token_exposed

DEFAULTS_MODULE = "pvefail2ban/defaults.py"

TIME_UNITS = r"(?:s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hour|hours|d|day|days|w|week|weeks|mo|month|months|y|year|years)"
TIME_RE = re.compile(rf"^\s*(?:\d+(?:\.\d+)?\s*{TIME_UNITS}?\s*)+$", re.IGNORECASE)
SERVICE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$"
)
BACKENDS = ("auto", "systemd", "file")
BANACTIONS = ("auto", "nftables", "iptables")
WEB_PROXIES = ("auto", "off", "nginx", "haproxy", "caddy")  # proxies.PROXIES
METRICS = ("auto", "on", "off")
WEBHOOK_FORMATS = ("ntfy", "gotify", "json")
# A mail recipient: a local user (root) or an address; nothing that could end a mail header.
MAIL_RE = re.compile(r"[A-Za-z0-9._%+-]{1,64}(?:@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*)?")
TOKEN_RE = re.compile(r"[\x21-\x7e]{1,512}")  # printable, no space: it goes into an HTTP header


class SettingsError(ValueError):
    """One or more bad settings; the message names each key and value."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_bool(value):
    if not isinstance(value, bool):
        return "must be True or False"


def check_count(value, minimum=1):
    if not _is_int(value) or value < minimum:
        return f"must be a whole number >= {minimum}"


def check_time(value, forever_allowed=False):
    """fail2ban time: seconds (> 0), fail2ban's forms like '10m' or '1h 30m', or -1 (forever)."""
    if forever_allowed and value in (-1, "-1"):
        return None
    if _is_int(value):
        return (
            None
            if value > 0
            else "must be a positive time" + (" or -1 (forever)" if forever_allowed else "")
        )
    if isinstance(value, str) and TIME_RE.match(value) and re.search(r"[1-9]", value):
        return None
    return "must be seconds (> 0) or a fail2ban time like 10m, 1h, 1d" + (
        " or -1 (forever)" if forever_allowed else ""
    )


# Service names resolved here, on the controller, so no node depends on its /etc/services: a node
# without it (seen on a bare Debian 11) cannot resolve `https` and its firewall rules then fail to
# load at jail start, while fail2ban still runs and "bans". These are the ones the settings name by
# default (IANA numbers); any other name is resolved with this machine's services database.
WELL_KNOWN_PORTS = {"ssh": 22, "http": 80, "https": 443}


def port_number(name):
    """A service name -> its TCP port; ValueError when neither the table nor this machine knows it."""
    if name in WELL_KNOWN_PORTS:
        return WELL_KNOWN_PORTS[name]
    try:
        return socket.getservbyname(name, "tcp")
    except OSError:
        raise ValueError(
            f"{name!r} is not a service name this controller knows: give its port number"
        ) from None


def normalise_ports(value):
    """['https', 8006] or 'https,8006' -> ['443', '8006']: numbers only, names resolved here (see
    port_number); raises ValueError naming the bad entry."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError("must be a non-empty list of ports (1-65535) or service names")
    ports = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if _is_int(text) or (isinstance(text, str) and text.isdigit()):
            if not 1 <= int(text) <= 65535:
                raise ValueError(f"port {item!r} is outside 1-65535")
            ports.append(str(int(text)))
        elif isinstance(text, str) and SERVICE_RE.match(text):
            ports.append(str(port_number(text)))
        else:
            raise ValueError(f"{item!r} is neither a port (1-65535) nor a service name")
    return ports


def check_address(entry):
    """An ignoreip entry: an IP address, a CIDR (canonical.canonical_network: no scope ID) or a
    host name."""
    return canonical_entry(entry) is not None


def canonical_entry(entry):
    """An ignoreip entry in its canonical form (addresses and networks as `ipaddress` writes them,
    a host name as given), or None when it is none of them."""
    if not isinstance(entry, str) or not entry.strip():
        return None
    try:
        return canonical_network(entry.strip())
    except ValueError:
        pass
    if "/" in entry or re.fullmatch(r"[\d.]+", entry.strip()):
        return None  # a broken CIDR or dotted quad is not a host name
    return entry.strip() if HOSTNAME_RE.match(entry.strip()) else None


def normalise_addresses(value):
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("must be a list of addresses, CIDRs or host names")
    out = []
    for item in items:
        if canonical_entry(item) is None:
            raise ValueError(f"{shown_value(item)} is not an IP address, CIDR or host name")
        out.append(canonical_entry(item))
    return out


def normalise_proxies(value):
    """fail2ban_trusted_proxies: IP addresses or networks (pveproxy's PROXY_REAL_IP_ALLOW_FROM
    takes no host names), canonical, at most 64."""
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or len(items) > 64:
        raise ValueError("must be a list of at most 64 IP addresses or networks")
    out = []
    for item in items:
        try:
            if "%" in item:
                raise ValueError("a scope")
            network = ipaddress.ip_network(item.strip(), strict=True)
            mapped = getattr(network.network_address, "ipv4_mapped", None)
            if mapped and network.num_addresses == 1:
                network = ipaddress.ip_network(mapped)
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                f"{shown_value(item)} is not an IP address or network (a.b.c.d, a.b.c.0/24, "
                "2001:db8::/64; no host name: pveproxy's PROXY_REAL_IP_ALLOW_FROM takes none)"
            ) from None
        mapped_net = network.version == 6 and network.subnet_of(
            ipaddress.ip_network("::ffff:0:0/96")
        )
        if (
            network.prefixlen < (8 if network.version == 4 else 32)
            or network.network_address.is_unspecified
            or (mapped_net and network.num_addresses > 1)  # IPv4 networks go as IPv4
        ):
            raise ValueError(
                f"{shown_value(item)} is far too wide for proxies (every client could then choose "
                "the address pveproxy logs): name the proxies' own addresses or their subnet"
            )
        if network.num_addresses == 1:
            out.append(str(network.network_address))
        else:
            out.append(str(network))
    return list(dict.fromkeys(out))


def check_mail(value):
    if value == "":
        return None
    if not isinstance(value, str) or not MAIL_RE.fullmatch(value):
        return "must be a mail address (admin@example.com), a local user (root) or empty"


def check_webhook(value):
    """An http(s) URL with a host, no credentials in it (they go in the token setting)."""
    if value == "":
        return None
    if not isinstance(value, str) or any(
        c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value
    ):
        return "must be an http(s) URL without spaces, or empty"
    try:
        url = urllib.parse.urlsplit(value)
        url.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        return f"is not a URL ({error})"
    if url.scheme not in ("http", "https") or not url.hostname:
        return "must be an http:// or https:// URL with a host, or empty"
    if url.username or url.password:
        return "must not hold credentials: put the secret in fail2ban_notify_webhook_token"
    return None


def check_token(value):
    """The webhook's secret; its value is never repeated in an error."""
    if value == "":
        return None
    if not isinstance(value, str) or not TOKEN_RE.fullmatch(value):
        return "must be printable text without spaces (1-512 characters), or empty"


def _choice(options):
    def check(value):
        if value not in options:
            return f"must be one of {', '.join(options)}"

    return check


# key: check returning an error text (or None). Ports and addresses are normalised separately.
CHECKS = {
    "fail2ban_sshd_enabled": check_bool,
    "fail2ban_sshd_maxretry": check_count,
    "fail2ban_sshd_bantime": lambda v: check_time(v, forever_allowed=True),
    "fail2ban_findtime": check_time,
    "fail2ban_backend": _choice(BACKENDS),
    "fail2ban_banaction": _choice(BANACTIONS),
    "fail2ban_web_proxy": _choice(WEB_PROXIES),
    "fail2ban_lockout_protection": check_bool,
    "fail2ban_cluster_bans": check_bool,
    "fail2ban_cluster_failures": check_bool,
    "fail2ban_metrics": _choice(METRICS),
    "fail2ban_notify_mail": check_mail,
    "fail2ban_notify_webhook": check_webhook,
    "fail2ban_notify_webhook_format": _choice(WEBHOOK_FORMATS),
    "fail2ban_notify_webhook_token": check_token,
    "fail2ban_notify_unban": check_bool,
    "fail2ban_canary_interval": lambda v: check_count(v, minimum=10),
    "fail2ban_recidive_enabled": check_bool,
    "fail2ban_recidive_bantime": lambda v: check_time(v, forever_allowed=True),
    "fail2ban_recidive_findtime": check_time,
    "fail2ban_recidive_maxretry": check_count,
    "fail2ban_bantime_increment": check_bool,
    "fail2ban_apt_cache_time": lambda v: check_count(v, minimum=0),
    "fail2ban_apt_lock_timeout": lambda v: check_count(v, minimum=0),
    "fail2ban_ping_timeout": check_count,
    "fail2ban_node_timeout": check_count,
    **{
        f"fail2ban_{product.jail}_{name}": check
        for product in PRODUCTS
        for name, check in (
            ("enabled", check_bool),
            ("maxretry", check_count),
            ("bantime", lambda v: check_time(v, forever_allowed=True)),
        )
    },
    **{f"fail2ban_{product.jail}_access_log": check_bool for product in PRODUCTS if product.access},
    **{
        f"fail2ban_{product.jail}_access_log_maxretry": check_count
        for product in PRODUCTS
        if product.access
    },
}
FAIL2BAN_TIMES = {
    "fail2ban_sshd_bantime",
    *(f"fail2ban_{product.jail}_bantime" for product in PRODUCTS),
    "fail2ban_findtime",
    "fail2ban_recidive_bantime",
    "fail2ban_recidive_findtime",
}  # written as text into jails
SECRETS = {"fail2ban_notify_webhook_token"}  # never shown, not even in an error
PORT_KEYS = ("fail2ban_sshd_port", *(f"fail2ban_{product.jail}_port" for product in PRODUCTS))
KNOWN = set(CHECKS) | set(PORT_KEYS) | {"fail2ban_ignoreip", "fail2ban_trusted_proxies"}
assert KNOWN == set(DEFAULTS), "every setting has a default and a check"


def shown(key, value):
    """`value` as an error may show it: never a secret, never a password inside a URL."""
    if key in SECRETS:
        return "(the value is not shown: it is a secret)"
    if isinstance(value, str) and "@" in value and "://" in value:
        scheme, _, rest = value.partition("://")
        value = f"{scheme}://...@{rest.rpartition('@')[2]}"
    return repr(value)


def validate(data):
    """`data`: a mapping of settings (host.data as a dict). Returns {key without prefix: value}."""
    errors, out = [], {}
    for key in sorted(k for k in data if k.startswith("fail2ban_") and k not in KNOWN):
        errors.append(f"{key}: unknown setting (a typo? settings are listed in {DEFAULTS_MODULE})")
    for key, check in CHECKS.items():
        if key not in data:
            errors.append(f"{key}: missing (it is defined in {DEFAULTS_MODULE})")
            continue
        problem = check(data[key])
        if problem:
            errors.append(f"{key} = {shown(key, data[key])}: {problem}")
        else:
            out[key[len("fail2ban_") :]] = str(data[key]) if key in FAIL2BAN_TIMES else data[key]
    for key in PORT_KEYS:
        value = data.get(key)
        if value is None and key == "fail2ban_sshd_port":
            out["sshd_port"] = None
            continue
        try:
            out[key[len("fail2ban_") :]] = normalise_ports(value)
        except ValueError as error:
            errors.append(f"{key} = {value!r}: {error}")
    try:
        out["trusted_proxies"] = normalise_proxies(data.get("fail2ban_trusted_proxies", []))
    except ValueError as error:
        errors.append(
            f"fail2ban_trusted_proxies = {shown_value(data.get('fail2ban_trusted_proxies'))}: {error}"
        )
    try:
        out["ignoreip"] = normalise_addresses(data.get("fail2ban_ignoreip", []))
    except ValueError as error:
        errors.append(f"fail2ban_ignoreip = {data.get('fail2ban_ignoreip')!r}: {error}")
    exposed = token_exposed(out.get("notify_webhook", ""), out.get("notify_webhook_token"))
    if exposed:
        errors.append(
            "fail2ban_notify_webhook_token is set but fail2ban_notify_webhook is no https:// URL: "
            f"{exposed}; use https:// (http:// only to a loopback address)"
        )
    if errors:
        raise SettingsError(
            "bad settings, nothing was changed on any node:\n  " + "\n  ".join(errors)
        )
    return out
