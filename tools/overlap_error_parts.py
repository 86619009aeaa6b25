#!/usr/bin/env python3
"""How much of the overlap error between neighbouring views is a difference of their mean colour.

    python tools/overlap_error_parts.py VIEWS_FOLDER [VIEWS_FOLDER ...]

Each VIEWS_FOLDER holds one sub-folder per scene with view_<i>.png and cameras.json, as `backdrop
eval` and `backdrop paper` store generated views. For every pair (i, i+1 mod V) the views are
warped and compared on their overlap exactly as tools/consistency_reference.py does; the squared
error is split into the overlap's per-channel mean offset (source mean minus target mean, squared)
and what is left after removing it. Prints per folder the pooled overlap PSNR, the offset's share of
the squared error, and the pooled PSNR with the offsets removed (docs/models.md#initial-noise).
"""
import json
import math
import os
import sys

import numpy as np
from PIL import Image

from consistency_reference import overlap


def cameras(scene):
    with open(os.path.join(scene, "cameras.json")) as f:
        views = json.load(f)["views"]
    return [(np.array(v["K"], dtype=np.float64).reshape(3, 3), np.array(v["R"], dtype=np.float64).reshape(3, 3)) for v in views]


def parts(folder):
    total = offset = 0.0
    pairs = 0
    for name in sorted(os.listdir(folder)):
        scene = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(os.path.join(scene, "cameras.json")):
            continue
        cams = cameras(scene)
        views = [np.asarray(Image.open(os.path.join(scene, f"view_{i}.png")).convert("RGB"), dtype=np.float64).transpose(2, 0, 1)
                 for i in range(len(cams))]
        for i, (k_i, r_i) in enumerate(cams):
            j = (i + 1) % len(cams)
            k_j, r_j = cams[j]
            sampled, reference = overlap(views[i], views[j], k_j @ np.linalg.inv(r_j) @ r_i @ np.linalg.inv(k_i))
            difference = sampled - reference
            total += float(np.mean(difference ** 2))
            offset += float(np.mean(difference.mean(axis=1) ** 2))
            pairs += 1
    return total / max(pairs, 1), offset / max(pairs, 1)


def psnr(mse):
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))


def main():
    for folder in sys.argv[1:]:
        total, offset = parts(folder)
        if total == 0:
            raise SystemExit(f"{folder}: no scenes with cameras.json")
        # Pooled over pairs (the mean of per-pair mean squared errors), so the dB differ from the metric's mean of per-pair dB.
        print(f"{folder}: overlap PSNR {psnr(total):.2f} dB pooled; mean-colour offset {100 * offset / total:.0f} % of the "
              f"squared error; {psnr(total - offset):.2f} dB with the offsets removed")


if __name__ == "__main__":
    main()
