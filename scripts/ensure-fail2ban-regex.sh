#!/usr/bin/env bash
# fail2ban-regex on the controller, for the filter's unit tests: Debian's fail2ban package unpacked
# into .tools/ (nothing installed system-wide, no service started). Prints the path of a wrapper
# that runs it with its own Python modules.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/fail2ban
if [ ! -x "$dest/usr/bin/fail2ban-regex" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && { apt-get download fail2ban >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download fail2ban >/dev/null; }; })
  mkdir -p "$dest" && dpkg-deb -x "$tmp"/fail2ban_*.deb "$dest"
fi
wrapper=.tools/bin/fail2ban-regex
if [ ! -x "$wrapper" ]; then
  mkdir -p .tools/bin
  printf '#!/bin/sh\nPYTHONPATH="%s" exec python3 "%s" "$@"\n' \
    "$PWD/$dest/usr/lib/python3/dist-packages" "$PWD/$dest/usr/bin/fail2ban-regex" > "$wrapper"
  chmod 0755 "$wrapper"
fi
echo "$PWD/$wrapper"
