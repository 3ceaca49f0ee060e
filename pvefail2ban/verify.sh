#!/bin/sh
# Read-only check of a node's fail2ban, every run (pvefail2ban.operations.verified parses this).
#   verify.sh PING_TIMEOUT BANACTION_TOOL JAIL...
timeout=$1 tool=$2; shift 2
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
echo "version=$(fail2ban-client version 2>/dev/null)"
fail2ban-client status 2>&1 | sed -n 's/.*Jail list:[[:space:]]*/jails=/p'
for jail in "$@"; do
  echo "jail=$jail"
  fail2ban-client status "$jail" 2>&1
done
case $tool in
  nft) nft list tables >/dev/null 2>&1 && echo "firewall=ok" || echo "firewall=$(nft list tables 2>&1 | head -1)" ;;
  iptables) iptables -w -n -L INPUT >/dev/null 2>&1 && echo "firewall=ok" || echo "firewall=$(iptables -w -n -L INPUT 2>&1 | head -1)" ;;
esac
if ! out=$(fail2ban-client -t 2>&1); then
  echo "config=broken"
  printf '%s\n' "$out" | tail -n 5 | sed 's/^/config: /'
fi
