#!/usr/bin/env bash
# Make sure a Docker engine answers. On a root Debian machine without one, install docker.io and
# debootstrap (the lab builds its base images from Debian's packages) and start dockerd ourselves.
# Anywhere else, say exactly what is missing. Bounded: gives up after ENSURE_DOCKER_TIMEOUT seconds.
set -euo pipefail
timeout_s=${ENSURE_DOCKER_TIMEOUT:-60}

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# Every lab node runs systemd as PID 1, and each systemd (with journald, udev, logind) takes several
# inotify instances from the one per-user limit of the host. Debian's default (128) lets about 25
# nodes boot; the lab goes to 30 (lab.config.MAX_NODES). Raise it for this boot only.
if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 1024)" -lt 1024 ]; then
  sysctl -q -w fs.inotify.max_user_instances=1024 && echo "ensure-docker: fs.inotify.max_user_instances = 1024 (lab nodes run systemd)" >&2
fi

if engine_answers && command -v debootstrap >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  engine_answers && exit 0
  echo "ensure-docker: no Docker engine answers ('docker info' failed)." >&2
  echo "  Install and start one (Debian: 'apt-get install docker.io debootstrap' as root," >&2
  echo "  then start dockerd), or run this script as root on Debian to have it done." >&2
  exit 1
fi

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
  echo "ensure-docker: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -q $missing >/dev/null
fi

if ! engine_answers; then
  echo "ensure-docker: starting dockerd (log: /var/log/dockerd.log)" >&2
  # The package's own service start is blocked in sandboxes like ours: start the daemon directly.
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  deadline=$((SECONDS + timeout_s))
  until engine_answers; do
    if [ $SECONDS -ge $deadline ]; then
      echo "ensure-docker: dockerd did not answer within ${timeout_s}s; last lines of /var/log/dockerd.log:" >&2
      tail -n 20 /var/log/dockerd.log >&2 || true
      exit 1
    fi
    sleep 1
  done
fi
docker info --format 'ensure-docker: engine {{.ServerVersion}} ({{.Driver}}) answers' >&2
