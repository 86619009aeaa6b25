#!/usr/bin/env bash
# One training epoch with the VAE and text encoder in the loop vs from the HDF5 latent cache.
# Usage: tools/bench_cache.sh [BACKDROP_BINARY] [THREADS] [smoke|text_to_image]
#   smoke:         experiments/smoke.yaml on the demo's rooms and tiny model (issue 4).
#   text_to_image: experiments/miniature/text_to_image.yaml on 48 fresh rooms, starting from the
#                  shipped miniature SD (issue 13's target: the cached epoch ≥ 2× faster).
set -euo pipefail
BIN=${1:-.build/release/backdrop}
THREADS=${2:-2}
CASE=${3:-smoke}
OUT=results/bench-cache/$CASE
rm -rf "$OUT" && mkdir -p "$OUT"
# Each variant: the case's config for one epoch, its own output folder and run name.
variant() {  # variant TAG EXTRA_SED...
  local tag=$1; shift
  sed -e 's/^  epochs: .*/  epochs: 1/' -e '/^  max_steps: /d' -e "s|^output_dir: .*|output_dir: $OUT/run-$tag|" \
    -e "s/^name: .*/name: bench-$CASE-$tag/" "$@" "$CONFIG" > "$OUT/$tag.yaml"
}
case $CASE in
  smoke)
    CONFIG=experiments/smoke.yaml
    [ -f results/demo/synthrooms/train.npy ] || "$BIN" dataset synth --out results/demo/synthrooms --count 12 --face-size 128 --seed 0
    variant vae
    variant cache -e "s|^  yaw_offset: random|  yaw_offset: random\n  latent_cache: $OUT/latents.h5\n  cache_offsets: 4|" ;;
  text_to_image)
    CONFIG=experiments/miniature/text_to_image.yaml
    ROOMS=results/bench-cache/rooms-48
    [ -f "$ROOMS/synthrooms.json" ] || "$BIN" dataset synth --out "$ROOMS" --count 48 --face-size 96 --seed 0
    common=(-e "s|^  base: .*|  base: models/miniature/sd|" -e "s|^  root: .*|  root: $ROOMS|")
    variant vae "${common[@]}" -e '/^  latent_cache: /d'
    variant cache "${common[@]}" -e "s|^  latent_cache: .*|  latent_cache: $OUT/latents.h5|" ;;
  *) echo "unknown case '$CASE' (smoke, text_to_image)" >&2; exit 64 ;;
esac
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
python3 - "$OUT/times" "$(du -k "$OUT/latents.h5" | cut -f1)" "$CASE" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
get = lambda tag, col: [float(r[col]) for r in rows if r[0] == tag]
for col, what in ((1, "wall"), (2, "CPU")):
    vae, cache = statistics.median(get("vae", col)), statistics.median(get("cache", col))
    print(f"{sys.argv[3]}: {what:4s} s, one epoch (median of {len(get('vae', col))}): VAE + text encoder in the loop {vae:.2f}, "
          f"from the cache {cache:.2f}  -> {vae / cache:.2f}x   (runs: {get('vae', col)} vs {get('cache', col)})")
print(f"cache build (once, every offset): {get('build', 1)[0]:.2f} s wall, {get('build', 2)[0]:.2f} s CPU, {sys.argv[2]} KiB")
PY
