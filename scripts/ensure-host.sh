#!/usr/bin/env bash
# Make sure a Docker engine answers.
# Uses a running engine if there is one; on Debian as root with none, installs Debian's engine and starts it.
set -euo pipefail

need_apt=()
docker_ok() { docker info >/dev/null 2>&1; }
if ! command -v docker >/dev/null 2>&1 || { ! docker_ok && ! command -v dockerd >/dev/null 2>&1; }; then
  need_apt+=(docker.io)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-host: missing ${need_apt[*]}; install them (Debian: apt-get install -y ${need_apt[*]}) or start Docker" >&2
    exit 1
  fi
  echo "ensure-host: installing ${need_apt[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if docker_ok; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-host: no Docker engine answers; start one (e.g. sudo dockerd) or set DOCKER_HOST" >&2
  exit 1
fi
# A dockerd killed with its session leaves its pid file behind, and a new one refuses to start.
# A live pid of another program (pids are reused) counts as stale too.
for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile" 2>/dev/null || true)
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  case "$comm" in dockerd|containerd) ;; *) rm -f "$pidfile" ;; esac
done
echo "ensure-host: starting dockerd (log: /var/log/forager-dockerd.log)"
nohup dockerd >/var/log/forager-dockerd.log 2>&1 &
for _ in $(seq 60); do
  if docker_ok; then exit 0; fi
  sleep 1
done
echo "ensure-host: dockerd did not answer within 60 s; see /var/log/forager-dockerd.log" >&2
exit 1
