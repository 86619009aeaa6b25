#!/usr/bin/env python3
"""Python side of Backdrop's multi-view export and import tests (reference environment).

    python tools/multiview_reference.py --check-export DIR
        loads DIR's TorchScript graphs with torch.jit.load, runs them on DIR/io.safetensors' inputs,
        compares with the Swift outputs stored there, and checks that named_parameters() lists the
        names in DIR/names.json. Exit status 0 only when all agree.
    python tools/multiview_reference.py --fake-mvdiffusion-ckpt PATH --widths 32,64
        writes a Lightning-style checkpoint laid out like MVDiffusion's pano.ckpt (state_dict with
        mv_base_model.unet.*, mv_base_model.cp_blocks_{encoder,mid,decoder}.*, text_encoder.*, vae.*;
        epoch, global_step, hyper_parameters) with random CAA tensors, and PATH.expected.safetensors
        holding the CAA tensors under Backdrop's keys.
"""
import argparse
import collections
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file, save_file


def check_export(directory):
    d = pathlib.Path(directory)
    io = load_file(str(d / "io.safetensors"))
    names = json.loads((d / "names.json").read_text())
    failures = []
    for graph, inputs in [("unet_multiview", ["latents", "timestep", "context"]), ("vae_decoder", ["vae_latents"]),
                          ("text_encoder", ["input_ids"])]:
        module = torch.jit.load(str(d / f"{graph}.pt"))
        with torch.no_grad():
            out = module(*[io[i] for i in inputs])
        err = (out - io[f"{graph}.output"]).abs().max().item()
        print(f"{graph}: torch.jit.load output max-abs {err:.3g}")
        if not err <= 1e-4:
            failures.append(f"{graph}: output differs by {err}")
        got = sorted(n for n, _ in module.named_parameters())
        if got != sorted(names[graph]):
            failures.append(f"{graph}: parameter names differ ({len(got)} vs {len(names[graph])})")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


def fake_checkpoint(path, widths):
    g = torch.Generator().manual_seed(5)
    state = collections.OrderedDict()
    state["mv_base_model.unet.conv_in.weight"] = torch.randn(widths[0], 4, 3, 3, generator=g)
    blocks = [f"cp_blocks_encoder.{i}" for i in range(len(widths))] + ["cp_blocks_mid"] + \
             [f"cp_blocks_decoder.{i}" for i in range(len(widths))]
    channels = widths + [widths[-1]] + widths[::-1]
    expected = {}
    for block, c in zip(blocks, channels):
        shapes = {
            "transformer.attn1.to_q.weight": (c, c), "transformer.attn1.to_k.weight": (c, c),
            "transformer.attn1.to_v.weight": (c, c), "transformer.attn1.to_out.weight": (c, c),
            "transformer.attn1.to_out.bias": (c,), "transformer.ff.net.0.proj.weight": (8 * c, c),
            "transformer.ff.net.0.proj.bias": (8 * c,), "transformer.ff.net.2.weight": (c, 4 * c),
            "transformer.ff.net.2.bias": (c,), "transformer.norm1.weight": (c,), "transformer.norm1.bias": (c,),
            "transformer.norm2.weight": (c,), "transformer.norm2.bias": (c,), "pe.freq_bands": (1, 1, c // 4),
        }
        for key, shape in shapes.items():
            tensor = torch.randn(*shape, generator=g) * 0.05
            if key == "pe.freq_bands":
                tensor = (2.0 ** torch.linspace(0, c // 4 - 1, c // 4))[None, None]
            state[f"mv_base_model.{block}.{key}"] = tensor
            expected[f"{block}.{key}"] = tensor
    state["text_encoder.text_model.final_layer_norm.weight"] = torch.ones(8)
    state["vae.decoder.conv_out.bias"] = torch.zeros(3)
    checkpoint = {"epoch": 9, "global_step": 98200, "pytorch-lightning_version": "1.9.0",
                  "state_dict": state, "hyper_parameters": {"lr": 2e-4, "views": 8},
                  "optimizer_states": [], "lr_schedulers": []}
    torch.save(checkpoint, path)
    save_file({k: v.contiguous() for k, v in expected.items()}, str(path) + ".expected.safetensors")
    print(f"wrote {len(state)} tensors to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-export", metavar="DIR")
    parser.add_argument("--fake-mvdiffusion-ckpt", metavar="PATH")
    parser.add_argument("--widths", default="32,64")
    args = parser.parse_args()
    if args.check_export:
        sys.exit(check_export(args.check_export))
    fake_checkpoint(pathlib.Path(args.fake_mvdiffusion_ckpt), [int(w) for w in args.widths.split(",")])
