# tasks/install.py: install packages without letting their postinst start fail2ban on the package's
# default configuration (on Debian 12 it fails and loops in restarts, racing our own restart). The
# standard Debian way: a policy-rc.d that denies service starts, only for this install, only if the
# node has none of its own, removed whatever happens. The deploy starts fail2ban once configured.
#   apt-install.sh UPDATE(yes|no) LOCK_TIMEOUT PACKAGE...
update=$1 lock=$2; shift 2
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# pve-fail2ban: no service starts during its package install\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT INT TERM
fi
export DEBIAN_FRONTEND=noninteractive
if [ "$update" = yes ]; then
  apt-get -o DPkg::Lock::Timeout="$lock" update -q || exit 1
fi
apt-get -y -q -o DPkg::Lock::Timeout="$lock" -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  install --no-install-recommends "$@"
