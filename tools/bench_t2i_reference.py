#!/usr/bin/env python3
"""PyTorch half of `backdrop-bench --text-to-image` (TextToImageBench.swift): one training step of
the miniature SD in diffusers and transformers — UNet and CLIP text encoder built from a model
folder's configs, ε-MSE on a batch of latents, AdamW — with the text encoder trained beside the UNet
(stage 2) or frozen under no_grad (--frozen-text 1, stages 2c and 2d), timed as every other workload
(median after warm-up, wall and process CPU). Prints JSON.

    python tools/bench_t2i_reference.py --model DIR [--batch 32] [--threads 2] [--repeats 3] [--frozen-text 0|1]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from bench_reference import median_times, memory_field, reset_peak  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frozen-text", type=int, choices=(0, 1), default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    before = reset_peak()
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(args.model, subfolder="unet")).train()
    text = CLIPTextModel(CLIPTextConfig.from_pretrained(args.model, subfolder="text_encoder"))
    if args.frozen_text:
        text.eval().requires_grad_(False)
    else:
        text.train()
    size = unet.config.sample_size
    latents = torch.randn(args.batch, unet.config.in_channels, size, size)
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, 1000, (args.batch,))
    ids = torch.randint(0, text.config.vocab_size, (args.batch, 77))
    trained = list(unet.parameters()) + ([] if args.frozen_text else list(text.parameters()))
    optimizer = torch.optim.AdamW(trained, lr=1e-4, weight_decay=0.01)
    baseline = reset_peak()

    def step():
        with torch.set_grad_enabled(not args.frozen_text):
            context = text(ids).last_hidden_state
        prediction = unet(latents, timesteps, context).sample
        F.mse_loss(prediction, noise).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds, cpu_seconds = median_times(step, args.repeats, 1)
    json.dump({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_bytes": memory_field("VmHWM") - baseline,
               "model_bytes": baseline - before}, sys.stdout)


if __name__ == "__main__":
    main()
