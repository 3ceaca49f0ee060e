#!/bin/sh
# Put a monitoring host's staged Prometheus and Alertmanager configuration live, only if both
# accept it (promtool, amtool); then restart them. If either does not come back, the previous files
# are put back and both restarted again. On any failure the stage is removed, so the next run
# stages and applies again (it never passes for done). Run by pvefail2ban/day2/monitoring.py.
#   monitoring-apply.sh STAGE PATH:MODE:OWNER...
set -u
stage=$1; shift
fail() {
  printf 'pve-fail2ban: %s\n' "$1" >&2
  rm -rf "$stage"
  exit 1
}
check=$(mktemp -d); trap 'rm -rf "$check"' EXIT
# Prometheus's configuration names its rules where they will be: test it with the staged ones
sed "s|/etc/prometheus/pve-fail2ban.rules.yml|$stage/etc/prometheus/pve-fail2ban.rules.yml|" \
  "$stage/etc/prometheus/prometheus.yml" > "$check/prometheus.yml"
out=$(promtool check config "$check/prometheus.yml" 2>&1) ||
  fail "Prometheus rejects the new configuration, nothing was changed: $out"
out=$(amtool check-config "$stage/etc/prometheus/alertmanager.yml" 2>&1) ||
  fail "Alertmanager rejects the new configuration, nothing was changed: $out"
for entry in "$@"; do  # every new file beside the live one first
  path=${entry%%:*} rest=${entry#*:}; mode=${rest%%:*} owner=${rest#*:}
  install -m "$mode" -o "${owner%%:*}" -g "${owner#*:}" "$stage$path" "$path.pve-fail2ban-new" ||
    fail "cannot write $path.pve-fail2ban-new, nothing was changed"
done
for entry in "$@"; do  # the distribution's own file kept once; the live one kept for a way back
  path=${entry%%:*}
  if [ -f "$path" ] && ! [ -e "$path.dpkg-pve-fail2ban" ] && ! grep -q '^# Managed by pve-fail2ban' "$path"; then
    cp -p "$path" "$path.dpkg-pve-fail2ban"
  fi
  rm -f "$path.pve-fail2ban-old"
  if [ -e "$path" ]; then cp -p "$path" "$path.pve-fail2ban-old"; fi
done
for entry in "$@"; do
  path=${entry%%:*}
  mv -f "$path.pve-fail2ban-new" "$path"
  echo "updated $path"
done
if ! systemctl restart prometheus prometheus-alertmanager; then
  for entry in "$@"; do
    path=${entry%%:*}
    if [ -e "$path.pve-fail2ban-old" ]; then mv -f "$path.pve-fail2ban-old" "$path"; else rm -f "$path"; fi
  done
  systemctl restart prometheus prometheus-alertmanager
  fail "Prometheus or Alertmanager did not start on the new configuration: the previous one is back (journalctl -u prometheus -u prometheus-alertmanager)"
fi
for entry in "$@"; do rm -f "${entry%%:*}.pve-fail2ban-old"; done
