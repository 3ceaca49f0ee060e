"""The custom pyinfra facts: NodeFacts reads everything the deploy needs from a node in one command,
Fail2banState what the day-2 operations need. One SSH command each.

The parsing is plain functions (parse_node, day2.parse_state), unit-tested without a node. Output the parser does
not understand raises FactProcessError, which pyinfra turns into a failure of that node alone.
"""

import json
import re
import shlex
from pathlib import Path

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

from . import reported
from .cluster_bans import KEY, MARK, PEERS, SERVICE, SHARE_FILES
from .day2 import parse_state
from .events import ACTION as EVENTS_ACTION
from .events import EVENTS_FILES, EXPORTER
from .events import SERVICE as EVENTS_SERVICE

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
# without editing a file the package owns. The guide's numbering is kept.
SSHD_JAIL = "/etc/fail2ban/jail.d/01_sshd.local"
PROXMOX_JAIL = "/etc/fail2ban/jail.d/02_proxmox.local"
RECIDIVE_JAIL = "/etc/fail2ban/jail.d/03_recidive.local"
PBS_JAIL = "/etc/fail2ban/jail.d/04_pbs.local"  # Proxmox Backup Server, where it runs
PMG_JAIL = "/etc/fail2ban/jail.d/05_pmg.local"  # Proxmox Mail Gateway, where it runs
# Where earlier releases of this deploy (and the guide) put the jails: removed when found.
EARLIER_JAILS = (
    "/etc/fail2ban/jail.d/01_sshd.conf",
    "/etc/fail2ban/jail.d/02_proxmox.conf",
    "/etc/fail2ban/jail.d/03_recidive.conf",
)
FILTER = "/etc/fail2ban/filter.d/proxmox.conf"
FILTER_LOCAL = "/etc/fail2ban/filter.d/proxmox.local"  # when the package ships its own proxmox.conf
PBS_FILTER = "/etc/fail2ban/filter.d/pbs.conf"
PMG_FILTER = "/etc/fail2ban/filter.d/pmg.conf"
SHARE_ACTION = (
    "/etc/fail2ban/action.d/pve-fail2ban-share.conf"  # cluster-wide bans (cluster_bans.py)
)
MANAGED = (
    SSHD_JAIL,
    PROXMOX_JAIL,
    RECIDIVE_JAIL,
    PBS_JAIL,
    PMG_JAIL,
    FILTER,
    FILTER_LOCAL,
    PBS_FILTER,
    PMG_FILTER,
    SHARE_ACTION,
    EVENTS_ACTION,
    *EARLIER_JAILS,
)
PACKAGES = ("fail2ban", "python3-systemd", "python3-pyinotify", "nftables", "iptables", EXPORTER)
LOGS = ("/var/log/auth.log", "/var/log/daemon.log")
# The Proxmox products a node runs, known by their systemd units (a unit file that exists and is not
# masked): {unit: product}. PBS runs two daemons; either one is enough to tell.
PRODUCT_UNITS = {
    "pvedaemon.service": "pve",
    "proxmox-backup.service": "pbs",
    "proxmox-backup-proxy.service": "pbs",
    "pmgdaemon.service": "pmg",
}
PBS_AUTH_LOG = "/var/log/proxmox-backup/api/auth.log"  # PBS writes every login failure here too
PBS_CHANGELOG = "/usr/share/doc/proxmox-backup-server/changelog.Debian.gz"
# The units whose state the fact reports, and the prefix of their keys (fail2ban_ActiveState=...).
UNIT_PREFIXES = {
    "fail2ban.service": "fail2ban_",
    f"{SERVICE}.service": "share_",
    f"{EXPORTER}.service": "exporter_",
    f"{EVENTS_SERVICE}.service": "events_",
    "rsyslog.service": "rsyslog_",
}

