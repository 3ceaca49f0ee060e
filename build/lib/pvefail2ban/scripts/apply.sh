#!/bin/sh
# Put staged fail2ban files live only if fail2ban accepts the result. Uploaded and run by the
# deploy (pvefail2ban.operations.tested_files); removed again when it ends.
#   apply.sh STAGE PATH... [-- REMOVE_PATH...]
# Every PATH is staged at STAGE/PATH. A PATH the fail2ban package owns is never overwritten: the
# file goes beside it as .local, which fail2ban reads after the package's .conf.
set -u
stage=$1; shift
work=$(mktemp -d /tmp/pve-fail2ban.XXXXXX)
trap 'rm -rf "$work" "$stage"' EXIT

dest_of() {
  if dpkg-query -S "$1" >/dev/null 2>&1; then echo "${1%.conf}.local"; else echo "$1"; fi
}

cp -a /etc/fail2ban/. "$work/"
installs=""; removes=""; mode=install
for path in "$@"; do
  if [ "$path" = "--" ]; then mode=remove; continue; fi
  if [ "$mode" = install ]; then
    dest=$(dest_of "$path")
    installs="$installs $path:$dest"
    cp "$stage$path" "$work/${dest#/etc/fail2ban/}"
  else
    removes="$removes $path"
    rm -f "$work/${path#/etc/fail2ban/}"
  fi
done

# 1. The whole configuration, exactly as fail2ban will read it after the change.
if ! out=$(fail2ban-client -c "$work" -t 2>&1); then
  printf '%s\n' "$out" >&2
  echo "pve-fail2ban: fail2ban rejects the new configuration (fail2ban-client -t, above)." >&2
  echo "pve-fail2ban: nothing was changed: the node keeps its previous files, its running fail2ban and its bans." >&2
  exit 1
fi
# 1b. What -t lets through but kills fail2ban-server at start: malformed ignoreip entries.
if ! out=$(fail2ban-client -c "$work" -d 2>/dev/null | python3 "$stage/ignoreip_check.py"); then
  printf '%s\n' "$out" >&2
  echo "pve-fail2ban: nothing was changed: the node keeps its previous files, its running fail2ban and its bans." >&2
  exit 1
fi
# 2. The proxmox filter compiles and catches what pvedaemon writes (-t does not compile failregex).
if [ -e "$work/filter.d/proxmox.conf" ] || [ -e "$work/filter.d/proxmox.local" ]; then
  sample="$(date '+%b %d %H:%M:%S') $(hostname) pvedaemon[4242]: authentication failure; rhost=::ffff:192.0.2.1 user=root@pam msg=Authentication failure"
  out=$(fail2ban-regex -c "$work" "$sample" proxmox 2>&1)
  if ! printf '%s\n' "$out" | grep -q "^Lines: 1 lines, 0 ignored, 1 matched"; then
    printf '%s\n' "$out" >&2
    echo "pve-fail2ban: the proxmox filter does not catch a pvedaemon failure line (fail2ban-regex, above)." >&2
    echo "pve-fail2ban: nothing was changed: the node keeps its previous files, its running fail2ban and its bans." >&2
    exit 1
  fi
fi

# 3. Live: each file replaced in one rename, root:root 0644.
for pair in $installs; do
  dest=${pair#*:}
  install -o root -g root -m 0644 "$stage${pair%%:*}" "$dest.pve-fail2ban-new" && mv -f "$dest.pve-fail2ban-new" "$dest" || exit 1
  echo "updated $dest"
done
for path in $removes; do
  rm -f "$path" && echo "removed $path"
done
