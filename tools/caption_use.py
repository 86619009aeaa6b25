#!/usr/bin/env python3
"""How much a text-to-image model listens to its captions (docs/models.md#a-pretrained-text-encoder):
the ε-prediction error of a diffusers folder's UNet on latent-cache views at a few timesteps, with
each view's own caption, with another panorama's captions, and with the empty prompt. A model that
ignores its text scores the three alike.

    python tools/caption_use.py --model DIR --cache results/cache/mini_text_to_image.h5 [--panoramas 48]
"""
import argparse
import json

import h5py
import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--cache", required=True, help="a latent cache (`backdrop cache build`) made with this model's VAE encoder")
    parser.add_argument("--panoramas", type=int, default=48)
    parser.add_argument("--timesteps", type=int, nargs="+", default=[100, 300, 500, 700, 900])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    unet = UNet2DConditionModel.from_pretrained(args.model, subfolder="unet", torch_dtype=torch.float32).eval()
    encoder = CLIPTextModel.from_pretrained(args.model, subfolder="text_encoder", torch_dtype=torch.float32).eval()
    tokenizer = CLIPTokenizer.from_pretrained(args.model, subfolder="tokenizer")
    scheduler = DDPMScheduler.from_pretrained(args.model, subfolder="scheduler")
    with open(f"{args.model}/vae/config.json") as f:
        scale = json.load(f)["scaling_factor"]

    with h5py.File(args.cache, "r") as cache:
        count = cache["latent_mean"].shape[0]
        rows = np.linspace(0, count - 1, args.panoramas).astype(int)
        latents = torch.tensor(cache["latent_mean"][rows]).flatten(0, 1) * scale
        ids = torch.tensor(cache["token_ids"][rows]).flatten(0, 1)
    n, views = latents.shape[0], latents.shape[0] // args.panoramas
    empty = tokenizer([""], padding="max_length", max_length=ids.shape[1], return_tensors="pt").input_ids.repeat(n, 1)
    other = torch.roll(torch.arange(n), views * (args.panoramas // 2))  # the captions of a panorama far away
    print(f"{n} views; mean ε-prediction MSE per timestep with the view's own caption, another panorama's, the empty prompt")
    with torch.no_grad():
        contexts = {"own": encoder(ids)[0], "other": encoder(ids[other])[0], "empty": encoder(empty)[0]}
        for t in args.timesteps:
            noise = torch.randn_like(latents)
            timesteps = torch.full((n,), t, dtype=torch.long)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            errors = {}
            for name, context in contexts.items():
                prediction = torch.cat([unet(noisy[i:i + 64], timesteps[i:i + 64], encoder_hidden_states=context[i:i + 64]).sample
                                        for i in range(0, n, 64)])
                errors[name] = ((prediction - noise) ** 2).mean().item()
            gain = 100 * (1 - errors["own"] / errors["other"])
            print(f"t={t:4d}  own {errors['own']:.5f}  other {errors['other']:.5f}  empty {errors['empty']:.5f}"
                  f"  own below other by {gain:.1f} %")


if __name__ == "__main__":
    main()
