#!/usr/bin/env python3
"""The untrained in-domain CLIP that `make pretrain` trains (docs/metrics.md#in-domain-clip): a
transformers `CLIPModel` folder (`save_pretrained` layout) with transformers' own initial weights,
the real CLIP BPE tokenizer (SD2's, 77 tokens) and a `preprocessor_config.json` for 64² views, which
the CLIP score then applies to generated views unchanged (a 64² image is neither resized nor
cropped). Deterministic: the same seed writes the same weights.

    python tools/make_clip_init.py --out DIR [--seed 0]
"""
import argparse
import pathlib
import shutil
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from parity.text import read_merges, write_tokenizer_folder  # noqa: E402

SIZE = 64
TEXT = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
            max_position_embeddings=77, hidden_act="quick_gelu")
# ViT with 8² patches: 64 patches and a class token per view.
VISION = dict(image_size=SIZE, patch_size=8, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
              num_attention_heads=4, hidden_act="quick_gelu")
PROCESSOR = dict(do_resize=True, size={"shortest_edge": SIZE}, resample=3, do_center_crop=True,
                 crop_size={"height": SIZE, "width": SIZE}, do_rescale=True, rescale_factor=1 / 255,
                 do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
                 image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    torch.manual_seed(args.seed)
    staging = args.out.with_name(args.out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    write_tokenizer_folder(staging / "tokenizer-source", read_merges(), "sd2")
    tokenizer = CLIPTokenizer.from_pretrained(str(staging / "tokenizer-source"))
    config = CLIPConfig(text_config=dict(vocab_size=len(tokenizer.get_vocab()), **TEXT), vision_config=VISION,
                        projection_dim=128)
    model = CLIPModel(config).eval()
    model.save_pretrained(str(staging / "model"))
    tokenizer.save_pretrained(str(staging / "model"))
    CLIPImageProcessor(**PROCESSOR).save_pretrained(str(staging / "model"))
    shutil.rmtree(args.out, ignore_errors=True)
    (staging / "model").rename(args.out)
    shutil.rmtree(staging)
    print(f"wrote an untrained CLIPModel to {args.out}")


if __name__ == "__main__":
    main()
