#!/bin/sh
# Read-only check of a node's fail2ban, every run (pvefail2ban.operations.verified parses this).
#   verify.sh PING_TIMEOUT BANACTION_TOOL IGNOREIP_CHECK_PY
# Every jail that runs is read, ours or not: one fail2ban-client process answers status and every
# jail's status (interactive mode).
timeout=$1 tool=$2 ignoreip_check=$3
i=0
until fail2ban-client ping >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt $((timeout * 4)) ]; then
    echo "ping=no"
    systemctl status --no-pager -n 5 fail2ban 2>&1 | sed 's/^/status: /'
    exit 0
  fi
  sleep 0.25
done
echo "ping=yes"
jails=$(fail2ban-client status 2>/dev/null | sed -n 's/.*Jail list:[[:space:]]*//p' | tr -d ',')
{ echo status; for jail in $jails; do echo "status $jail"; done; } | fail2ban-client -i 2>/dev/null
echo
case $tool in
  nft) nft list tables >/dev/null 2>&1 && echo "firewall=ok" || echo "firewall=$(nft list tables 2>&1 | head -1)" ;;
  iptables) iptables -w -n -L INPUT >/dev/null 2>&1 && echo "firewall=ok" || echo "firewall=$(iptables -w -n -L INPUT 2>&1 | head -1)" ;;
esac
if ! out=$(fail2ban-client -t 2>&1); then
  echo "config=broken"
  printf '%s\n' "$out" | grep -v "WARNING" | tail -n 5 | sed 's/^/config: /'
elif ! out=$(fail2ban-client -d 2>/dev/null | python3 -c "$ignoreip_check"); then
  echo "config=broken"
  printf '%s\n' "$out" | sed 's/^/config: /'
fi
