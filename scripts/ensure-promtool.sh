#!/usr/bin/env bash
# promtool and amtool on the controller, for the alerts' unit tests: Debian's prometheus and
# prometheus-alertmanager packages unpacked into .tools/ (nothing installed system-wide, no service
# started). Prints promtool's path (amtool is beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/prometheus
if [ ! -x "$dest/usr/bin/promtool" ] || [ ! -x "$dest/usr/bin/amtool" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  packages="prometheus prometheus-alertmanager"
  # shellcheck disable=SC2086
  (cd "$tmp" && { apt-get download $packages >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download $packages >/dev/null; }; })
  mkdir -p "$dest"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
fi
echo "$PWD/$dest/usr/bin/promtool"
