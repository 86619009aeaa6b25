#!/usr/bin/env python3
"""Independent reference for the "ground-truth views through the VAE" consistency row
(Sources/Workflows/RunEvaluator.swift, docs/metrics.md#consistency-through-the-vae).

    python tools/vae_round_trip_reference.py VIEWS.safetensors VAE_FOLDER OUT.safetensors

VIEWS.safetensors is consistency_reference.py's input (uint8 `views` [S, V, 3, H, W], `yaws`, `fov`).
Each view goes through diffusers' AutoencoderKL from VAE_FOLDER (fp32): x = u8 / 127.5 - 1, the
posterior mean decoded, back to uint8 as round(clamp((y + 1) / 2, 0, 1) * 255). OUT.safetensors is
the same file with the decoded views, for consistency_reference.py to score.
"""
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL
from safetensors.numpy import load_file, save_file


def main():
    data = load_file(sys.argv[1])
    vae = AutoencoderKL.from_pretrained(sys.argv[2], torch_dtype=torch.float32).eval()
    views = torch.from_numpy(data["views"])
    scenes, count = views.shape[:2]
    x = views.flatten(0, 1).to(torch.float32) / 127.5 - 1
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mean).sample
    decoded = (((y + 1) / 2).clamp(0, 1) * 255).round().to(torch.uint8)
    data["views"] = decoded.reshape(scenes, count, *decoded.shape[1:]).numpy()
    save_file(data, sys.argv[3])


if __name__ == "__main__":
    main()
