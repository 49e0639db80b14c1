#!/usr/bin/env bash
# Sets up everything syclforge needs in .venv/ at the repository root:
# system packages (when run as root and missing), then pinned Python packages
# (SCons, the oneAPI SYCL runtime and compiler from PyPI, test tools) and
# syclforge itself (editable).
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v g++ >/dev/null || need+=(g++)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v git >/dev/null || need+=(git)
# --containers: also a container engine and mmdebstrap, for `scons docker=1`
# and tests/test_containers.py (README.md, "Containers"), and nginx with
# WebDAV for tests/test_remote_cache.py (README.md, "Shared cache").
if [ "${1:-}" = "--containers" ]; then
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "install.sh: installing system packages: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "install.sh: error: missing system packages ${need[*]}; run as root or install them" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "install.sh: creating .venv"
  python3 -m venv .venv
fi
echo "install.sh: installing Python packages from requirements.txt"
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
# syclforge itself, editable: the `syclforge` command, and the package that
# other projects' SConstructs import (README.md, "Use syclforge in your project").
echo "install.sh: installing syclforge (pip install -e .)"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
echo "install.sh: done; next: .venv/bin/scons target=all"
