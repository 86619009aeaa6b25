#!/usr/bin/env python3
"""A `pipeline` parity case (docs/parity.md) for an existing diffusers model folder, such as one a
Backdrop run wrote: diffusers' StableDiffusionPipeline loads the folder as it is and runs from seeded
initial latents; expected are its final latents and their decoding. `backdrop parity CASE` then
checks that Backdrop, from the same latents, gives the same image (atol 1e-3 on the latents).

    python tools/make_pipeline_case.py --model DIR --out CASE_DIR [--prompt P] [--steps 10] [--guidance 5] [--seed 0]
"""
import argparse
import os
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from parity.pipeline import TOLERANCE, initial_latents, run  # noqa: E402
from parity.text import write_case  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--prompt", default="a bedroom with a pale blue wall and a window on the left")
    parser.add_argument("--negative-prompt", default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from diffusers import StableDiffusionPipeline
    torch.set_num_threads(1)
    # float32 whatever the storage: a shipped folder keeps fp16 weights, which Backdrop also runs in fp32.
    pipe = StableDiffusionPipeline.from_pretrained(str(args.model), safety_checker=None, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    case = dict(prompt=args.prompt, negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
                guidance_scale=args.guidance, height=size, width=size)
    latents = initial_latents(pipe, case, torch.Generator().manual_seed(args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_case(args.out, "pipeline", {"latents": latents}, run(pipe, case, latents), atol=TOLERANCE, rtol=0,
               args={k: v for k, v in case.items() if v is not None},
               model_path=os.path.relpath(args.model.resolve(), args.out.resolve()))
    print(f"wrote a pipeline case for {args.model} to {args.out}")


if __name__ == "__main__":
    main()
