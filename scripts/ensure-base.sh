#!/usr/bin/env bash
# Make sure the base image the make targets use exists: a forager/bootstrap-* tag is bootstrapped from
# Debian's packages (no registry needed); any other tag (e.g. python:{python}-slim) is pulled.
set -euo pipefail
python_version=${1:?usage: ensure-base.sh PYTHON_VERSION FORAGER_BIN}
forager=${2:?usage: ensure-base.sh PYTHON_VERSION FORAGER_BIN}
default_template='python:{python}-slim'
template=${FORAGER_BASE_IMAGE:-$default_template}
tag=${template//\{python\}/$python_version}

if docker image inspect "$tag" >/dev/null 2>&1; then exit 0; fi
case "$tag" in
  forager/bootstrap-*)
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
    ;;
  *)
    echo "ensure-base: pulling $tag"
    docker pull "$tag" || {
      echo "ensure-base: cannot pull $tag; with no registry use FORAGER_BASE_IMAGE=forager/bootstrap-python:{python}" >&2
      exit 1
    }
    ;;
esac
