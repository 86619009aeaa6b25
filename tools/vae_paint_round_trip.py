#!/usr/bin/env python3
"""What a VAE does to the synthetic rooms' wall paints: each paint as a 64² wall band between a fixed
ceiling and floor, encoded to its posterior mean, decoded, and the band's mean colour compared.

    python tools/vae_paint_round_trip.py VAE_FOLDER

VAE_FOLDER is a diffusers AutoencoderKL folder (e.g. models/miniature/sd/vae). The paints are read
from the generator's own table (RoomScene.wallPaints in Sources/Datasets/Synth/RoomScene.swift), so
this tool cannot drift from it. Besides RGB it prints two opponent components, B − R (the warm–cool
axis the rooms' lights move colours along) and G − (R + B)/2 (green–magenta, which tells pink and
sage green from beige and grey): docs/models.md#what-bounds-the-miniature.
"""
import os
import re
import sys

import torch
from diffusers import AutoencoderKL

SCENE = os.path.join(os.path.dirname(__file__), "..", "Sources", "Datasets", "Synth", "RoomScene.swift")
CEILING, FLOOR = (0.55, 0.53, 0.50), (0.40, 0.30, 0.20)


def paints():
    source = open(SCENE).read()
    table = source[source.index("static let wallPaints"):]
    table = table[:table.index("]\n")]
    found = re.findall(r'Named\(name: "([^"]+)", rgb: \[([0-9., ]+)\]\)', table)
    if not found:
        sys.exit(f"no wall paints found in {SCENE}")
    return [(name, [float(v) for v in rgb.split(",")]) for name, rgb in found]


def opponent(rgb):
    r, g, b = rgb
    return b - r, g - (r + b) / 2


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    vae = AutoencoderKL.from_pretrained(sys.argv[1], torch_dtype=torch.float32).eval()
    print(f"{'paint':12s} {'in (0-255)':>16s} {'out':>16s}   {'B-R in':>7s} {'out':>6s}   {'G-(R+B)/2 in':>12s} {'out':>6s}")
    with torch.no_grad():
        for name, rgb in paints():
            image = torch.empty(1, 3, 64, 64)
            for rows, colour in ((slice(0, 12), CEILING), (slice(12, 44), rgb), (slice(44, 64), FLOOR)):
                image[:, :, rows] = torch.tensor(colour).view(1, 3, 1, 1) * 2 - 1
            decoded = vae.decode(vae.encode(image).latent_dist.mean).sample
            band = ((decoded[0, :, 16:38].mean((1, 2)).clamp(-1, 1) + 1) * 127.5).tolist()
            source = [v * 255 for v in rgb]
            (by_in, gm_in), (by_out, gm_out) = opponent(source), opponent(band)
            print(f"{name:12s} {str([round(v) for v in source]):>16s} {str([round(v) for v in band]):>16s}   "
                  f"{by_in:7.1f} {by_out:6.1f}   {gm_in:12.1f} {gm_out:6.1f}")


if __name__ == "__main__":
    main()
