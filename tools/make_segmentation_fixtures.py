#!/usr/bin/env python3
"""Reference masks of MediaPipe's selfie segmentation models, made by MediaPipe itself (0.10.14).

Run by `make fixtures-segmentation` in the MediaPipe venv (tools/requirements-mediapipe.txt); the
Python reference venv and `make test` never need MediaPipe. Reads the models and the real photos that
`make setup` fetched into $BACKDROP_ASSETS (models/, photos/) and writes:

Tests/Fixtures/parity/selfie_<name>/   parity cases in docs/parity.md's format, component
                                       `selfie_segmentation`:
    case.json             {"component", "model": "$BACKDROP_ASSETS/models/<file>.tflite", "atol": 1e-3,
                          "rtol": 0, "args": {"min_iou": 0.99, "threshold": 0.5}}. The model is not in
                          the repository, so `model` names it by the environment variable (a leading
                          `$NAME/` is expanded; relative paths stay relative to the case folder).
    inputs.safetensors    image uint8 [1, h, w, 3] RGB at the model size (the photo resized with
                          cv2.INTER_AREA here, so MediaPipe's own resize is the identity)
    expected.safetensors  mask float32 [1, h, w]: the model's sigmoid output at its resolution
Tests/Fixtures/segmentation/<photo>_<model>.png
                          MediaPipe's whole pipeline on the full-size photo (its own resize to the
                          model, the model, its bilinear resize of the mask back): the mask as a 16-bit
                          grayscale PNG (value = round(p * 65535)); compact, for frame-level checks.

How MediaPipe is run: `mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0|1)`, whose
CPU graph (selfie_segmentation_cpu.binarypb) is ImageToTensorCalculator (stretch to 256x256 or 256x144,
float range [0, 1], RGB) -> InferenceCalculator (TFLite + XNNPACK with MediaPipe's custom op resolver,
which provides Convolution2DTransposeBias) -> TensorsToSegmentationCalculator (activation NONE, so the
model's own sigmoid output, cv::resize INTER_LINEAR to the input size) -> segmentation_mask. Fed an image
of exactly the model size, both resizes are identities and segmentation_mask is the raw model output.
The graph loads the .tflite shipped inside the installed wheel; this script checks that those bytes are
the same as the asset files the Swift side reads.
"""
import argparse
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import mediapipe as mp

ROOT = Path(__file__).resolve().parent.parent
MODELS = {0: "selfie_segmentation.tflite", 1: "selfie_segmentation_landscape.tflite"}


def save_safetensors(path: Path, tensors: dict, metadata: dict) -> None:
    """Writes the safetensors format directly (this venv has no safetensors package)."""
    codes = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        data = array.tobytes()
        header[name] = {"dtype": codes[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_same_models(assets: Path) -> None:
    """The graph runs the wheel's copy of each model; it must be the file the Swift side reads."""
    package = Path(mp.__file__).parent / "modules" / "selfie_segmentation"
    for name in MODELS.values():
        ours, theirs = assets / "models" / name, package / name
        if not ours.exists():
            sys.exit(f"{ours} is missing: run `make setup`")
        if sha256(ours) != sha256(theirs):
            sys.exit(f"{ours} differs from MediaPipe's {theirs}")


def segment(rgb: np.ndarray, model_selection: int) -> np.ndarray:
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=model_selection) as segmenter:
        mask = segmenter.process(rgb).segmentation_mask
    return np.asarray(mask, dtype=np.float32)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # gray photos come back as 3 equal channels
    if image is None:
        sys.exit(f"cannot read {path}: run `make setup`")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=Path, default=Path(os.environ.get(
        "BACKDROP_ASSETS", Path.home() / ".cache/backdrop/assets")))
    parser.add_argument("--out", type=Path, default=ROOT / "Tests/Fixtures")
    args = parser.parse_args()
    check_same_models(args.assets)

    astronaut = read_rgb(args.assets / "photos/astronaut.png")  # 512x512
    camera = read_rgb(args.assets / "photos/camera.png")  # 512x512, gray
    # A 16:9 video-call framing of the astronaut (head and shoulders, 512x288) for the landscape model.
    astronaut_wide = np.ascontiguousarray(astronaut[:288])
    metadata = {"generator": "tools/make_segmentation_fixtures.py", "mediapipe": mp.__version__,
                "opencv": cv2.__version__}

    # Parity cases: the model size, so that the comparison is the network alone.
    cases = [("selfie_astronaut", astronaut, 0, (256, 256)),
             ("selfie_landscape_astronaut", astronaut_wide, 1, (144, 256))]
    for name, photo, selection, (h, w) in cases:
        image = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        mask = segment(image, selection)
        assert mask.shape == (h, w), mask.shape
        folder = args.out / "parity" / name
        folder.mkdir(parents=True, exist_ok=True)
        case = {"component": "selfie_segmentation", "model": f"$BACKDROP_ASSETS/models/{MODELS[selection]}",
                "atol": 1e-3, "rtol": 0.0, "args": {"min_iou": 0.99, "threshold": 0.5}}
        (folder / "case.json").write_text(json.dumps(case, indent=2) + "\n")
        save_safetensors(folder / "inputs.safetensors", {"image": image[None]}, metadata)
        save_safetensors(folder / "expected.safetensors", {"mask": mask[None]}, metadata)
        print(f"{folder.relative_to(ROOT)}: image {image.shape}, mask mean {mask.mean():.4f}")

    # Frame-level references: MediaPipe's whole pipeline on full-size photos.
    folder = args.out / "segmentation"
    folder.mkdir(parents=True, exist_ok=True)
    frames = [("astronaut_selfie", astronaut, 0), ("camera_selfie", camera, 0),
              ("astronaut_wide_landscape", astronaut_wide, 1)]
    for name, photo, selection in frames:
        mask = segment(photo, selection)
        assert mask.shape == photo.shape[:2], mask.shape
        png = np.round(np.clip(mask, 0, 1) * 65535).astype(np.uint16)
        cv2.imwrite(str(folder / f"{name}.png"), png, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"{(folder / name).relative_to(ROOT)}.png: {mask.shape}, mean {mask.mean():.4f}")
    (folder / "frames.json").write_text(json.dumps({
        "generator": metadata["generator"], "mediapipe": mp.__version__, "opencv": cv2.__version__,
        "frames": {name: {"photo": "astronaut.png" if "astronaut" in name else "camera.png",
                          "crop_rows": 288 if "wide" in name else None,
                          "model": MODELS[selection]} for name, _, selection in frames},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
