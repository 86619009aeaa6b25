#!/usr/bin/env bash
# One training epoch of the smoke config with the VAE and text encoder in the loop vs from the HDF5
# latent cache (issue 4's benchmark). Usage: tools/bench_cache.sh [BACKDROP_BINARY] [THREADS]
# Needs the synthetic rooms of `make demo` (results/demo/synthrooms) and the tiny model (`make models`).
set -euo pipefail
BIN=${1:-.build/release/backdrop}
THREADS=${2:-2}
OUT=results/bench-cache
rm -rf "$OUT" && mkdir -p "$OUT"
[ -f results/demo/synthrooms/train.npy ] || "$BIN" dataset synth --out results/demo/synthrooms --count 12 --face-size 128 --seed 0
# Both runs: smoke.yaml, one epoch; the second reads the cache (cache_offsets offsets per panorama).
sed -e 's/^  epochs: .*/  epochs: 1/' -e "s|^output_dir: .*|output_dir: $OUT/run-vae|" -e 's/^name: smoke/name: bench-vae/' \
  experiments/smoke.yaml > "$OUT/vae.yaml"
sed -e 's/^  epochs: .*/  epochs: 1/' -e "s|^output_dir: .*|output_dir: $OUT/run-cache|" -e 's/^name: smoke/name: bench-cache/' \
  -e "s|^  yaw_offset: random|  yaw_offset: random\n  latent_cache: $OUT/latents.h5\n  cache_offsets: 4|" \
  experiments/smoke.yaml > "$OUT/cache.yaml"
# Wall and CPU (user + system) seconds of each command, appended to $OUT/times.
timed() { local tag=$1; shift; python3 - "$tag" "$OUT/times" "$@" <<'PY'
import os, resource, subprocess, sys, time
tag, log, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t = time.time()
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=open(f"{log}.{tag}.log", "w"))
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(log, "a").write(f"{tag} {time.time() - t:.2f} {r.ru_utime + r.ru_stime:.2f}\n")
PY
}
timed build "$BIN" cache build --config "$OUT/cache.yaml" --threads "$THREADS"
# Alternated, so that other load on the machine hits both alike; each run starts afresh.
for i in $(seq "${REPEAT:-2}"); do
  rm -rf "$OUT/run-vae" "$OUT/run-cache"
  timed vae "$BIN" train "$OUT/vae.yaml" --registry "$OUT/runs.sqlite" --threads "$THREADS"
  timed cache "$BIN" train "$OUT/cache.yaml" --registry "$OUT/runs.sqlite" --threads "$THREADS"
done
python3 - "$OUT/times" "$(du -k "$OUT/latents.h5" | cut -f1)" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
get = lambda tag, col: [float(r[col]) for r in rows if r[0] == tag]
for col, what in ((1, "wall"), (2, "CPU")):
    vae, cache = statistics.median(get("vae", col)), statistics.median(get("cache", col))
    print(f"{what:4s} s, one smoke epoch (median of {len(get('vae', col))}): VAE + text encoder in the loop {vae:.2f}, "
          f"from the cache {cache:.2f}  -> {vae / cache:.2f}x   (runs: {get('vae', col)} vs {get('cache', col)})")
print(f"cache build (once, every offset): {get('build', 1)[0]:.2f} s wall, {get('build', 2)[0]:.2f} s CPU, {sys.argv[2]} KiB")
PY
