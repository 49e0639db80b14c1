#!/usr/bin/env bash
# Sets up everything syclforge needs in .venv/ at the repository root:
# system packages (when run as root and missing), then pinned Python packages
# (SCons, the oneAPI SYCL runtime and compiler from PyPI, test tools) and
# syclforge itself (editable).
# Safe to run again: it only adds what is missing.
#
#   ./install.sh [--containers] [--acpp [ARCHIVE]] [--acpp-cuda [ARCHIVE]] [--hf]
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
# --acpp-cuda   also AdaptiveCpp with its CUDA backend (NVIDIA GPUs; the
#               OpenMP backend too), from the same archive and with --acpp's
#               Debian packages (../shared/ENVIRONMENT.md, "SYCL on an NVIDIA
#               H200"). First a CUDA 12.4 SDK for clang 19, assembled from
#               the PyPI wheels pinned in toolchains/acpp-cuda/cuda-sdk.txt into
#               .../syclforge/toolchains/cuda-12.4-<key>/, with a fatbinary
#               wrapper around CUDA 13's /usr/local/cuda/bin/fatbinary
#               ($SYCLFORGE_CUDA_FATBINARY overrides it) and a libcuda.so
#               link stub in its stub/ (for linking only, never shipped);
#               then AdaptiveCpp against it into .../toolchains/acpp-<key>/
#               (its own key). Without CUDA 13's fatbinary, or when a step
#               fails, install.sh says why and still exits 0, as for --acpp.
# --hf          also PyTorch (the CPU build) and Hugging Face transformers, at
#               the versions pinned in requirements-reference.txt, for
#               tests/test_hf_reference.py: the model against transformers'
#               LlamaForCausalLM (README.md, "Run the tests"). About 1 min
#               and 1 GB in .venv/. Unlike AdaptiveCpp not optional once
#               asked for: a failure stops install.sh (exit 1).
set -euo pipefail
cd "$(dirname "$0")"

usage() { echo "usage: ./install.sh [--containers] [--acpp [ARCHIVE]] [--acpp-cuda [ARCHIVE]] [--hf]" >&2; }
containers=0 acpp=0 acpp_cuda=0 acpp_archive= hf=0
archive_arg() {  # $1: the option, $2: its ARCHIVE; --acpp and --acpp-cuda build from one archive
  if [ -n "$acpp_archive" ] && [ "$acpp_archive" != "$2" ]; then
    echo "install.sh: error: $1 $2: --acpp and --acpp-cuda build from one archive (already $acpp_archive)" >&2
    exit 2
  fi
  acpp_archive=$2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --containers) containers=1 ;;
    --hf) hf=1 ;;
    --acpp|--acpp-cuda)
      if [ "$1" = --acpp ]; then acpp=1; else acpp_cuda=1; fi
      if [ $# -gt 1 ] && [ "${2#-}" = "$2" ]; then archive_arg "$1" "$2"; shift; fi ;;
    --acpp=*) acpp=1; archive_arg --acpp "${1#--acpp=}" ;;
    --acpp-cuda=*) acpp_cuda=1; archive_arg --acpp-cuda "${1#--acpp-cuda=}" ;;
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
acpp_problem= cuda_problem=
acpp_fail() {  # $1: why AdaptiveCpp is not installed (printed now and at the end)
  acpp_problem=$1
  echo "install.sh: AdaptiveCpp NOT installed: $acpp_problem" >&2
}
cuda_fail() {  # $1: why its CUDA flavour (--acpp-cuda) is not installed
  cuda_problem=$1
  echo "install.sh: AdaptiveCpp with CUDA NOT installed: $cuda_problem" >&2
}
any_acpp=0
[ "$acpp" = 0 ] && [ "$acpp_cuda" = 0 ] || any_acpp=1
if [ "$any_acpp" = 1 ]; then
  if [ -n "$acpp_archive" ]; then
    [ -f "$acpp_archive" ] || { echo "install.sh: error: --acpp $acpp_archive: no such file" >&2; exit 2; }
  else
    acpp_archive=$(ls -1 ../shared/vendor/AdaptiveCpp-*.tar.gz 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$acpp_archive" ] || acpp_fail "no source archive: none given (./install.sh --acpp ARCHIVE) and no AdaptiveCpp-*.tar.gz in ../shared/vendor/"
  fi
  [ -n "$acpp_problem" ] || acpp_archive=$(realpath "$acpp_archive")
fi

have_deb() { local s; s=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) && [[ $s == *"ok installed" ]]; }
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
if [ "$any_acpp" = 1 ] && [ -z "$acpp_problem" ]; then
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
if [ "$hf" = 1 ]; then
  # torch is pinned to its CPU wheel, exactly: anything looser is the CUDA
  # build (requirements-reference.txt says why and where the wheel comes from)
  echo "install.sh: installing PyTorch (CPU) and transformers from requirements-reference.txt"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-reference.txt || {
    echo "install.sh: error: pip could not install requirements-reference.txt (see its header for where torch==2.13.0+cpu comes from)" >&2
    exit 1
  }
