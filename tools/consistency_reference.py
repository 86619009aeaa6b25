#!/usr/bin/env python3
"""Independent reference for Backdrop's view-consistency metric (Sources/Evaluation/Consistency.swift).

    python tools/consistency_reference.py VIEWS.safetensors

VIEWS.safetensors holds `views` (uint8 [S, V, 3, H, W]: S scenes of V views), `yaws` (float64 [V],
degrees) and `fov` (float64 [1], horizontal degrees). Prints JSON {"pairs": [[dB per pair] per
scene], "scenes": [dB per scene], "mean": dB}.

The protocol, written from docs/metrics.md#consistency-psnr and docs/datasets.md#camera-conventions without Backdrop's geometry code: MVDiffusion's
cameras (f = W / (2 tan(fov/2)), principal point ((W-1)/2, (H-1)/2), R = Ry(yaw) camera-to-world);
view i is warped into view i+1 (mod V) by H = K R_{i+1}^-1 R_i K^-1, inverse-mapped with a
hand-written bilinear interpolation; the overlap is every target pixel whose source point is in
front of the camera and inside the pixel-centre hull [0, W-1] x [0, H-1]; PSNR = 10 log10(255^2 /
MSE) over the overlap and the three channels, capped at 100 dB; mean over pairs, then scenes.
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file

TOLERANCE = 1e-6
MAX_PSNR = 100.0


def intrinsics(fov, width, height):
    f = 0.5 * width / math.tan(math.radians(fov) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)


def yaw_rotation(degrees):
    t = math.radians(degrees)
    return np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]], dtype=np.float64)


def overlap(source, target, homography):
    """source, target: float64 [3, H, W]; homography maps source pixels to target pixels. Returns the
    source warped onto the overlap and the target's overlap pixels, both [3, N]."""
    _, height, width = target.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1)
    back = points @ np.linalg.inv(homography).T
    front = back[:, 2] > 1e-12
    w = np.where(front, back[:, 2], 1.0)
    x, y = back[:, 0] / w, back[:, 1] / w
    inside = front & (x >= -TOLERANCE) & (x <= width - 1 + TOLERANCE) & (y >= -TOLERANCE) & (y <= height - 1 + TOLERANCE)
    if not inside.any():
        raise SystemExit("views do not overlap")
    x, y = np.clip(x[inside], 0, width - 1), np.clip(y[inside], 0, height - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = x - x0, y - y0
    sampled = (source[:, y0, x0] * (1 - fx) * (1 - fy) + source[:, y0, x1] * fx * (1 - fy)
               + source[:, y1, x0] * (1 - fx) * fy + source[:, y1, x1] * fx * fy)
    return sampled, target.reshape(3, -1)[:, inside]


def pair_psnr(source, target, homography):
    sampled, reference = overlap(source, target, homography)
    mse = float(np.mean((sampled - reference) ** 2))
    return 10 * math.log10(255.0 ** 2 / max(mse, 255.0 ** 2 * 10 ** (-MAX_PSNR / 10)))


def main():
    data = load_file(sys.argv[1])
    views = data["views"].astype(np.float64)
    yaws = [float(v) for v in data["yaws"]]
    fov = float(data["fov"][0])
    _, count, _, height, width = views.shape
    k = intrinsics(fov, width, height)
    rotations = [yaw_rotation(y) for y in yaws]
    pairs = []
    for scene in views:
        row = []
        for i in range(count):
            j = (i + 1) % count
            h = k @ np.linalg.inv(rotations[j]) @ rotations[i] @ np.linalg.inv(k)
            row.append(pair_psnr(scene[i], scene[j], h))
        pairs.append(row)
    scenes = [sum(row) / len(row) for row in pairs]
    json.dump({"pairs": pairs, "scenes": scenes, "mean": sum(scenes) / len(scenes)}, sys.stdout)


if __name__ == "__main__":
    main()
