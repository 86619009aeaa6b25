#!/usr/bin/env python3
"""A tiny Stable-Diffusion-shaped model folder (diffusers `save_pretrained` layout) with random,
seeded weights, for the smoke training run and `make demo` on a CPU: the real SD2 tokenizer
vocabulary, a 2-layer CLIP text encoder, an SD2-style UNet whose widths suit CAA (32, 64) and an
8× VAE. Deterministic: the same seed writes the same weights.

    python tools/make_tiny_sd.py --out DIR [--seed 0]
"""
import argparse
import pathlib
import shutil
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from parity.text import read_merges, write_tokenizer_folder  # noqa: E402

UNET = dict(block_out_channels=[32, 64], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], layers_per_block=1, attention_head_dim=[2, 2],
            cross_attention_dim=32, use_linear_projection=True, norm_num_groups=8, sample_size=8)
VAE = dict(block_out_channels=[16, 16, 32, 32], down_block_types=["DownEncoderBlock2D"] * 4,
           up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, norm_num_groups=8, sample_size=64,
           layers_per_block=1)
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(args.seed)
    staging = args.out.with_name(args.out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    write_tokenizer_folder(staging / "tokenizer-source", read_merges(), "sd2")
    tokenizer = CLIPTokenizer.from_pretrained(str(staging / "tokenizer-source"))
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer.get_vocab()), hidden_size=32,
                                                intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                max_position_embeddings=77, hidden_act="gelu")).eval()
    pipe = StableDiffusionPipeline(vae=AutoencoderKL(**VAE).eval(), text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=UNet2DConditionModel(**UNET).eval(), scheduler=DDIMScheduler(**SCHEDULER),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(staging / "model"))
    shutil.rmtree(args.out, ignore_errors=True)
    (staging / "model").rename(args.out)
    shutil.rmtree(staging)
    print(f"wrote a tiny SD model to {args.out}")


if __name__ == "__main__":
    main()
