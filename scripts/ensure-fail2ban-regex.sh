#!/usr/bin/env bash
# fail2ban-regex on the controller, for the filter's unit tests: Debian's fail2ban package unpacked
# into .tools/ (nothing installed system-wide, no service started). Prints the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/fail2ban
if [ ! -x "$dest/usr/bin/fail2ban-regex" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && { apt-get download fail2ban >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download fail2ban >/dev/null; }; })
  mkdir -p "$dest" && dpkg-deb -x "$tmp"/fail2ban_*.deb "$dest"
fi
echo "$PWD/$dest/usr/bin/fail2ban-regex"
