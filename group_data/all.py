"""Every setting of the deploy, once, with its default. Override per group (group_data/<group>.py)
or per host (inventory data); `pyinfra ... --data fail2ban_x=y` overrides for one run.
Checked before anything changes on any node: a bad value stops the run and names key and value."""

# --- sshd jail (the guide's /etc/fail2ban/jail.d/01_sshd.conf) ---------------------------------
fail2ban_sshd_enabled = True          # protect sshd
fail2ban_sshd_port = None             # ports to ban on; None = sshd's own ports, read from `sshd -T`
fail2ban_sshd_maxretry = 3            # failures within findtime before a ban (guide: sshd's MaxAuthTries)
fail2ban_sshd_bantime = "10m"         # ban length: seconds, fail2ban forms (10m, 1h, 1d, 1w) or -1 = forever

# --- proxmox jail (the guide's /etc/fail2ban/jail.d/02_proxmox.conf) ---------------------------
fail2ban_proxmox_enabled = True                  # protect the PVE web UI / API (pvedaemon)
fail2ban_proxmox_port = ["https", "http", 8006]  # ports to ban on
fail2ban_proxmox_maxretry = 3                    # failed web logins within findtime before a ban
fail2ban_proxmox_bantime = 600                   # ban length (guide: 600 s)

# --- both jails --------------------------------------------------------------------------------
fail2ban_findtime = "10m"             # window in which maxretry failures count
fail2ban_backend = "auto"             # auto (journal where the guide's log file is missing) | systemd | file
fail2ban_banaction = "auto"           # auto (nftables where `nft` exists, else iptables) | nftables | iptables
fail2ban_ignoreip = []                # extra addresses, CIDRs or host names never banned
fail2ban_lockout_protection = True    # never ban loopback, this controller or any inventory node; False = off

# --- optional, off by default ------------------------------------------------------------------
fail2ban_recidive_enabled = False     # ban repeat offenders (banned again and again) for longer
fail2ban_recidive_bantime = "1w"      # recidive ban length
fail2ban_recidive_findtime = "1d"     # recidive window
fail2ban_recidive_maxretry = 5        # bans within the window that make a repeat offender
fail2ban_bantime_increment = False    # grow the ban time for each new ban of the same address

# --- how the deploy works on the node -----------------------------------------------------------
fail2ban_apt_cache_time = 3600        # refresh the apt cache at most this often (seconds)
fail2ban_apt_lock_timeout = 120       # wait this long (seconds) for an apt/dpkg lock held by others
fail2ban_ping_timeout = 30            # wait this long (seconds) for fail2ban to answer after a (re)start
