#!/usr/bin/env python3
"""Reference fixtures for Backdrop's DeepLabV3 (Sources/VirtualBackground/DeepLab): torchvision 0.14's
deeplabv3_resnet50, deeplabv3_resnet101 and deeplabv3_mobilenet_v3_large with random, seeded weights,
their state dicts as `torch.save` files, and their outputs on a real photo.

    python tools/make_deeplab_fixtures.py --out DIR [--seed 0] [--image PNG]

Writes into DIR (about 470 MB, so generated into the cache by `make models`, never committed):
- deeplabv3_resnet50.pth, deeplabv3_resnet101.pth, deeplabv3_mobilenet_v3_large.pth:
  `torch.save(model.state_dict())`, all three with the aux classifier, as torchvision's COCO weights have it.
- reference.safetensors:
  `image` uint8 [3, 112, 150], a crop of the real photo (scikit-image's astronaut, public domain);
  `input` the weights transform's output for it (SemanticSegmentation, resize_size=128) [1, 3, 128, 171];
  `input_520` the same with the transform's default resize_size=520 [1, 3, 520, 696];
  `<variant>.out`, `<variant>.aux` the model's logits [1, 21, 128, 171] on `input`;
  `<variant>.person` softmax over the classes, class 15 (person) [1, 128, 171].
- manifest.json: versions, and per variant its file and every state-dict key with its shape.

Random weights: torchvision's own initialisation for the convolutions; batch-norm affine parameters
drawn at random, and running statistics measured in training mode on crops of the photo and then
perturbed, so that every normalisation matters and activations keep a realistic scale through 101 layers.
"""
import argparse
import functools
import inspect
import json
import os
import pathlib

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from torchvision.models.segmentation import (deeplabv3_mobilenet_v3_large, deeplabv3_resnet50,
                                             deeplabv3_resnet101)
from torchvision.models.segmentation.deeplabv3 import DeepLabV3_ResNet50_Weights

VARIANTS = {
    "resnet50": deeplabv3_resnet50,
    "resnet101": deeplabv3_resnet101,
    "mobilenet_v3_large": deeplabv3_mobilenet_v3_large,
}
PERSON = 15
SMALL = 128


def randomise_batch_norms(model, calibration, generator):
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in norms:
            bn.weight.uniform_(0.5, 1.5, generator=generator)
            bn.bias.normal_(0, 0.2, generator=generator)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()
        for batch in calibration:
            model(batch)
        model.eval()
        for bn in norms:
            std = bn.running_var.sqrt()
            bn.running_mean.add_(0.1 * std * torch.randn(std.shape, generator=generator))
            bn.running_var.mul_(torch.empty_like(std).uniform_(0.8, 1.25, generator=generator))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    assets = pathlib.Path(os.environ.get("BACKDROP_ASSETS", pathlib.Path.home() / ".cache/backdrop/assets"))
    parser.add_argument("--image", type=pathlib.Path, default=assets / "photos/astronaut.png")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    photo = Image.open(args.image).convert("RGB")
    # The upper 3/4 (face, suit, flag) at a small, non-square size: the shorter side is the height.
    small = photo.crop((0, 0, 512, 384)).resize((150, 112), Image.BILINEAR)
    image = torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1).contiguous()
    transform = DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1.transforms
    if "antialias" in inspect.signature(transform.func).parameters:
        # torchvision ≥ 0.17 antialiases tensor resizes by default; the transform Backdrop reproduces
        # (torchvision 0.14's, beside Debian's torch 1.13) does not, so a newer torchvision is held to it.
        transform = functools.partial(transform, antialias=False)
    preprocess = transform(resize_size=SMALL)
    x = preprocess(image).unsqueeze(0)
    x520 = transform()(image).unsqueeze(0)  # the weights' default transform (resize_size=520)

    # Calibration: the photo at several crops and flips, never the evaluated input itself.
    tiles = []
    for left, top in [(0, 0), (64, 96), (128, 32), (32, 128)]:
        crop = photo.crop((left, top, left + 384, top + 288)).resize((171, 128), Image.BILINEAR)
        t = torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1)
        tiles += [t, t.flip(-1)]
    calibration = [preprocess(torch.stack(tiles[i:i + 4])) for i in range(0, len(tiles), 4)]

    args.out.mkdir(parents=True, exist_ok=True)
    tensors = {"image": image, "input": x.contiguous(), "input_520": x520.contiguous()}
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__, "seed": args.seed,
                "image": args.image.name, "resize_size": SMALL, "person_class": PERSON, "variants": {}}
    for name, build in VARIANTS.items():
        model = build(weights=None, weights_backbone=None, aux_loss=True)
        randomise_batch_norms(model, calibration, generator)
        with torch.no_grad():
            result = model(x)
        out, aux = result["out"], result["aux"]
        tensors[f"{name}.out"] = out.contiguous()
        tensors[f"{name}.aux"] = aux.contiguous()
        tensors[f"{name}.person"] = out.softmax(dim=1)[:, PERSON].contiguous()
        path = args.out / f"deeplabv3_{name}.pth"
        torch.save(model.state_dict(), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
        manifest["variants"][name] = {"file": path.name, "logit_scale": float(out.abs().max()),
                                      "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}
        print(f"{name}: {len(model.state_dict())} tensors, max |logit| {out.abs().max():.3f}")
    save_file(tensors, str(args.out / "reference.safetensors"))
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