NODE_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os_id=$ID"; echo "os_like=$ID_LIKE"; echo "os_version=$VERSION_ID"
test -d /run/systemd/system && echo systemd=yes
command -v journalctl >/dev/null && echo journal=yes
for f in {logs}; do test -f "$f" && echo "log=$f"; done
# Every unit we look at, in one systemctl call (each call is a process and a question to PID 1):
# the Proxmox products' units (unit=NAME where its file exists and is not masked), and the state of
# fail2ban, our daemons, node_exporter and rsyslog (fail2ban_ActiveState=..., share_..., ...).
units=$(systemctl show -p Id -p LoadState -p ActiveState -p MainPID -p UnitFileState \
  {units} {unit_states} 2>/dev/null | awk -v RS= -F '\n' -v prefixes='{prefixes}' '
  BEGIN {{ n = split(prefixes, p, " "); for (i = 1; i < n; i += 2) prefix[p[i]] = p[i + 1] }}
  {{ id = ""; load = ""
    for (i = 1; i <= NF; i++) {{ if ($i ~ /^Id=/) id = substr($i, 4); if ($i ~ /^LoadState=/) load = substr($i, 11) }}
    if (id in prefix) {{ for (i = 1; i <= NF; i++) if ($i !~ /^(Id|LoadState)=/) print prefix[id] $i }}
    else if (load != "" && load != "not-found" && load != "masked") print "unit=" id }}')
echo "$units"
# rsyslog must still write the file a jail would read (a removed rule leaves a stale file behind)
case $units in *rsyslog_ActiveState=active*)
  for f in {logs}; do
    grep -qsE "^[^#]*[[:space:]]-?$f([[:space:]]|$)" /etc/rsyslog.conf /etc/rsyslog.d/*.conf && echo "log_written=$f"
  done ;;
esac
# journald's effective settings, drop-ins included (the last assignment wins)
systemd-analyze cat-config systemd/journald.conf 2>/dev/null | sed -n 's/^[[:space:]]*\(Storage\|MaxLevelStore\)=[[:space:]]*/journald_\1=/p'
# PBS's own auth log and its release (version, date)
test -f {pbs_log} && echo "pbs_authlog=yes"
test -r {pbs_changelog} && zcat {pbs_changelog} 2>/dev/null | sed -n '1s/^[^ ]* (\([^)]*\)).*/pbs_version=\1/p; /^ -- /{{s/^ -- .*>  */pbs_date=/p;q}}'
for t in nft iptables; do command -v "$t" >/dev/null 2>&1 && echo "tool=$t"; done
sshd -T 2>/dev/null | sed -nE 's/^(port|maxauthtries|loglevel|permitrootlogin) /sshd_&/Ip'
echo "client=${{SSH_CLIENT%% *}}"
ip -o addr show scope global 2>/dev/null | awk '{{sub(/\/.*/, "", $4); print "addr=" $4}}'
dpkg-query -W -f='pkg=${{Package}} ${{db:Status-Abbrev}} ${{Version}}\n' {packages} 2>/dev/null
# fail2ban's own proxmox.conf, if a release ships one (its file list; dpkg-query -S reads every package's)
grep -qsx {filter} /var/lib/dpkg/info/fail2ban.list && echo "filter_owner=fail2ban"
# the files we manage: sha1, mode and owner of those present, in three processes for all of them
set --
for f in {managed} {share_files} {events_files}; do test -f "$f" && set -- "$@" "$f"; done
[ $# -eq 0 ] || {{ sha1sum "$@"; stat -c '@ %n %a %U:%G' "$@"; }} 2>/dev/null | awk -v share=' {share_files} ' -v events=' {events_files} ' '
  $1 != "@" {{ sum[$2] = $1; next }}
  {{ key = index(share, " " $2 " ") ? "share_file" : index(events, " " $2 " ") ? "events_file" : "file"
    print key "=" $2 " " sum[$2] " " $3 " " $4 }}'
# cluster-wide bans: this node's share key, its host keys, its peers, our authorized_keys lines
set --
for f in {key}.pub /etc/ssh/ssh_host_*_key.pub; do test -r "$f" && set -- "$@" "$f"; done
[ $# -eq 0 ] || awk -v key={key}.pub '{{ print (FILENAME == key ? "share_key=" : "hostkey=") $1 " " $2 }}' "$@"
test -r {peers} && echo "share_peers=$(tr -d '\n' < {peers})"
sed -n '/{mark}/s/^/authorized=/p' /root/.ssh/authorized_keys 2>/dev/null
# metrics and notifications: node_exporter's textfile directory (from its ARGS), an MTA
sed -n 's/^[^#]*--collector\.textfile\.directory[= ]["'"'"']\{{0,1\}}\([^"'"'"' ]*\).*/textfile_dir=\1/p' /etc/default/{exporter} 2>/dev/null
test -x /usr/sbin/sendmail && echo "sendmail=yes"
# the apt lists' age: the newest of their last refresh and apt's periodic stamp; none at all: ancient
set -- /var/lib/apt/lists/*_Packages
test -e "$1" && stat -c 'apt_mtime=%Y' /var/lib/apt/lists/partial /var/lib/apt/periodic/update-success-stamp 2>/dev/null
echo "now=$(date +%s)"
""".format(
    logs=" ".join(LOGS),
    units=" ".join(PRODUCT_UNITS),
    pbs_log=PBS_AUTH_LOG,
    pbs_changelog=PBS_CHANGELOG,
    packages=" ".join(PACKAGES),
    filter=FILTER,
    managed=" ".join(MANAGED),
    key=KEY,
    peers=PEERS,
    share_files=" ".join(SHARE_FILES),
    mark=MARK,
    exporter=EXPORTER,
    events_files=" ".join(EVENTS_FILES),
    unit_states=" ".join(UNIT_PREFIXES),
    prefixes=" ".join(f"{unit} {prefix}" for unit, prefix in UNIT_PREFIXES.items()),
)
# What the check would say, read with the facts (scripts/verify.py `read`: waits for nothing, tests
# nothing, writes nothing). Where the run then changes nothing, this is the check (operations.verified).
VERIFY_MARK = "@verify"
NODE_COMMAND = (
    NODE_SCRIPT
    + f"echo {VERIFY_MARK}\n"
    + "command -v python3 >/dev/null && python3 -S -c "
    + shlex.quote(bundled("verify.py"))
    + " read 0 auto - - '*' || true\n"  # no python3 yet, or no answer: the check runs live
)


MAX_LINES = 20_000  # a node's answer is about 100 lines; far more is no answer of this script
FILE_OWNER = re.compile(r"[a-z_][a-z0-9_-]{0,31}:[a-z_][a-z0-9_-]{0,31}")
PACKAGE_VERSION = re.compile(r"[A-Za-z0-9.+~:-]{1,64}")
WORD = re.compile(
    r"[A-Za-z0-9_.+-]{1,64}"
)  # a state, a level, an OS id as systemd and sshd say them
UNIT_STATES = {
    f"{prefix}{key}".lower()
    for prefix in UNIT_PREFIXES.values()
    if prefix != "rsyslog_"  # only the script itself asks whether rsyslog runs
    for key in ("ActiveState", "UnitFileState", "MainPID")
}


def _word(value):
    if not WORD.fullmatch(value):
        raise ValueError(f"{reported.shown(value)} is not a plain word")
    return value


def _sshd(node, key, value):
    """`sshd -T` lines (after our sshd_ prefix): `sshd_port 22`, `sshd_maxauthtries 6`, ..."""
    key = key.lower()
    if key == "sshd_port":
        node["sshd_ports"].append(str(reported.port(value)))
    elif key == "sshd_maxauthtries":
        node["sshd_maxauthtries"] = reported.port(value)  # a count in the same range will do
    elif key == "sshd_loglevel":
        node["sshd_loglevel"] = _word(value).upper()
    elif key == "sshd_permitrootlogin":
        node["sshd_permitrootlogin"] = _word(value)


def _file(node, key, value):
    path, sha1, mode, owner = value.split()  # ValueError when the line is not 4 fields
    known = {"file": MANAGED, "share_file": SHARE_FILES, "events_file": EVENTS_FILES}[key]
    if path not in known or not re.fullmatch(r"[0-9a-f]{40}", sha1):
        raise ValueError(f"{reported.shown(value)} is no file of ours")
    if not re.fullmatch(r"[0-7]{3,4}", mode) or not FILE_OWNER.fullmatch(owner):
        raise ValueError(f"{reported.shown(value)}: bad mode or owner")
    node["files" if key == "file" else f"{key}s"][path] = (sha1, mode, owner)


def _package(node, value):
    name, status, version = (value.split() + ["", "", ""])[:3]
    if name in PACKAGES and status == "ii" and PACKAGE_VERSION.fullmatch(version):
        node["packages"][name] = version


def _peers(text):
    """The peers a node's peers.json lists (reported.peer_record), or None when it is not JSON of
    ours (it is rewritten); ValueError when a record in it is forged."""
    try:
        peers = json.loads(text)["peers"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(peers, list):
        return None
    return [reported.peer_record(peer) for peer in peers]


def parse_node(lines):
    """key=value lines of NODE_SCRIPT -> the dict NodeFacts returns (see there). Every value that
    leaves the node (addresses, ports, keys, peers, paths) is parsed into its canonical form
    (pvefail2ban.reported); ValueError naming the value on anything else: then nothing the node
    said is used."""
    node = {
        "logs": [],
        "tools": [],
        "packages": {},
        "files": {},
        "sshd_ports": [],
        "systemd": False,
        "journal": False,
        "filter_owner": None,
        "apt_lists_age": None,
        "sshd_maxauthtries": None,
        "client": None,
        "os_like": None,
        "os_version": None,
        "logs_written": [],
        "addresses": [],
        "sshd_loglevel": None,
        "journald_storage": None,
        "journald_maxlevelstore": None,
        "sshd_permitrootlogin": None,
        "share_key": None,
        "hostkeys": [],
        "share_peers": None,
        "share_files": {},
        "authorized": [],
        "products": [],
        "pbs_authlog": False,
        "pbs_version": None,
        "pbs_date": None,
        "textfile_dir": None,
        "sendmail": False,
        "events_files": {},
        "verify": None,  # what `verify.py read` said (None: not run, e.g. no python3 yet)
    }
    # the apt lists' last refresh and apt's periodic stamp; the node's clock
    apt_mtimes, now = [], None
    lines = list(lines)
    if len(lines) > MAX_LINES:
        raise ValueError(f"{len(lines)} lines: far more than the facts script prints")
    if VERIFY_MARK in lines:  # what follows is verify.py's, kept as it is said
        lines, verify = lines[: lines.index(VERIFY_MARK)], lines[lines.index(VERIFY_MARK) + 1 :]
        node["verify"] = "\n".join(verify)
    for line in lines:
        # `sshd -T` prints "port 22" and "maxauthtries 6" (after our sshd_ prefix)
        sshd = line.strip().lower().startswith("sshd_")
        key, _, value = line.strip().partition(" " if sshd else "=")
        try:
            if sshd:
                _sshd(node, key, value.strip())
            elif _:
                _fact(node, key, value, apt_mtimes)
        except ValueError as error:
            said = f"{key}{' ' if sshd else '='}{reported.shown(value)}"
            raise ValueError(
                f"the node reported {said}: {error}; nothing it said was used"
            ) from None
        if key == "now" and value.isdigit():
            now = int(value)
    if "os_id" not in node:  # the script's first line is always os_id=...: this is not its output
        raise ValueError(f"no os_id line in {reported.shown(' | '.join(lines), 200)}")
    if len(node["addresses"]) > reported.MAX_ADDRESSES:
        raise ValueError(
            f"{len(node['addresses'])} global addresses: more than {reported.MAX_ADDRESSES}"
        )
    node["fail2ban_mainpid"] = int(node.get("fail2ban_mainpid") or 0)
    if now is not None:  # the newest of them counts; no lists at all: as good as ancient
        node["apt_lists_age"] = now - max(apt_mtimes or [0])
    return node


def _fact(node, key, value, apt_mtimes):
    """One key=value line of NODE_SCRIPT into `node`; ValueError when its value is forged."""
    if key in ("systemd", "journal", "pbs_authlog", "sendmail"):
        node[key] = value == "yes"
    elif key == "log" and value in LOGS:
        node["logs"].append(value)
    elif key == "log_written" and value in LOGS:
        node["logs_written"].append(value)
    elif key == "addr":
        node["addresses"].append(reported.host_address(value))
    elif key == "client":
        node["client"] = reported.canonical_address(value) if value else None
    elif key == "unit" and value in PRODUCT_UNITS:
        if PRODUCT_UNITS[value] not in node["products"]:
            node["products"].append(PRODUCT_UNITS[value])
    elif key in ("pbs_version", "pbs_date", "os_like", "os_version"):
        node[key] = reported.printable(value.strip(), 100) or None  # only shown, never used
    elif key in ("os_id", "filter_owner"):
        node[key] = _word(value) if value else None
    elif key in ("journald_Storage", "journald_MaxLevelStore"):
        node[key.lower()] = _word(value.strip().lower())  # the last one read wins, as in journald
    elif key == "tool" and value in ("nft", "iptables"):
        node["tools"].append(value)
    elif key == "pkg":
        _package(node, value)
    elif key in ("file", "share_file", "events_file"):
        _file(node, key, value)
    elif key == "textfile_dir":
        node["textfile_dir"] = reported.safe_path(value.strip()) if value.strip() else None
    elif key == "share_key":
        node["share_key"] = reported.public_key(value.strip(), ("ssh-ed25519",))
    elif key == "hostkey":
        node["hostkeys"].append(reported.public_key(value.strip()))
    elif key == "authorized":
        node["authorized"].append(value)  # only compared with the lines we want
    elif key == "share_peers":
        node["share_peers"] = _peers(value)
    elif key.lower() in UNIT_STATES:
        node[key.lower()] = _word(value) if value else ""
    elif key == "apt_mtime" and value.isdigit():
        apt_mtimes.append(int(value))


class NodeFacts(FactBase):
    """What the deploy adapts to, as a dict::

    {
        "os_id": "debian", "os_like": None, "os_version": "12",
        "systemd": True, "journal": True,           # systemd is PID 1; journalctl exists
        "logs": ["/var/log/auth.log"],              # classic log files that exist
        "logs_written": ["/var/log/auth.log"],      # ... that an active rsyslog still writes
        "journald_storage": None,                   # journald's effective Storage= (None: unset)
        "journald_maxlevelstore": "warning",        # ... and MaxLevelStore=, drop-ins included
        "tools": ["nft", "iptables"],               # firewall commands found
        "sshd_ports": ["22"], "sshd_maxauthtries": 6, "sshd_loglevel": "INFO",
        "client": "192.0.2.1",                      # this controller, as the node sees it
        "addresses": ["192.0.2.11", "2001:db8::11"],  # the node's own global addresses
        "packages": {"fail2ban": "1.0.2-2"},        # installed, of PACKAGES
        "filter_owner": None,                       # package owning filter.d/proxmox.conf
        "files": {path: (sha1, "644", "root:root")},  # our MANAGED files present
        "fail2ban_activestate": "active", "fail2ban_mainpid": 321,
        "fail2ban_unitfilestate": "enabled",
        "apt_lists_age": 120,                       # seconds since apt lists were refreshed
        "sshd_permitrootlogin": "yes",
        "products": ["pve", "pbs"],                # by their units (PRODUCT_UNITS)
        "pbs_authlog": True,                        # PBS_AUTH_LOG exists
        "pbs_version": "3.2.4-1",                   # from PBS's Debian changelog, if installed
        "pbs_date": "Mon, 27 May 2024 15:01:02 +0200",  # ... and that release's date
        # cluster-wide bans (cluster_bans.py):
        "share_key": "ssh-ed25519 AAAA...",         # this node's share public key, if made
        "hostkeys": ["ssh-ed25519 AAAA..."],        # its sshd host keys
        "share_peers": [{"name": ..., "address": ..., "port": 22, "hostkeys": [...]}],
        "share_files": {path: (sha1, "600", "root:root")},  # cluster_bans.SHARE_FILES present
        "authorized": ["restrict,... pve-fail2ban-share@pve2"],  # our authorized_keys lines
        "share_activestate": "active", "share_unitfilestate": "enabled",
        # metrics and notifications (events.py):
        "textfile_dir": None,                       # node_exporter's, where its ARGS name one
        "exporter_activestate": "active",           # prometheus-node-exporter, if installed
        "sendmail": True,                           # an MTA's /usr/sbin/sendmail exists
        "events_files": {path: (sha1, "600", "root:root")},  # events.EVENTS_FILES present
        "events_activestate": "active", "events_unitfilestate": "enabled",
        # the check, as read with the facts (scripts/verify.py `read`; None without python3):
        "verify": "tool=nft\nping=yes\nFail2Ban v1.0.2\nfail2ban> Status ...",
    }
    """

    def command(self):
        return NODE_COMMAND

    def process(self, output):
        try:
            return parse_node(output)
        except ValueError as error:
            raise FactProcessError(f"unexpected output from the node: {error}") from error


# fail2ban's state, read by python3 on the node (fail2ban needs python3; without it, fail2ban is
# not installed and the node says so in the same JSON shape).
STATE_COMMAND = StringCommand(
    "if command -v python3 >/dev/null 2>&1; then python3 -c",
    QuoteString(bundled("state.py")),
    """; else echo '{"running": false, "active": "not installed", "jails": {}, "events": []}'; fi""",
)


class Fail2banState(FactBase):
    """fail2ban as it runs on the node, read-only: the JSON that scripts/state.py prints there,
    checked by day2.parse_state::

    {
        "running": True,          # fail2ban-server answers ping on its socket
        "active": None,           # `systemctl is-active fail2ban` when it does not answer
        "jails": {"sshd": {"failed": 0, "total_failed": 3, "banned": 1, "total_banned": 1,
                           "banned_ips": ["192.0.2.7"], "journal_matches": "...", "file_list": None,
                           "ignoreip": ["127.0.0.1/8"], "firewall": ["192.0.2.7"],
                           "not_enforced": [],
                           "from": {"192.0.2.7": "pve2"}}},  # bans received from that peer
        "shares": True,           # this node shares bans (cluster-wide bans)
        "events": ["2026-11-24 23:01:54,344 ... [sshd] Ban 192.0.2.7"],  # last Ban/Unban lines
    }
    """

    def command(self):
        return STATE_COMMAND

    def process(self, output):
        try:
            return parse_state("\n".join(output))
        except (ValueError, KeyError, TypeError) as error:
            raise FactProcessError(f"unexpected output from the node: {error}") from error
