#!/usr/bin/env bash
# Make sure a compose implementation is on PATH (the compose.yaml test validates the file with it).
# Installs Debian's docker-compose (v1.29) when neither `docker compose` nor `docker-compose` runs (root only).
set -euo pipefail
if docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-compose: no docker compose / docker-compose; install one or run as root" >&2
  exit 1
fi
echo "ensure-compose: installing Debian's docker-compose" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null \
  || { echo "ensure-compose: apt-get install docker-compose failed; install docker compose v2 or docker-compose" >&2; exit 1; }
docker-compose version >/dev/null
