#!/usr/bin/env python3
"""A small Stable-Diffusion-shaped model folder (diffusers `save_pretrained` layout) with random,
seeded weights in diffusers' and transformers' own initialisation, and the real SD2 tokenizer.
Deterministic: the same seed writes the same weights.

- `--preset tiny` (default): a 2-layer CLIP text encoder, an SD2-style UNet whose widths suit CAA
  (32, 64) and an 8× VAE, for the smoke training run and the tests (never trained).
- `--preset miniature`: the untrained starting point of the miniature SD that `make pretrain`
  trains (docs/models.md#miniature-sd): a 4× VAE for 64² views (16² latents), a three-level UNet
  (32, 64, 128 channels), a 4-layer text encoder of width 128, and the cosine noise schedule.

    python tools/make_tiny_sd.py --out DIR [--seed 0] [--preset tiny|miniature]
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
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=77, hidden_act="gelu")

# The miniature SD (docs/models.md#miniature-sd). 64² views through a 4× VAE give 16² latents, the
# size at which a UNet this small still sees a whole wall; heads of 32 channels as SD's are of 64.
# Widths are what two CPU cores can train for thousands of steps within the pretraining budget.
MINIATURE_UNET = dict(sample_size=16, block_out_channels=[32, 64, 128],
                      down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                      up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                      layers_per_block=1, attention_head_dim=[1, 2, 4], cross_attention_dim=128,
                      use_linear_projection=True, norm_num_groups=16)
MINIATURE_VAE = dict(block_out_channels=[32, 64, 128], down_block_types=["DownEncoderBlock2D"] * 3,
                     up_block_types=["UpDecoderBlock2D"] * 3, latent_channels=4, norm_num_groups=16, sample_size=64,
                     layers_per_block=1)
# The cosine schedule of Nichol & Dhariwal (diffusers' squaredcos_cap_v2), made for ε-prediction on small
# images: SD's scaled-linear one leaves a 16² latent recognisable at t = T (ᾱ_T = 0.0047), and DDPM's linear
# one spends its last 40 % of timesteps below SNR 0.01, where an ε error is multiplied by up to 150 in the
# image the sampler infers (docs/models.md#miniature-sd).
MINIATURE_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                           clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
MINIATURE_TEXT = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                      max_position_embeddings=77, hidden_act="gelu")
PRESETS = {"tiny": (UNET, VAE, SCHEDULER, TEXT), "miniature": (MINIATURE_UNET, MINIATURE_VAE, MINIATURE_SCHEDULER, MINIATURE_TEXT)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    args = parser.parse_args()
    unet, vae, scheduler, text = PRESETS[args.preset]
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(args.seed)
    staging = args.out.with_name(args.out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    write_tokenizer_folder(staging / "tokenizer-source", read_merges(), "sd2")
    tokenizer = CLIPTokenizer.from_pretrained(str(staging / "tokenizer-source"))
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer.get_vocab()), **text)).eval()
    pipe = StableDiffusionPipeline(vae=AutoencoderKL(**vae).eval(), text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=UNet2DConditionModel(**unet).eval(), scheduler=DDIMScheduler(**scheduler),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(staging / "model"))
    shutil.rmtree(args.out, ignore_errors=True)
    (staging / "model").rename(args.out)
    shutil.rmtree(staging)
    print(f"wrote a {args.preset} SD model to {args.out}")


if __name__ == "__main__":
    main()
