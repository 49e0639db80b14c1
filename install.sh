#!/usr/bin/env bash
# Sets up everything syclforge needs in .venv/ at the repository root:
# system packages (when run as root and missing), then pinned Python packages
# (SCons, the oneAPI SYCL runtime and compiler from PyPI, test tools) and
# syclforge itself (editable).
# Safe to run again: it only adds what is missing.
#
#   ./install.sh [--containers] [--acpp [ARCHIVE]]
#
# --containers  also a container engine and mmdebstrap, for `scons docker=1`
#               and tests/test_containers.py (README.md, "Containers"), and
#               nginx with WebDAV for tests/test_remote_cache.py (README.md,
#               "Shared cache").
# --acpp        also AdaptiveCpp, built from a source archive (default: the
#               AdaptiveCpp-*.tar.gz in ../shared/vendor/) into
#               ${XDG_CACHE_HOME:-~/.cache}/syclforge/toolchains/acpp-<key>/ (key: sha256 of the archive and the build options, 16 hex),
#               where toolchains/acpp.yaml finds it. Built once per archive;
#               a second run reuses it. When it cannot be built (no archive,
#               dependencies missing, build failure) install.sh says why,
#               finishes the rest and still exits 0: AdaptiveCpp is optional,
#               so the README's test command runs the suite, whose acpp tests
#               then skip naming why.
set -euo pipefail
cd "$(dirname "$0")"

