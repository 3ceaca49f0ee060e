#!/bin/sh
# Put staged fail2ban files live only if fail2ban accepts the result. Uploaded and run by the
# deploy (pvefail2ban.operations.tested_files); removed again when it ends.
#   apply.sh STAGE PATH... [-- REMOVE_PATH...] [--logs LOG...]
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
  if [ "$path" = "--logs" ]; then mode=logs; continue; fi
  if [ "$mode" = logs ]; then
    # a log a proxy writes, not made yet: made empty, as its own folder's owner (0600)
    dir=${path%/*}
    if [ ! -e "$path" ] && [ -d "$dir" ] && [ ! -L "$dir" ]; then
      install -m 0600 -o "$(stat -c %U "$dir")" -g "$(stat -c %G "$dir")" /dev/null "$path"
    fi
    continue
  fi
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
if ! out=$(fail2ban-client -c "$work" -d 2>/dev/null | python3 -S "$stage/probe.py" ignoreip); then
  printf '%s\n' "$out" >&2
  echo "pve-fail2ban: nothing was changed: the node keeps its previous files, its running fail2ban and its bans." >&2
  exit 1
fi
# 2. Each filter of ours compiles and catches what its daemon writes (-t does not compile
# failregex): the lines of $stage/selftest/<filter> (products.py), as the journal shows them and,
# for products with an auth log of their own, as that log has them.
for sample in "$stage"/selftest/*; do
  [ -e "$sample" ] || continue
  filter=${sample##*/}
  [ -e "$work/filter.d/$filter.conf" ] || [ -e "$work/filter.d/$filter.local" ] || continue
  count=$(wc -l < "$sample")
  out=$(fail2ban-regex -c "$work" "$sample" "$filter" 2>&1)
  if ! printf '%s\n' "$out" | grep -q "^Lines: $count lines, 0 ignored, $count matched"; then
    printf '%s\n' "$out" >&2
    echo "pve-fail2ban: the $filter filter does not catch its daemon's failure line (fail2ban-regex, above)." >&2
    echo "pve-fail2ban: nothing was changed: the node keeps its previous files, its running fail2ban and its bans." >&2
    exit 1
  fi
done

# 3. Live: each file replaced in one rename, root:root 0644.
for pair in $installs; do
  dest=${pair#*:}
  install -o root -g root -m 0644 "$stage${pair%%:*}" "$dest.pve-fail2ban-new" && mv -f "$dest.pve-fail2ban-new" "$dest" || exit 1
  echo "updated $dest"
done
for path in $removes; do
  rm -f "$path" && echo "removed $path"
done
