"""Settings of the deploy, with their defaults (generated from pvefail2ban/defaults.py by
`python -m pvefail2ban.defaults > group_data/all.py`; do not edit the commented lines here).

The defaults come with the package: this file only documents them. To change one for every
node, uncomment its line and edit the value; per group use group_data/<group>.py, per node the
inventory's data, for one run `--data fail2ban_x=y`. Every value is checked before any node
changes: a bad one stops the run and names the key and the value."""

# --- sshd jail (the guide's 01_sshd) -------------------------------------------------------------
#   protect sshd; False = no sshd jail at all, not even the distribution's
# fail2ban_sshd_enabled = True
#   ports to ban on; None = sshd's own ports, read from `sshd -T`
# fail2ban_sshd_port = None
#   failures within findtime before a ban (guide: sshd's MaxAuthTries)
# fail2ban_sshd_maxretry = 3
#   ban length: seconds, fail2ban forms (10m, 1h, 1d, 1w) or -1 = forever
# fail2ban_sshd_bantime = '10m'

# --- proxmox jail (the guide's 02_proxmox) -------------------------------------------------------
#   protect the PVE web UI / API where PVE runs (pvedaemon)
# fail2ban_proxmox_enabled = True
#   ports to ban on (names or numbers; PVE: https, http, 8006)
# fail2ban_proxmox_port = ['https', 'http', 8006]
#   failed PVE logins within findtime before a ban
# fail2ban_proxmox_maxretry = 3
#   PVE ban length (seconds, fail2ban forms, or -1 = forever)
# fail2ban_proxmox_bantime = 600
#   also ban failed API tokens and tickets and spiceproxy's SPICE tickets, read from pveproxy's access log (jail pveproxy: its ports and 3128, its bantime)
# fail2ban_proxmox_access_log = True
#   401s there within findtime before a ban: more than a login's, as a browser whose ticket expired (a laptop waking up) sends one from each open tab
# fail2ban_proxmox_access_log_maxretry = 10

# --- pbs jail (Proxmox Backup Server: proxmox-backup-api / -proxy logins) ------------------------
#   protect the PBS web UI / API where PBS runs (proxmox-backup / proxmox-backup-proxy)
# fail2ban_pbs_enabled = True
#   ports to ban on (names or numbers; PBS: 8007)
# fail2ban_pbs_port = [8007]
#   failed PBS logins within findtime before a ban
# fail2ban_pbs_maxretry = 3
#   PBS ban length (seconds, fail2ban forms, or -1 = forever)
# fail2ban_pbs_bantime = 600

# --- pmg jail (Proxmox Mail Gateway: pmgdaemon logins) -------------------------------------------
#   protect the PMG web UI / API where PMG runs (pmgdaemon)
# fail2ban_pmg_enabled = True
#   ports to ban on (names or numbers; PMG: 8006)
# fail2ban_pmg_port = [8006]
#   failed PMG logins within findtime before a ban
# fail2ban_pmg_maxretry = 3
#   PMG ban length (seconds, fail2ban forms, or -1 = forever)
# fail2ban_pmg_bantime = 600
#   also ban failed API tokens and tickets, read from pmgproxy's access log (jail pmgproxy: its ports, its bantime)
# fail2ban_pmg_access_log = True
#   401s there within findtime before a ban: more than a login's, as a browser whose ticket expired (a laptop waking up) sends one from each open tab
# fail2ban_pmg_access_log_maxretry = 10

# --- pdm jail (Proxmox Datacenter Manager: proxmox-datacenter-(privileged-)api logins) -----------
#   protect the PDM web UI / API where PDM runs (proxmox-datacenter-api / proxmox-datacenter-privileged-api)
# fail2ban_pdm_enabled = True
#   ports to ban on (names or numbers; PDM: 8443)
# fail2ban_pdm_port = [8443]
#   failed PDM logins within findtime before a ban
# fail2ban_pdm_maxretry = 3
#   PDM ban length (seconds, fail2ban forms, or -1 = forever)
# fail2ban_pdm_bantime = 600

# --- every jail ----------------------------------------------------------------------------------
#   window in which maxretry failures count
# fail2ban_findtime = '10m'
#   auto (journal where the guide's log file is missing) | systemd | file
# fail2ban_backend = 'auto'
#   auto (nftables where `nft` exists, else iptables) | nftables | iptables
# fail2ban_banaction = 'auto'
#   extra addresses, CIDRs or host names never banned
# fail2ban_ignoreip = []
#   a reverse proxy on the node in front of a product's web UI: auto (a jail on the access log of each nginx, HAProxy or Caddy found forwarding to 8006/8007/8443) | nginx | haproxy | caddy (that one only) | off (none: such a node fails verify)
# fail2ban_web_proxy = 'auto'
#   reverse proxies on other hosts in front of the nodes' web UI (IP addresses or networks): never banned, and on PVE nodes pveproxy logs their clients' address from the X-Forwarded-For they set (PROXY_REAL_IP_*, PVE 8.3.4+), where the proxmox and pveproxy jails read it
# fail2ban_trusted_proxies = []
#   never ban loopback, this controller or any inventory node; False = off
# fail2ban_lockout_protection = True

# --- cluster-wide bans ---------------------------------------------------------------------------
#   a ban by any jail of ours on one node is made on every other node at once (needs 2+ nodes that share)
# fail2ban_cluster_bans = True
#   with cluster-wide bans, each failure our jails count on one node counts on every other node too: maxretry failures anywhere in the cluster within findtime ban (False: each node counts its own)
# fail2ban_cluster_failures = True

# --- metrics and notifications -------------------------------------------------------------------
#   Prometheus metrics through node_exporter's textfile collector: auto (where prometheus-node-exporter is installed) | on (install it too) | off
# fail2ban_metrics = 'auto'
#   mail each ban to this address or local user (root: on PVE, PVE's notification targets); empty = no mail
# fail2ban_notify_mail = ''
#   POST each ban to this http(s) URL (e.g. https://ntfy.sh/<topic>); empty = none
# fail2ban_notify_webhook = ''
#   the webhook's format: ntfy | gotify | json
# fail2ban_notify_webhook_format = 'ntfy'
#   the webhook's secret (ntfy/json: Authorization Bearer, Gotify: X-Gotify-Key), kept on the node in a root-only file; empty = none
# fail2ban_notify_webhook_token = ''
#   also notify when a ban ends or is lifted
# fail2ban_notify_unban = False
#   seconds between two detection canaries of each jail, where metrics are on (the alert Fail2banJailBlind fires after four missed)
# fail2ban_canary_interval = 300

# --- optional, off by default --------------------------------------------------------------------
#   ban repeat offenders (banned again and again) for longer
# fail2ban_recidive_enabled = False
#   recidive ban length
# fail2ban_recidive_bantime = '1w'
#   recidive window
# fail2ban_recidive_findtime = '1d'
#   bans within the window that make a repeat offender
# fail2ban_recidive_maxretry = 5
#   grow the ban time for each new ban of the same address
# fail2ban_bantime_increment = False

# --- how the deploy works on the node ------------------------------------------------------------
#   refresh the apt cache at most this often (seconds)
# fail2ban_apt_cache_time = 3600
#   wait this long (seconds) for an apt/dpkg lock held by others
# fail2ban_apt_lock_timeout = 120
#   wait this long (seconds) for fail2ban to answer after a (re)start
# fail2ban_ping_timeout = 30
#   a node that takes longer (seconds) to answer one read (facts, status, the check after fail2ban answers) fails alone; the others go on
# fail2ban_node_timeout = 120
