"""Every setting of the deploy, once: its default and what it means.

`DEFAULTS` is what `deploy_fail2ban()` passes to pyinfra as `data_defaults`, so a user's group
data, host data and `--data` override it. `group_data/all.py` of this repository is generated from
this list (`python -m pvefail2ban.defaults > group_data/all.py`) as commented lines, so it documents
the settings without a second copy of their values; a unit test keeps the two in step.
"""

from .products import PRODUCTS, settings_section

# (section, [(key, default, meaning), ...]), in the order the settings are documented.
SECTIONS = [
    (
        "sshd jail (the guide's 01_sshd)",
        [
            (
                "fail2ban_sshd_enabled",
                True,
                "protect sshd; False = no sshd jail at all, not even the distribution's",
            ),
            (
                "fail2ban_sshd_port",
                None,
                "ports to ban on; None = sshd's own ports, read from `sshd -T`",
            ),
            (
                "fail2ban_sshd_maxretry",
                3,
                "failures within findtime before a ban (guide: sshd's MaxAuthTries)",
            ),
            (
                "fail2ban_sshd_bantime",
                "10m",
                "ban length: seconds, fail2ban forms (10m, 1h, 1d, 1w) or -1 = forever",
            ),
        ],
    ),
    # one section per Proxmox product (products.py)
    *(settings_section(product) for product in PRODUCTS),
    (
        "every jail",
        [
            ("fail2ban_findtime", "10m", "window in which maxretry failures count"),
            (
                "fail2ban_backend",
                "auto",
                "auto (journal where the guide's log file is missing) | systemd | file",
            ),
            (
                "fail2ban_banaction",
                "auto",
                "auto (nftables where `nft` exists, else iptables) | nftables | iptables",
            ),
            ("fail2ban_ignoreip", [], "extra addresses, CIDRs or host names never banned"),
            (
                "fail2ban_web_proxy",
                "auto",
                "a reverse proxy on the node in front of a product's web UI: auto (a jail on the "
                "access log of each nginx, HAProxy or Caddy found forwarding to 8006/8007/8443) | "
                "nginx | haproxy | caddy (that one only) | off (none: such a node fails verify)",
            ),
            (
                "fail2ban_trusted_proxies",
                [],
                "reverse proxies on other hosts in front of the nodes' web UI (IP addresses or "
                "networks): never banned, and on PVE nodes pveproxy logs their clients' address "
                "from the X-Forwarded-For they set (PROXY_REAL_IP_*, PVE 8.3.4+), where the "
                "proxmox and pveproxy jails read it",
            ),
            (
                "fail2ban_lockout_protection",
                True,
                "never ban loopback, this controller or any inventory node; False = off",
            ),
        ],
    ),
    (
        "cluster-wide bans",
        [
            (
                "fail2ban_cluster_bans",
                True,
                "a ban by any jail of ours on one node is made on every other node at once "
                "(needs 2+ nodes that share)",
            ),
            (
                "fail2ban_cluster_failures",
                True,
                "with cluster-wide bans, each failure our jails count on one node counts on every "
                "other node too: maxretry failures anywhere in the cluster within findtime ban "
                "(False: each node counts its own)",
            ),
        ],
    ),
    (
        "metrics and notifications",
        [
            (
                "fail2ban_metrics",
                "auto",
                "Prometheus metrics through node_exporter's textfile collector: auto (where "
                "prometheus-node-exporter is installed) | on (install it too) | off",
            ),
            (
                "fail2ban_notify_mail",
                "",
                "mail each ban to this address or local user (root: on PVE, PVE's notification "
                "targets); empty = no mail",
            ),
            (
                "fail2ban_notify_webhook",
                "",
                "POST each ban to this http(s) URL (e.g. https://ntfy.sh/<topic>); empty = none",
            ),
            (
                "fail2ban_notify_webhook_format",
                "ntfy",
                "the webhook's format: ntfy | gotify | json",
            ),
            (
                "fail2ban_notify_webhook_token",
                "",
                "the webhook's secret (ntfy/json: Authorization Bearer, Gotify: X-Gotify-Key), "
                "kept on the node in a root-only file; empty = none",
            ),
            ("fail2ban_notify_unban", False, "also notify when a ban ends or is lifted"),
            (
                "fail2ban_canary_interval",
                300,
                "seconds between two detection canaries of each jail, where metrics are on (the "
                "alert Fail2banJailBlind fires after four missed)",
            ),
        ],
    ),
    (
        "optional, off by default",
        [
            (
                "fail2ban_recidive_enabled",
                False,
                "ban repeat offenders (banned again and again) for longer",
            ),
            ("fail2ban_recidive_bantime", "1w", "recidive ban length"),
            ("fail2ban_recidive_findtime", "1d", "recidive window"),
            ("fail2ban_recidive_maxretry", 5, "bans within the window that make a repeat offender"),
            (
                "fail2ban_bantime_increment",
                False,
                "grow the ban time for each new ban of the same address",
            ),
        ],
    ),
    (
        "how the deploy works on the node",
        [
            ("fail2ban_apt_cache_time", 3600, "refresh the apt cache at most this often (seconds)"),
            (
                "fail2ban_apt_lock_timeout",
                120,
                "wait this long (seconds) for an apt/dpkg lock held by others",
            ),
            (
                "fail2ban_ping_timeout",
                30,
                "wait this long (seconds) for fail2ban to answer after a (re)start",
            ),
            (
                "fail2ban_node_timeout",
                120,
                "a node that takes longer (seconds) to answer one read (facts, status, the check"
                " after fail2ban answers) fails alone; the others go on",
            ),
        ],
    ),
]

DEFAULTS = {key: default for _, settings in SECTIONS for key, default, _ in settings}


def group_data_text():
    """The text of group_data/all.py: every setting as a commented line with its default."""
    lines = [
        '"""Settings of the deploy, with their defaults (generated from pvefail2ban/defaults.py by',
        "`python -m pvefail2ban.defaults > group_data/all.py`; do not edit the commented lines here).",
        "",
        "The defaults come with the package: this file only documents them. To change one for every",
        "node, uncomment its line and edit the value; per group use group_data/<group>.py, per node the",
        "inventory's data, for one run `--data fail2ban_x=y`. Every value is checked before any node",
        'changes: a bad one stops the run and names the key and the value."""',
    ]
    for title, settings in SECTIONS:
        lines += ["", f"# --- {title} ".ljust(99, "-")]
        for key, default, meaning in settings:
            lines += [f"#   {meaning}", f"# {key} = {default!r}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(group_data_text(), end="")
