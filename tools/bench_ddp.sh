#!/usr/bin/env bash
# Data-parallel training speed (docs/distributed.md): 2 processes × 1 thread against 1 process ×
# 2 threads, the same global batch and steps, on the CAA smoke config (tiny model) and on the
# miniature text-to-image stage (shipped weights, 48 rooms). Prints steps/s of each and the
# all-reduce time per step. Usage: tools/bench_ddp.sh [BACKDROP_BINARY] [STEPS]
set -euo pipefail
BIN=${1:-.build/release/backdrop}
STEPS=${2:-12}
OUT=results/bench-ddp
rm -rf "$OUT" && mkdir -p "$OUT"
ROOMS=$OUT/rooms-48
"$BIN" dataset synth --out "$ROOMS" --count 48 --face-size 96 --seed 0 > /dev/null 2>&1

# config CASE PROCESSES: the case's config (the same global batch for any number of processes).
config() {
  local case=$1 processes=$2 file=$OUT/$1-$2.yaml
  case $case in
    caa)
      sed -e "s|^  root: .*|  root: $ROOMS|" -e 's/^  batch_size: .*/  batch_size: 4/' \
        -e "s|^output_dir: .*|output_dir: $OUT/run-$case-$processes|" -e "s/^name: .*/name: bench-$case-$processes/" \
        -e 's/^  epochs: .*/  epochs: 100\n  max_steps: '"$STEPS"'/' -e 's/^  checkpoint_every: .*/  checkpoint_every: 100000/' \
        experiments/smoke.yaml > "$file" ;;
    text_to_image)
      sed -e "s|^  base: .*|  base: models/miniature/sd|" -e "s|^  root: .*|  root: $ROOMS|" -e '/^  latent_cache: /d' \
        -e "s|^output_dir: .*|output_dir: $OUT/run-$case-$processes|" \
        -e "s/^name: .*/name: bench-$case-$processes/" -e 's/^  max_steps: .*/  max_steps: '"$STEPS"'/' \
        -e 's/^  checkpoint_every: .*/  checkpoint_every: 100000/' -e 's/^  warmup_steps: .*/  warmup_steps: 2/' \
        experiments/miniature/text_to_image.yaml > "$file" ;;
  esac
  echo "$file"
}

# The loop's steps per second as the run logged it at its last step (start-up excluded).
rate() {
  python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT stepsPerSecond FROM metric JOIN run ON run.id = metric.runId WHERE run.name = ? ORDER BY step DESC LIMIT 1', (sys.argv[2],)).fetchone()[0])" \
    "$OUT/runs.sqlite" "$1"
}

for case in caa text_to_image; do
  "$BIN" train "$(config $case 1)" --registry "$OUT/runs.sqlite" --threads 2 > /dev/null 2> "$OUT/$case-1.log"
  "$BIN" train "$(config $case 2)" --registry "$OUT/runs.sqlite" --threads 1 --nproc 2 > /dev/null 2> "$OUT/$case-2.log"
  one=$(rate "bench-$case-1"); two=$(rate "bench-$case-2")
  python3 -c "import sys; one, two = float(sys.argv[1]), float(sys.argv[2]); print(f'{sys.argv[3]:14s} 1 process × 2 threads {one:.3f} steps/s, 2 processes × 1 thread {two:.3f} steps/s -> {two / one:.2f}x')" \
    "$one" "$two" "$case"
  grep -h "all-reduce" "$OUT/$case-2.log" | sed "s/^/               /"
done
