#!/usr/bin/env bash
# The GPU check of Backdrop on a current PyTorch LibTorch, for a machine with an NVIDIA GPU and driver:
#   1. builds Backdrop against the CUDA LibTorch of a torch wheel (LIBTORCH, default: the wheel folder
#      `make test-libtorch2` unpacks; on a GPU machine point it at a pip-installed torch/ whose nvidia-*
#      wheels are installed beside it, so libtorch_cuda can load), linking libtorch_cuda (LIBTORCH_CUDA=1);
#   2. prints `backdrop info` (LibTorch path, version, C++ ABI, CUDA runtime and cuDNN, devices);
#   3. runs every parity case (`backdrop parity`, on the CPU: the cases pin numbers, not speed), each
#      committed case replaced by the one the Python reference made on LibTorch 2.15 when
#      `make test-libtorch2` has written it (docs/libtorch.md#the-reference-on-libtorch-215);
#   4. trains a few CAA steps of the smoke config on cuda:0 in fp32 and in bf16 autocast, and prints
#      steps/s and peak GPU memory (nvidia-smi's sampled maximum) for each.
# It prints everything to standard output; run it as one command and keep the log.
#
# usage: tools/gpu_check.sh [STEPS]   (from the repository root; needs `make setup` to have run)
set -euo pipefail

steps=${1:-20}
cache=${BACKDROP_CACHE:-$HOME/.cache/backdrop}
export LIBTORCH=${LIBTORCH:-$cache/libtorch-2.15.0/torch}
export LIBTORCH_CUDA=1
export BACKDROP_CACHE=$cache BACKDROP_ASSETS=${BACKDROP_ASSETS:-$cache/assets}
scratch=.build-gpu

echo "== build against $LIBTORCH (CUDA linked)"
swift build -c release --scratch-path "$scratch" --product backdrop
backdrop="$scratch/release/backdrop"

echo "== backdrop info"
"$backdrop" info

echo "== parity cases"
regenerated=$(ls -d "$cache"/reference-torch-2.15.0-*/parity 2>/dev/null | head -1 || true)
cases=()
for case in Tests/Fixtures/parity/*/; do
    name=$(basename "$case")
    if [ -n "$regenerated" ] && [ -d "$regenerated/$name" ]; then cases+=("$regenerated/$name"); else cases+=("$case"); fi
done
"$backdrop" parity "${cases[@]}"

echo "== CAA training steps on cuda:0"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$backdrop" dataset synth --out "$work/rooms" --count 12 --face-size 128 --seed 0 >/dev/null
for precision in fp32 bf16; do
    sed -e "s#root: results/demo/synthrooms#root: $work/rooms#" -e "s#device: cpu#device: cuda:0#" \
        -e "s#output_dir: results/runs/smoke#output_dir: $work/run-$precision#" \
        -e "s#^training:#training:\n  precision: $precision\n  max_steps: $steps#" \
        -e "s#^name: smoke#name: gpu-$precision#" experiments/smoke.yaml > "$work/$precision.yaml"
    peak="$work/peak-$precision"
    (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 >> "$peak" 2>/dev/null || true; sleep 0.2; done) &
    sampler=$!
    start=$(date +%s.%N)
    "$backdrop" train "$work/$precision.yaml" --registry "$work/runs.sqlite"
    end=$(date +%s.%N)
    kill "$sampler" 2>/dev/null || true
    echo "$precision: $steps steps in $(echo "$end - $start" | bc) s, $(echo "$steps / ($end - $start)" | bc -l | cut -c1-6) steps/s (with model loading)," \
         "peak GPU memory $(sort -n "$peak" | tail -1) MiB"
done
