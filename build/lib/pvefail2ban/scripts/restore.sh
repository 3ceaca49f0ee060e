# remove.py: fail2ban back on the distribution's own configuration, or stopped and disabled where
# that configuration cannot run (Debian 12 without /var/log/auth.log), never left failed.
systemctl restart fail2ban 2>/dev/null
i=0
until fail2ban-client ping >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 60 ] || systemctl is-failed -q fail2ban; then
    reason=$(journalctl -u fail2ban -n 20 --no-pager -o cat 2>/dev/null | grep -m1 -E 'ERROR|Failed' || true)
    systemctl stop fail2ban 2>/dev/null; systemctl disable -q fail2ban 2>/dev/null; systemctl reset-failed fail2ban 2>/dev/null
    echo "the distribution's own fail2ban configuration cannot run on this node${reason:+ ($reason)}:"
    echo "fail2ban is stopped and disabled, not left failed. Run deploy.py to protect this node again."
    exit 0
  fi
  sleep 0.25
done
echo "fail2ban runs on the distribution's own configuration: $(fail2ban-client status | sed -n 's/.*Jail list:[[:space:]]*/jails: /p')"