fi

# Builds AdaptiveCpp from $acpp_archive into $dest. Runs in a subshell: all
# of it goes into a temporary sibling of $dest (".acpp-*", which the
# detection glob acpp-*/bin/acpp never matches) that is renamed into place
# only once `acpp --acpp-version` works from it, so a failed or interrupted
# build leaves nothing detection would take for an installation.
# $flavour: "" (the OpenMP backend) or "cuda" (and the CUDA backend, against
# the SDK in $sdk, with the group.hpp fix; its checks: check_acpp_cuda).
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
  label=acpp${flavour:+-$flavour}
  echo "install.sh: [$label 1/4] extracting $(basename "$acpp_archive")"
  mkdir "$tmp/src"
  tar -xzf "$acpp_archive" -C "$tmp/src" --strip-components=1 >>"$log" 2>&1
  # ../shared/ENVIRONMENT.md: no ROCm/Level Zero/OpenCL here, and the
  # SPIR-V path needs the SPIRV-LLVM-Translator that its CMake would clone
  # from the internet. CUDA: the assembled SDK; CMake links the backend
  # plugin against its stub/libcuda.so (CUDA_cuda_driver_LIBRARY), and the
  # toolkit root becomes acpp-cuda.json's default-cuda-path, what acpp
  # passes clang as --cuda-path.
  if [ "$flavour" = cuda ]; then
    echo "install.sh:   fixing group.hpp for clang 19's CUDA flow (toolchains/acpp-cuda/patch_group_eq.py)"
    python3 toolchains/acpp-cuda/patch_group_eq.py "$tmp/src" >>"$log" 2>&1
    echo "install.sh: [$label 2/4] configuring (cmake; OpenMP and CUDA backends, LLVM 19, CUDA SDK $sdk)"
    backends=(-DWITH_CUDA_BACKEND=ON -DCUDA_TOOLKIT_ROOT_DIR="$sdk" -DCUDAToolkit_ROOT="$sdk"
              -DCUDA_cuda_driver_LIBRARY="$sdk/stub/libcuda.so")
  else
    echo "install.sh: [$label 2/4] configuring (cmake; OpenMP backend only, LLVM 19)"
    backends=(-DWITH_CUDA_BACKEND=OFF)
  fi
  cmake -G Ninja -S "$tmp/src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$dest" \
    -DLLVM_DIR=/usr/lib/llvm-19/lib/cmake/llvm \
    -DCLANG_EXECUTABLE_PATH=/usr/bin/clang++-19 \
    -DWITH_OPENCL_BACKEND=OFF -DWITH_LEVEL_ZERO_BACKEND=OFF \
    "${backends[@]}" -DWITH_ROCM_BACKEND=OFF \
    -DWITH_LLVM_TO_SPIRV=OFF $acpp_cmake_options >>"$log" 2>&1
  echo "install.sh: [$label 3/4] compiling (ninja -j$(nproc); about ${build_minutes:-6} min on 2 cores)"
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
  echo "install.sh: [$label 4/4] installing into a temporary folder, then checking acpp --acpp-version${flavour:+ and a cuda:sm_90,sm_80 compile}"
  DESTDIR="$tmp/stage" ninja -C "$tmp/build" install >>"$log" 2>&1
  rmdir "$partial"
  mv -T "$tmp/stage$dest" "$partial"
  version=$("$partial/bin/acpp" --acpp-version 2>&1)
  echo "$version" >>"$log"
  grep -q 'librt-backend-omp\.so' <<<"$version" ||
    { echo "install.sh: acpp --acpp-version lists no OpenMP backend" >>"$log"; exit 1; }
  [ "$flavour" != cuda ] || check_acpp_cuda
  mv -T "$partial" "$dest"
  touch "$dest"   # detection takes the newest installation (its folder's mtime)
}

