#!/usr/bin/env bash
# The LibTorch that GPU users have: the one inside PyPI's `torch` wheel (built for CUDA), plus the two
# CUDA libraries its CPU part loads at start (the CUDA runtime and CUPTI), unpacked — never installed
# into a Python — as a site-packages-like folder:
#   $CACHE/libtorch-$VERSION/torch/{lib,include,share}   → LIBTORCH=$CACHE/libtorch-$VERSION/torch
#   $CACHE/libtorch-$VERSION/nvidia/cu13/lib             ← found by libtorch_cpu.so's own RPATH
# Wheels go to $CACHE/downloads and are checked against the pinned SHA256s before anything is unpacked.
# Idempotent: a stamp file marks a complete folder; prints the LIBTORCH path.
#
# usage: tools/fetch_libtorch2.sh CACHE_DIR
set -euo pipefail

cache=${1:?usage: fetch_libtorch2.sh CACHE_DIR}
version=2.15.0
root="$cache/libtorch-$version"
downloads="$cache/downloads"
python=${PYTHON:-python3}

# name, pip requirement, platform tag, file, sha256
wheels=(
    "torch|torch==$version|manylinux_2_28_x86_64|torch-$version-cp311-cp311-manylinux_2_28_x86_64.whl|48c2d861134c0b5697c7602cb5ffa68f62a2989fdcd1717e593356f67996ca1e"
    "cudart|nvidia-cuda-runtime==13.2.86|manylinux_2_17_x86_64|nvidia_cuda_runtime-13.2.86-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|3498247680dfddce31bad102af7e3e26fc795342a3cac64722bb0fa95e7f60f0"
    "cupti|nvidia-cuda-cupti==13.2.86|manylinux_2_25_x86_64|nvidia_cuda_cupti-13.2.86-py3-none-manylinux_2_25_x86_64.whl|8fa29f15dd8336181f961764d9d95236fc6b931dd0c8fcf8cd70aab0c310b586"
)

if [ -f "$root/.ready" ]; then echo "$root/torch"; exit 0; fi
mkdir -p "$downloads"
staging="$root.tmp.$$"
rm -rf "$staging"
mkdir -p "$staging"
trap 'rm -rf "$staging"' EXIT
for entry in "${wheels[@]}"; do
    IFS='|' read -r name requirement platform file sha <<<"$entry"
    if [ ! -f "$downloads/$file" ] || ! echo "$sha  $downloads/$file" | sha256sum -c --quiet 2>/dev/null; then
        rm -f "$downloads/$file"
        echo "fetching $requirement" >&2
        "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --platform "$platform" \
            --python-version 3.11 --implementation cp --abi cp311 --abi none "$requirement" -d "$downloads" >&2
    fi
    echo "$sha  $downloads/$file" | sha256sum -c --quiet
    case $name in
        torch) unzip -q -o "$downloads/$file" 'torch/lib/*' 'torch/include/*' 'torch/share/*' 'torch/version.py' -d "$staging" ;;
        *) unzip -q -o "$downloads/$file" 'nvidia/cu13/lib/*' -d "$staging" ;;
    esac
done
rm -rf "$root"
mv "$staging" "$root"
trap - EXIT
touch "$root/.ready"
echo "$root/torch"
