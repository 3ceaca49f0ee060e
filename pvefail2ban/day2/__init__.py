"""The day-2 operations, cluster-wide: their plain logic (model: reading a node's fail2ban state,
judging it, planning bans) and the packaged deploys that run them (deploys: status_fail2ban,
ban_fail2ban, unban_fail2ban, sync_fail2ban, remove_fail2ban)."""