# The CUDA flavour, in $partial, before it is moved into place: its backend,
# its plugin's link (every driver function it calls is one the stub defines,
# and it needs libcuda.so.1: the driver's, at run time), its CUDA path, and a
# real compile for sm_90 and sm_80 whose cubins and PTX cuobjdump reads back.
check_acpp_cuda() {
  fail() { echo "install.sh: $1" >>"$log"; exit 1; }
  grep -q 'librt-backend-cuda\.so' <<<"$version" || fail "acpp --acpp-version lists no CUDA backend"
  plugin=$partial/lib/hipSYCL/librt-backend-cuda.so
  needed=$(readelf -d "$plugin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  echo "librt-backend-cuda.so NEEDED: $(echo $needed)" >>"$log"
  grep -qx 'libcuda.so.1' <<<"$needed" || fail "librt-backend-cuda.so does not link libcuda.so.1"
  undefined=$(nm -D --undefined-only "$plugin" | awk '$2 ~ /^cu[A-Z]/ {print $2}' | sort -u)
  defined=$(nm -D --defined-only "$sdk/stub/libcuda.so" | awk '{print $3}' | sort -u)
  missing=$(comm -23 <(echo "$undefined") <(echo "$defined") | tr '\n' ' ')
  [ -z "${missing// /}" ] || fail "librt-backend-cuda.so calls driver functions the stub lacks: $missing(add them to toolchains/acpp-cuda/libcuda_stub.c)"
  grep -q "\"default-cuda-path\" *: *\"$sdk\"" "$partial/etc/AdaptiveCpp/acpp-cuda.json" ||
    fail "etc/AdaptiveCpp/acpp-cuda.json has no default-cuda-path $sdk"
  "$partial/bin/acpp" -O3 --acpp-targets=cuda:sm_90,sm_80 toolchains/acpp-cuda/check_reduce.cpp \
    -o "$tmp/check_reduce" >>"$log" 2>&1 || fail "acpp --acpp-targets=cuda:sm_90,sm_80 failed to compile toolchains/acpp-cuda/check_reduce.cpp"
  listing=$("$sdk/bin/cuobjdump" --list-elf --list-ptx "$tmp/check_reduce" 2>&1) ||
    fail "cuobjdump --list-elf --list-ptx failed: $listing"
  echo "$listing" >>"$log"
  for want in 'ELF file.*sm_90' 'ELF file.*sm_80' 'PTX file'; do
    grep -q "$want" <<<"$listing" || fail "the cuda:sm_90,sm_80 binary holds no '$want' (cuobjdump above)"
  done
}

# Assembles the CUDA 12.4 SDK into $sdk (../shared/ENVIRONMENT.md, "SYCL on
# an NVIDIA H200"), as build_acpp does: in a temporary sibling
# (".cuda-*"), renamed into place only once clang++-19 has compiled CUDA for
# sm_90 with it and cuobjdump has read the cubin back.
build_cuda_sdk() {
  set -euo pipefail
  tmp=$(mktemp -d "$tools/.cuda-12.4-$sdk_key.build-XXXXXX")
  partial=$(mktemp -d "$tools/.cuda-12.4-$sdk_key.partial-XXXXXX")
  trap 'rm -rf "$tmp" "$partial"' EXIT
  trap 'echo "install.sh: CUDA SDK assembly interrupted; removed $partial" >&2; exit 143' TERM INT
  echo "install.sh: [cuda-sdk 1/3] downloading the wheels pinned in toolchains/acpp-cuda/cuda-sdk.txt (pip download)"
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --require-hashes \
    -r toolchains/acpp-cuda/cuda-sdk.txt -d "$tmp/wheels" >>"$sdk_log" 2>&1
  echo "install.sh: [cuda-sdk 2/3] laying out include/, bin/, lib64/, nvvm/; the fatbinary wrapper; stub/libcuda.so"
  for w in "$tmp"/wheels/*.whl; do
    python3 -m zipfile -e "$w" "$tmp/unpacked" >>"$sdk_log" 2>&1
  done
  u=$tmp/unpacked/nvidia
  chmod 755 "$partial"   # (mktemp made it 700)
  mkdir -p "$partial/include" "$partial/bin" "$partial/lib64" "$partial/nvvm" "$partial/stub" "$partial/licenses"
  for part in cuda_runtime cuda_nvcc cuda_cccl; do
    cp -R "$u/$part/include/." "$partial/include/"
  done
  find "$partial/include" -name __init__.py -delete
  # clang force-includes it; no wheel has it (curand's), and empty is enough
  : >"$partial/include/curand_mtgp32_kernel.h"
  cp -R "$u/cuda_nvcc/nvvm/libdevice" "$partial/nvvm/libdevice"
  install -m 755 "$u/cuda_nvcc/bin/ptxas" "$partial/bin/ptxas"
  install -m 755 "$u/cu13/bin/cuobjdump" "$partial/bin/cuobjdump"
  sed "s|@FATBINARY@|$fatbinary_real|" toolchains/acpp-cuda/fatbinary.in >"$partial/bin/fatbinary"
  chmod 755 "$partial/bin/fatbinary"
  install -m 755 "$u/cuda_runtime/lib/libcudart.so.12" "$partial/lib64/libcudart.so.12"
  ln -s libcudart.so.12 "$partial/lib64/libcudart.so"
  # CMake's FindCUDAToolkit reads the version here when there is no nvcc
  echo "CUDA Version 12.4.127" >"$partial/version.txt"
  # link-time only (toolchains/acpp-cuda/libcuda_stub.c); no libcuda.so.1 file
  # here, so no RUNPATH can load it instead of the driver's
  clang-19 -shared -fPIC -O2 -Wl,-soname,libcuda.so.1 -o "$partial/stub/libcuda.so" \
    toolchains/acpp-cuda/libcuda_stub.c >>"$sdk_log" 2>&1
  for lic in "$tmp"/unpacked/*.dist-info; do
    name=$(basename "$lic" .dist-info)
    cp "$(find "$lic" -name License.txt | head -n 1)" "$partial/licenses/$name.txt"
  done
  echo "install.sh: [cuda-sdk 3/3] checking: clang++-19 compiles CUDA for sm_90 with it; cuobjdump reads the cubin"
  printf '__global__ void twice(float *x) { x[threadIdx.x] *= 2.0f; }\n' >"$tmp/check.cu"
  clang++-19 -x cuda --cuda-path="$partial" --cuda-gpu-arch=sm_90 -c "$tmp/check.cu" \
    -o "$tmp/check.o" >>"$sdk_log" 2>&1
  listing=$("$partial/bin/cuobjdump" --list-elf "$tmp/check.o" 2>&1)
  echo "$listing" >>"$sdk_log"
  grep -q 'sm_90' <<<"$listing" || { echo "install.sh: no sm_90 cubin in the check object" >>"$sdk_log"; exit 1; }
  mv -T "$partial" "$sdk"
}

# Runs "$@" in a background subshell and sets build_rc. Ctrl-C or a kill
# ends the whole install (non-zero), not only the optional part: the
# subshell's own trap removes its folders.
run_optional() {
  set +e
  ( "$@" ) &
  sub=$!
  interrupted=
  trap 'interrupted=1; kill -TERM $sub 2>/dev/null' INT TERM
  wait $sub
  build_rc=$?
  while kill -0 $sub 2>/dev/null; do wait $sub; build_rc=$?; done   # a trap cut the first wait short
  trap - INT TERM
  set -e
  if [ -n "$interrupted" ] || [ $build_rc -ge 128 ]; then
    echo "install.sh: interrupted while building AdaptiveCpp (nothing of it kept)" >&2
    exit 130
  fi
}

# One flavour of AdaptiveCpp ($flavour; key options $1), built unless the
# cache holds it; $2: a backend its acpp --acpp-version must list to reuse
# it. Sets $dest; calls $3 (acpp_fail or cuda_fail) when it cannot build.
install_acpp() {
  # one folder per (source archive, build options)
  sha=$( { sha256sum "$acpp_archive" | cut -d' ' -f1; echo "$1"; } | sha256sum | cut -c1-16)
  dest=$tools/acpp-$sha
  log=$tools/acpp-$sha.log
  name="AdaptiveCpp${flavour:+ with CUDA}"
  # the version text captured whole: `acpp --acpp-version | grep -q` fails at
  # random under pipefail (grep quits at the match, acpp dies of SIGPIPE)
  if [ -x "$dest/bin/acpp" ] && version=$("$dest/bin/acpp" --acpp-version 2>/dev/null) &&
     grep -q "librt-backend-$2\.so" <<<"$version"; then
    echo "install.sh: $name: reusing the build of $(basename "$acpp_archive") in $dest"
  elif [ -e "$dest" ]; then
    "$3" "$dest exists but its bin/acpp --acpp-version fails or lists no $2 backend; remove it to rebuild"
  else
    mkdir -p "$tools"
    : >"$log"
    echo "install.sh: $name: building $acpp_archive into $dest (log: $log)"
    start=$SECONDS
    run_optional build_acpp
    if [ $build_rc = 0 ]; then
      echo "install.sh: $name built in $((SECONDS - start)) s: $dest/bin/acpp"
    else
      "$3" "the build failed (exit status $build_rc); see the end of $log:"
      tail -n 15 "$log" | sed 's/^/    /' >&2
    fi
  fi
}

# Options beyond the fixed ones above, part of the cache key: the minimal
# feature profile builds no generic (SSCP) JIT, so the runtime and its
# backend plugins need no libLLVM (129 MB) and a release bundle can carry
# them (../shared/ENVIRONMENT.md); syclforge uses the omp.library-only flow.
acpp_cmake_options="-DACPP_COMPILER_FEATURE_PROFILE=minimal"
tools=${XDG_CACHE_HOME:-$HOME/.cache}/syclforge/toolchains
if [ "$acpp" = 1 ] && [ -z "$acpp_problem" ]; then
  flavour= build_minutes=6
  install_acpp "$acpp_cmake_options" omp acpp_fail
fi

if [ "$acpp_cuda" = 1 ] && [ -z "$acpp_problem" ]; then
  # CUDA 13's fatbinary, behind the SDK's wrapper: no CUDA 12 wheel has one
  fatbinary_real=${SYCLFORGE_CUDA_FATBINARY:-/usr/local/cuda/bin/fatbinary}
  if [ ! -x "$fatbinary_real" ]; then
    cuda_fail "no CUDA 13 fatbinary at $fatbinary_real (no CUDA 12 wheel ships one; install CUDA 13's nvcc there, or set SYCLFORGE_CUDA_FATBINARY)"
  else
    # one SDK per (pinned wheels, wrapper, stub, fatbinary it calls)
    sdk_key=$( { cat toolchains/acpp-cuda/cuda-sdk.txt toolchains/acpp-cuda/fatbinary.in \
                     toolchains/acpp-cuda/libcuda_stub.c; echo "$fatbinary_real"; } | sha256sum | cut -c1-16)
    sdk=$tools/cuda-12.4-$sdk_key
    sdk_log=$tools/cuda-12.4-$sdk_key.log
    if [ -x "$sdk/bin/ptxas" ] && [ -f "$sdk/stub/libcuda.so" ] && "$sdk/bin/ptxas" --version >/dev/null 2>&1; then
      echo "install.sh: CUDA 12.4 SDK: reusing $sdk"
    elif [ -e "$sdk" ]; then
      cuda_fail "$sdk exists but its bin/ptxas --version fails; remove it to assemble it again"
    else
      mkdir -p "$tools"
      : >"$sdk_log"
      echo "install.sh: CUDA 12.4 SDK: assembling $sdk (log: $sdk_log)"
      start=$SECONDS
      run_optional build_cuda_sdk
      if [ $build_rc = 0 ]; then
        echo "install.sh: CUDA 12.4 SDK assembled in $((SECONDS - start)) s: $sdk"
      else
        cuda_fail "assembling the CUDA 12.4 SDK failed (exit status $build_rc); see the end of $sdk_log:"
        tail -n 15 "$sdk_log" | sed 's/^/    /' >&2
      fi
    fi
  fi
  if [ -z "$cuda_problem" ]; then
    # its own key: the SDK's and the source fix's on top of the options
    flavour=cuda build_minutes=4
    patch_key=$(sha256sum toolchains/acpp-cuda/patch_group_eq.py | cut -c1-16)
    install_acpp "$acpp_cmake_options cuda-sdk=$sdk_key patch=$patch_key" cuda cuda_fail
  fi
fi

if [ -n "$acpp_problem" ] || [ -n "$cuda_problem" ]; then
  [ -z "$acpp_problem" ] || echo "install.sh: done, except AdaptiveCpp: $acpp_problem (the acpp tests will skip)" >&2
  [ -z "$cuda_problem" ] || echo "install.sh: done, except AdaptiveCpp with CUDA: $cuda_problem (the acpp CUDA tests will skip)" >&2
  exit 0
fi
echo "install.sh: done; next: .venv/bin/scons target=all"
