#!/usr/bin/env bash
# promtool on the controller, for the alert rules' unit tests: Debian's prometheus package unpacked
# into .tools/ (nothing installed system-wide, no service started). Prints promtool's path.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/prometheus
if [ ! -x "$dest/usr/bin/promtool" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download prometheus >/dev/null; }; })
  mkdir -p "$dest" && dpkg-deb -x "$tmp"/prometheus_*.deb "$dest"
fi
echo "$PWD/$dest/usr/bin/promtool"
