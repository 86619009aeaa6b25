#!/usr/bin/env python3
"""Loads a model folder Backdrop wrote with the reference libraries and reports, as JSON, what each
component holds: the keys the library found missing or unexpected, and the float64 sum and sum of
squares of every parameter, for the Swift test to compare with its own weights.

    python tools/load_reference.py --diffusers DIR   UNet, VAE (diffusers), text encoder (transformers)
    python tools/load_reference.py --clip DIR        a transformers CLIPModel folder
"""
import argparse
import json


def summary(model, info):
    sums = {k: [float(v.double().sum()), float(v.double().pow(2).sum())] for k, v in model.state_dict().items()}
    return {"missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]), "sums": sums}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--diffusers")
    group.add_argument("--clip")
    args = parser.parse_args()
    out = {}
    if args.diffusers:
        from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
        from transformers import CLIPTextModel
        for name, cls in [("unet", UNet2DConditionModel), ("vae", AutoencoderKL), ("text_encoder", CLIPTextModel)]:
            model, info = cls.from_pretrained(args.diffusers, subfolder=name, output_loading_info=True)
            out[name] = summary(model, info)
        pipe = StableDiffusionPipeline.from_pretrained(args.diffusers, safety_checker=None)
        out["pipeline"] = type(pipe).__name__
        out["scaling_factor"] = pipe.vae.config.scaling_factor
    else:
        from transformers import CLIPModel
        model, info = CLIPModel.from_pretrained(args.clip, output_loading_info=True)
        out["clip"] = summary(model, info)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
