"""Where each feature's files, units and actions live on a node, and the unit of our daemons. The parsing of
what a node says (facts.py) reads them from here, not from the features (share.py,
events.py), which take them from here too. The node scripts' own paths are nodelib's."""

from .scripts.nodelib import EVENTS_CONFIG, EVENTS_STATE, KNOWN_HOSTS, PEERS, SHARE_STATE

# ---- cluster-wide bans (share.py; on the node scripts/share.py and scripts/receive.py) --------
SHARE_LIB = "/usr/local/lib/pve-fail2ban"
SHARE_DAEMON = f"{SHARE_LIB}/share.py"
SHARE_RECEIVER = f"{SHARE_LIB}/receive.py"
SHARE_NODELIB = f"{SHARE_LIB}/nodelib.py"  # what the share daemon shares with the events daemon
PEERS_BAN = (
    f"{SHARE_LIB}/peers_ban.py"  # the recidive jail's ignorecommand: a peer's ban is not ours
)
SHARE_UNIT = "/etc/systemd/system/pve-fail2ban-share.service"
SHARE_SERVICE = "pve-fail2ban-share"
SHARE_STATE_DIR = SHARE_STATE  # outbox, queue, what was received
SHARE_ACTION = "/etc/fail2ban/action.d/pve-fail2ban-share.conf"
SHARE_FILES = (
    PEERS,
    KNOWN_HOSTS,
    SHARE_DAEMON,
    SHARE_RECEIVER,
    SHARE_NODELIB,
    PEERS_BAN,
    SHARE_UNIT,
)  # outside /etc/fail2ban
MARK = "pve-fail2ban-share@"  # the comment that makes an authorized_keys line ours

# ---- metrics and notifications (events.py; on the node scripts/events.py) --------------------
EVENTS_LIB = "/usr/local/lib/pve-fail2ban-events"
EVENTS_DAEMON = f"{EVENTS_LIB}/events.py"
EVENTS_UNIT = "/etc/systemd/system/pve-fail2ban-events.service"
EVENTS_SERVICE = "pve-fail2ban-events"
EVENTS_STATE_DIR = EVENTS_STATE  # the outbox
EVENTS_ACTION = "/etc/fail2ban/action.d/pve-fail2ban-events.conf"
PROM = "pve-fail2ban.prom"  # in the textfile directory
EXPORTER = "prometheus-node-exporter"  # Debian's node_exporter package and unit
# node_exporter's textfile directory on Debian, unless its ARGS name another
# (/etc/default/prometheus-node-exporter; read by NodeFacts as textfile_dir)
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
EVENTS_FILES = (
    EVENTS_CONFIG,
    EVENTS_DAEMON,
    f"{EVENTS_LIB}/state.py",
    f"{EVENTS_LIB}/nodelib.py",
    EVENTS_UNIT,
)


def daemon_unit(managed, description, daemon, state_dir):
    """The systemd unit of one of our node daemons: `daemon` run by python3, restarted when it
    ends, its state in /var/lib/`state_dir` (root only), files it makes root only."""
    return f"""# Managed by pve-fail2ban (pyinfra deploy): {managed}
[Unit]
Description=pve-fail2ban: {description}
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/python3 {daemon}
Restart=always
RestartSec=2
StateDirectory={state_dir}
StateDirectoryMode=0700
UMask=0077

[Install]
WantedBy=multi-user.target
"""
