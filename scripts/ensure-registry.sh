#!/usr/bin/env bash
# Make sure an image registry answers on 127.0.0.1:PORT (forager's registry tests; prints HOST:PORT).
# Installs Debian's docker-registry and starts it with its storage under /var/lib/forager-registry
# when none answers (root only). Docker allows plain HTTP to 127.0.0.0/8 registries by default.
set -euo pipefail
PORT=${FORAGER_REGISTRY_PORT:-5000}
ADDR=127.0.0.1:$PORT
HOME_DIR=/var/lib/forager-registry

registry_ok() { curl -fsS -m 3 "http://$ADDR/v2/" >/dev/null 2>&1; }
if registry_ok; then echo "$ADDR"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-registry: no registry on $ADDR; start one (docker-registry serve CONFIG) or run as root" >&2
  exit 1
fi
if ! command -v docker-registry >/dev/null 2>&1; then
  echo "ensure-registry: installing Debian's docker-registry" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null \
    || { echo "ensure-registry: apt-get install docker-registry failed; install it or start a registry on $ADDR" >&2; exit 1; }
fi
mkdir -p "$HOME_DIR/data"
cat > "$HOME_DIR/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $HOME_DIR/data
  delete:
    enabled: true
http:
  addr: $ADDR
YAML
# why: the Debian package's own service listens on :5000 of every interface; ours stays on loopback
setsid docker-registry serve "$HOME_DIR/config.yml" >>"$HOME_DIR/registry.log" 2>&1 < /dev/null &
for _ in $(seq 30); do
  registry_ok && { echo "$ADDR"; exit 0; }
  sleep 0.5
done
echo "ensure-registry: started docker-registry but $ADDR does not answer (log: $HOME_DIR/registry.log)" >&2
exit 1
