#!/usr/bin/env bash
# `make fuzz` (docs/security.md#fuzzing): every parser of untrusted input under libFuzzer with
# AddressSanitizer, RUNS executions each from seed corpora of real inputs. Prints executions,
# coverage and findings per harness; exits 1 when any harness found a crash, a leak-free hang or a
# sanitizer report (its input is kept under $WORK/<harness>/findings to become a regression fixture
# in Tests/Fixtures/fuzz/<harness>/).
# Usage: tools/fuzz.sh FUZZ_BINARY [HARNESS…]   (env: RUNS, BACKDROP_PYTHON, BACKDROP_ASSETS, FUZZ_WORK)
set -euo pipefail
BIN=$1; shift
RUNS=${RUNS:-100000}
PY=${BACKDROP_PYTHON:-python3}
ASSETS=${BACKDROP_ASSETS:-$HOME/.cache/backdrop/assets}
WORK=${FUZZ_WORK:-$HOME/.cache/backdrop/fuzz}
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(safetensors pickle torch-zip npy tflite y4m yaml-config image clip-tokenizer hdf5-statistics)
# LibTorch is not instrumented: its std::vectors would trip ASan's container-overflow check, and its
# process-lifetime caches read as leaks.
export ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0:allocator_may_return_null=1

# Seed corpus of one harness from real inputs (files, or folders of files with the given suffixes).
seed() {
  local dir=$WORK/$1/corpus; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/"; done
}
fixtures=Tests/Fixtures
seed safetensors $fixtures/serialization/*.safetensors
seed torch-zip $fixtures/serialization/*.pt $fixtures/serialization/lightning.ckpt
mkdir -p "$WORK/pickle/corpus"
"$PY" - "$WORK/pickle/corpus" $fixtures/serialization/*.pt <<'PY'
import os, sys, zipfile
out = sys.argv[1]
for path in sys.argv[2:]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        continue
    for name in archive.namelist():
        if name.endswith("data.pkl"):
            open(os.path.join(out, os.path.basename(path) + ".pkl"), "wb").write(archive.read(name))
PY
seed npy $fixtures/media/*.npy
seed tflite "$ASSETS/models/selfie_segmentation.tflite" "$ASSETS/models/selfie_segmentation_landscape.tflite"
seed image $fixtures/media/*.png $fixtures/media/*.jpg
seed yaml-config experiments/*.yaml experiments/miniature/*.yaml $fixtures/fuzz/yaml-config/*
mkdir -p "$WORK/y4m/corpus" "$WORK/clip-tokenizer/corpus" "$WORK/hdf5-statistics/corpus"
# Two 4×2 frames, 4:2:0 and 4:4:4 (the headers Backdrop writes and reads).
printf 'YUV4MPEG2 W4 H2 F30:1 Ip A1:1 C420jpeg\nFRAME\n%s' "0123456789ab" > "$WORK/y4m/corpus/c420.y4m"
printf 'YUV4MPEG2 W4 H2 F30000:1001 Ip A1:1 C444 XYSCSS=444\nFRAME\n%s' "0123456789abcdefghijklmnopqrstuv" > "$WORK/y4m/corpus/c444.y4m"
printf 'a well-lit living room with large windows' > "$WORK/clip-tokenizer/corpus/room.txt"
printf 'This is one view of a scene. A bedroom with blue walls, a bed on the left; café, naïve — 日本語 <|endoftext|>' \
  > "$WORK/clip-tokenizer/corpus/mixed.txt"
"$PY" - "$WORK/hdf5-statistics/corpus/stats.h5" <<'PY'
import sys, h5py, numpy as np
x = np.random.default_rng(0).standard_normal((40, 4))
with h5py.File(sys.argv[1], "w") as f:
    f["mu"], f["sigma"] = x.mean(0), np.cov(x, rowvar=False)
    # Fixed-length strings, as Backdrop writes them (variable-length ones are refused in statistics).
    for key, value in (("count", b"40"), ("feature_extractor", b"fuzz"), ("resize", b"tf1")):
        f.attrs.create(key, np.bytes_(value))
PY

status=0
printf '%-16s %10s %8s %8s %9s %s\n' harness executions cov ft seconds findings
for h in "${HARNESSES[@]}"; do
  mkdir -p "$WORK/$h/findings"
  log=$WORK/$h/fuzz.log
  start=$(date +%s)
  set +e
  # hdf5-statistics parses in a forked child (docs/security.md#findings): libhdf5's faults there are
  # contained and counted, and its allocations are left to ASan (which returns NULL for absurd ones)
  # rather than libFuzzer's malloc limit, whose hook the child inherits.
  extra=()
  [ "$h" = hdf5-statistics ] && extra=(-malloc_limit_mb=1000000)
  "$BIN" "$h" -runs="$RUNS" -timeout=10 -rss_limit_mb=3072 -max_len=300000 -print_final_stats=1 "${extra[@]}" \
    -artifact_prefix="$WORK/$h/findings/" "$WORK/$h/corpus" > "$log" 2>&1
  rc=$?
  set -e
  seconds=$(( $(date +%s) - start ))
  runs=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  last=$(grep -aE '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<< "$last"); ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<< "$last")
  findings=$(find "$WORK/$h/findings" -type f | wc -l)
  contained=$(grep -ac "ERROR: AddressSanitizer" "$log" || true)
  printf '%-16s %10s %8s %8s %9s %s%s\n' "$h" "$runs" "${cov:-?}" "${ft:-?}" "$seconds" "$findings" \
    "$([ "$h" = hdf5-statistics ] && echo "  (libhdf5 faults contained in the reader process: $contained)")"
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then status=1; grep -m3 -E 'ERROR|SUMMARY|deadly|Fatal' "$log" || tail -5 "$log"; fi
done
exit $status