usage() { echo "usage: ./install.sh [--containers] [--acpp [ARCHIVE]]" >&2; }
containers=0 acpp=0 acpp_archive=
while [ $# -gt 0 ]; do
  case "$1" in
    --containers) containers=1 ;;
    --acpp)
      acpp=1
      if [ $# -gt 1 ] && [ "${2#-}" = "$2" ]; then acpp_archive=$2; shift; fi ;;
    --acpp=*) acpp=1 acpp_archive=${1#--acpp=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: error: unknown argument '$1'" >&2; usage; exit 2 ;;
  esac
  shift
done

# AdaptiveCpp: its Debian build dependencies (../shared/ENVIRONMENT.md,
# "AdaptiveCpp, built here from source"): LLVM/clang 19 for its compiler
# plugin, libomp for the OpenMP backend, Boost.Context/Fiber for the runtime.
acpp_debs=(llvm-19-dev clang-19 libclang-19-dev libomp-19-dev libboost-context-dev
           libboost-fiber-dev cmake ninja-build)
acpp_problem=
acpp_fail() {  # $1: why AdaptiveCpp is not installed (printed now and at the end)
  acpp_problem=$1
  echo "install.sh: AdaptiveCpp NOT installed: $acpp_problem" >&2
}
if [ "$acpp" = 1 ]; then
  if [ -n "$acpp_archive" ]; then
    [ -f "$acpp_archive" ] || { echo "install.sh: error: --acpp $acpp_archive: no such file" >&2; exit 2; }
  else
    acpp_archive=$(ls -1 ../shared/vendor/AdaptiveCpp-*.tar.gz 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$acpp_archive" ] || acpp_fail "no source archive: none given (./install.sh --acpp ARCHIVE) and no AdaptiveCpp-*.tar.gz in ../shared/vendor/"
  fi
  [ -n "$acpp_problem" ] || acpp_archive=$(realpath "$acpp_archive")
fi

have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
need=()
command -v g++ >/dev/null || need+=(g++)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v git >/dev/null || need+=(git)
if [ "$containers" = 1 ]; then
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
fi
acpp_need=()
if [ "$acpp" = 1 ] && [ -z "$acpp_problem" ]; then
  for p in "${acpp_debs[@]}"; do have_deb "$p" || acpp_need+=("$p"); done
fi
if [ ${#need[@]} -gt 0 ] || [ ${#acpp_need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    # only AdaptiveCpp's packages missing: a failure here is not fatal (below)
    apt-get update -qq || [ ${#need[@]} -eq 0 ]
  elif [ ${#need[@]} -gt 0 ]; then
    echo "install.sh: error: missing system packages ${need[*]}; run as root or install them" >&2
    exit 1
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "install.sh: installing system packages: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ ${#acpp_need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    acpp_fail "missing system packages ${acpp_need[*]}; run as root or install them"
  else
    echo "install.sh: installing AdaptiveCpp's build dependencies: ${acpp_need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${acpp_need[@]}" ||
      acpp_fail "apt-get could not install ${acpp_need[*]}"
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

# Builds AdaptiveCpp from $acpp_archive into $dest. Runs in a subshell: all
# of it goes into a temporary sibling of $dest (".acpp-*", which the
# detection glob acpp-*/bin/acpp never matches) that is renamed into place
# only once `acpp --acpp-version` works from it, so a failed or interrupted
# build leaves nothing detection would take for an installation.
build_acpp() {
  set -euo pipefail
  # (no `local`: the EXIT trap runs after the function has returned)
  ninja_pid=
  tmp=$(mktemp -d "$tools/.acpp-$sha.build-XXXXXX")
  partial=$(mktemp -d "$tools/.acpp-$sha.partial-XXXXXX")
  cleanup() {
    [ -z "$ninja_pid" ] || kill -TERM "$ninja_pid" 2>/dev/null || true
    [ -z "$ninja_pid" ] || wait "$ninja_pid" 2>/dev/null || true
    rm -rf "$tmp" "$partial"
  }
  trap cleanup EXIT
  trap 'echo "install.sh: AdaptiveCpp build interrupted; removed $partial" >&2; exit 143' TERM INT
  echo "install.sh: [acpp 1/4] extracting $(basename "$acpp_archive")"
  mkdir "$tmp/src"
  tar -xzf "$acpp_archive" -C "$tmp/src" --strip-components=1 >>"$log" 2>&1
  echo "install.sh: [acpp 2/4] configuring (cmake; OpenMP backend only, LLVM 19)"
  # ../shared/ENVIRONMENT.md: no CUDA/ROCm/Level Zero/OpenCL here, and the
  # SPIR-V path needs the SPIRV-LLVM-Translator that its CMake would clone
  # from the internet.
  cmake -G Ninja -S "$tmp/src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$dest" \
    -DLLVM_DIR=/usr/lib/llvm-19/lib/cmake/llvm \
    -DCLANG_EXECUTABLE_PATH=/usr/bin/clang++-19 \
    -DWITH_OPENCL_BACKEND=OFF -DWITH_LEVEL_ZERO_BACKEND=OFF \
    -DWITH_CUDA_BACKEND=OFF -DWITH_ROCM_BACKEND=OFF \
    -DWITH_LLVM_TO_SPIRV=OFF $acpp_cmake_options >>"$log" 2>&1
  echo "install.sh: [acpp 3/4] compiling (ninja -j$(nproc); about 6 min on 2 cores)"
  ninja -C "$tmp/build" -j"$(nproc)" >>"$log" 2>&1 &
  ninja_pid=$!
  while kill -0 "$ninja_pid" 2>/dev/null; do
    sleep 30 & wait $! || true
    steps=$(grep -o '^\[[0-9]*/[0-9]*\]' "$log" | tail -n 1 || true)
    [ -z "$steps" ] || echo "install.sh:   ... $steps steps"
  done
  wait "$ninja_pid"; ninja_pid=
  # The prefix compiled in is $dest (the runtime keeps it, config.hpp's
  # HIPSYCL_INSTALL_PREFIX); the files are staged with DESTDIR and moved to
  # $partial, on the same file system as $dest.
  echo "install.sh: [acpp 4/4] installing into a temporary folder, then checking acpp --acpp-version"
  DESTDIR="$tmp/stage" ninja -C "$tmp/build" install >>"$log" 2>&1
  rmdir "$partial"
  mv -T "$tmp/stage$dest" "$partial"
  version=$("$partial/bin/acpp" --acpp-version 2>&1)
  echo "$version" >>"$log"
  grep -q 'librt-backend-omp\.so' <<<"$version" ||
    { echo "install.sh: acpp --acpp-version lists no OpenMP backend" >>"$log"; exit 1; }
  mv -T "$partial" "$dest"
  touch "$dest"   # detection takes the newest installation (its folder's mtime)
}

# Options beyond the fixed ones above, part of the cache key: the minimal
# feature profile builds no generic (SSCP) JIT, so the runtime and its
# backend plugins need no libLLVM (129 MB) and a release bundle can carry
# them (../shared/ENVIRONMENT.md); syclforge uses the omp.library-only flow.
acpp_cmake_options="-DACPP_COMPILER_FEATURE_PROFILE=minimal"
if [ "$acpp" = 1 ] && [ -z "$acpp_problem" ]; then
  # one folder per (source archive, build options)
  sha=$( { sha256sum "$acpp_archive" | cut -d' ' -f1; echo "$acpp_cmake_options"; } | sha256sum | cut -c1-16)
  tools=${XDG_CACHE_HOME:-$HOME/.cache}/syclforge/toolchains
  dest=$tools/acpp-$sha
  log=$tools/acpp-$sha.log
  if [ -x "$dest/bin/acpp" ] && "$dest/bin/acpp" --acpp-version >/dev/null 2>&1; then
    echo "install.sh: AdaptiveCpp: reusing the build of $(basename "$acpp_archive") in $dest"
  elif [ -e "$dest" ]; then
    acpp_fail "$dest exists but its bin/acpp --acpp-version fails; remove it to rebuild"
  else
    mkdir -p "$tools"
    : >"$log"
    echo "install.sh: AdaptiveCpp: building $acpp_archive into $dest (log: $log)"
    start=$SECONDS
    set +e
    ( build_acpp ) &
    sub=$!
    # Ctrl-C or a kill ends the whole install (non-zero), not only the
    # optional AdaptiveCpp part: the build's own trap removes its folders.
    interrupted=
    trap 'interrupted=1; kill -TERM $sub 2>/dev/null' INT TERM
    wait $sub
    rc=$?
    while kill -0 $sub 2>/dev/null; do wait $sub; rc=$?; done   # a trap cut the first wait short
    trap - INT TERM
    set -e
    if [ -n "$interrupted" ] || [ $rc -ge 128 ]; then
      echo "install.sh: interrupted while building AdaptiveCpp (nothing of it kept)" >&2
      exit 130
    fi
    if [ $rc = 0 ]; then
      echo "install.sh: AdaptiveCpp built in $((SECONDS - start)) s: $dest/bin/acpp"
    else
      acpp_fail "the build failed (exit status $rc); see the end of $log:"
      tail -n 15 "$log" | sed 's/^/    /' >&2
    fi
  fi
fi

if [ -n "$acpp_problem" ]; then
  echo "install.sh: done, except AdaptiveCpp: $acpp_problem (the acpp tests will skip)" >&2
  exit 0
fi
echo "install.sh: done; next: .venv/bin/scons target=all"
