# tasks/pveproxy.py: put /etc/default/pveproxy as fail2ban_trusted_proxies wants it (the new text
# is uploaded to $1 first) and restart pveproxy once on it. If pveproxy does not come back, the
# previous file is put back and pveproxy restarted on it: the web UI is never left down.
# HEADER and ALLOW: what bash must read from the new file, as pveproxy does ("-": not checked, when
# our lines are only removed); a file that sets them otherwise after ours (readonly, return, ...)
# is not put live.
#   pveproxy-real-ip.sh NEW HEADER ALLOW
set -u
new=$1; header=$2; allow=$3; file=/etc/default/pveproxy; old=$file.pve-fail2ban-old
if [ "$header" != "-" ]; then
  read_back=$(bash -c '. "$1" >/dev/null 2>&1 </dev/null; printf "%s|%s" "${PROXY_REAL_IP_HEADER-}" "${PROXY_REAL_IP_ALLOW_FROM-}"' bash "$new")
  if [ "$read_back" != "$header|$allow" ]; then
    echo "pve-fail2ban: /etc/default/pveproxy would give PROXY_REAL_IP_HEADER|ALLOW_FROM = '$read_back', not '$header|$allow': something in the file sets them otherwise after the deploy's lines; nothing was changed" >&2
    rm -f "$new"; exit 1
  fi
fi
if [ -e "$file" ]; then cp -p "$file" "$old" || exit 1; else rm -f "$old"; fi
chmod 0644 "$new" && chown root:root "$new" && mv -f "$new" "$file" || exit 1
up() {  # pveproxy restarted and answering on 8006 within 20 s
  systemctl restart pveproxy.service || return 1
  for _ in $(seq 80); do
    if systemctl is-active --quiet pveproxy.service && ss -Hltn 'sport = :8006' | grep -q .; then
      return 0
    fi
    sleep 0.25
  done
  return 1
}
if up; then rm -f "$old"; exit 0; fi
echo "pve-fail2ban: pveproxy did not come back with the new /etc/default/pveproxy:" >&2
journalctl -u pveproxy.service -n 5 --no-pager >&2 2>/dev/null
if [ -e "$old" ]; then mv -f "$old" "$file"; else rm -f "$file"; fi
up || echo "pve-fail2ban: pveproxy does not start with the previous file either" >&2
echo "pve-fail2ban: the previous /etc/default/pveproxy is back; nothing else was changed." >&2
exit 1
