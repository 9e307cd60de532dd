#!/usr/bin/env bash
# Make sure a base image for PYTHON_VERSION is here, the way forager itself chooses one (forager/images/bases.py):
# the configured base (FORAGER_BASE_IMAGE, default python:{python}-slim) when it is here or can be pulled,
# else forager/bootstrap-python:X.Y, bootstrapped from Debian's packages when missing (no registry needed).
set -euo pipefail
python_version=${1:?usage: ensure-base.sh PYTHON_VERSION FORAGER_BIN}
forager=${2:?usage: ensure-base.sh PYTHON_VERSION FORAGER_BIN}
template=${FORAGER_BASE_IMAGE:-'python:{python}-slim'}
tag=${template//\{python\}/$python_version}
bootstrap=forager/bootstrap-python:$python_version

if docker image inspect "$tag" >/dev/null 2>&1 || docker image inspect "$bootstrap" >/dev/null 2>&1; then exit 0; fi
case "$tag" in
  forager/bootstrap-*) ;;  # a bootstrap name is made, never pulled
  *)
    if docker pull -q "$tag" >/dev/null 2>&1; then echo "ensure-base: pulled $tag"; exit 0; fi
    echo "ensure-base: cannot pull $tag (no registry?); bootstrapping $bootstrap from Debian's packages instead"
    tag=$bootstrap
    ;;
esac
if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-base: $tag needs debootstrap; install it (Debian: apt-get install -y debootstrap)" >&2
    exit 1
  fi
  echo "ensure-base: installing debootstrap from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
"$forager" bootstrap-base --python "$python_version" --tag "$tag"
