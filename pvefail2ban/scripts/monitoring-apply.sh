#!/bin/sh
# Put a monitoring host's staged Prometheus and Alertmanager configuration live only if both accept
# it (promtool, amtool), then restart them. Run by the deploy (pvefail2ban/day2/monitoring.py).
#   monitoring-apply.sh STAGE PATH:MODE:OWNER...
set -u
stage=$1; shift
check=$(mktemp -d); trap 'rm -rf "$check"' EXIT
# Prometheus's configuration names its rules where they will be: test it with the staged ones
sed "s|/etc/prometheus/pve-fail2ban.rules.yml|$stage/etc/prometheus/pve-fail2ban.rules.yml|" \
  "$stage/etc/prometheus/prometheus.yml" > "$check/prometheus.yml"
if ! out=$(promtool check config "$check/prometheus.yml" 2>&1); then
  printf '%s\n' "$out" >&2
  echo "pve-fail2ban: Prometheus rejects the new configuration (promtool, above); nothing was changed." >&2
  exit 1
fi
if ! out=$(amtool check-config "$stage/etc/prometheus/alertmanager.yml" 2>&1); then
  printf '%s\n' "$out" >&2
  echo "pve-fail2ban: Alertmanager rejects the new configuration (amtool, above); nothing was changed." >&2
  exit 1
fi
for entry in "$@"; do
  path=${entry%%:*} rest=${entry#*:}; mode=${rest%%:*} owner=${rest#*:}
  install -m "$mode" -o "${owner%%:*}" -g "${owner#*:}" "$stage$path" "$path.pve-fail2ban-new" &&
    mv -f "$path.pve-fail2ban-new" "$path" || exit 1
  echo "updated $path"
done
systemctl restart prometheus prometheus-alertmanager
