#!/usr/bin/env python3
"""Reference numbers for Backdrop's evaluation metrics (reference environment: `make venv`).

    python tools/make_eval_fixtures.py
        writes Tests/Fixtures/evaluation/: FID statistics with pytorch-fid's scipy-sqrtm distances,
        logits with torch-fidelity's Inception Score, NumPy permutations, TF1-style resizes.
    python tools/make_eval_fixtures.py --real-images DIR
        writes DIR/images.safetensors: real photos and panorama crops (uint8 [1, 3, H, W] each)
        from $BACKDROP_ASSETS, for the real-weights Inception test.
    python tools/make_eval_fixtures.py --parity-cases DIR
        writes `inception` parity cases (docs/parity.md) for the real FID Inception that `make setup`
        fetches (model `$BACKDROP_ASSETS/models/fid_inception_nvidia.pt`): real photo and panorama
        crops, expected pool3 features from the archive's own forward after torch-fidelity's TF1
        resize, and after pytorch-fid's resize.
    python tools/make_eval_fixtures.py --random-inception DIR
        writes DIR/weights.pth, a random-weight FID Inception in torchvision's key layout (with the
        1008-way classifier), and DIR/io.safetensors: input images and the outputs of torch-fidelity's
        FeatureExtractorInceptionV3 and pytorch-fid's InceptionV3 on them.
"""
import argparse
import json
import os
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "evaluation"


def fid_cases(tensors, expected):
    from pytorch_fid.fid_score import calculate_frechet_distance

    g = torch.Generator().manual_seed(0)
    cases = {
        "full_rank": (200, 32, 0.5),    # N samples, D dims, mean shift
        "shifted": (300, 48, 2.0),
        "singular": (12, 40, 0.3),      # N < D: singular covariances, the retry path
    }
    for name, (n, d, shift) in cases.items():
        # Stored as float32 (small files); the reference works on exactly those values in float64.
        a = torch.randn(n, d, generator=g).double()
        mix = torch.randn(d, d, generator=g).double() * 0.3
        b = (torch.randn(n, d, generator=g).double() @ (torch.eye(d, dtype=torch.float64) + mix) + shift).float().double()
        tensors[f"fid.{name}.a"] = a.float()
        tensors[f"fid.{name}.b"] = b.float()
        mu1, mu2 = a.numpy().mean(0), b.numpy().mean(0)
        s1, s2 = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
        expected[f"fid.{name}"] = float(calculate_frechet_distance(mu1, s1, mu2, s2))


def inception_score_cases(tensors, expected):
    from torch_fidelity.metric_isc import isc_features_to_metric

    g = torch.Generator().manual_seed(1)
    for name, (n, splits) in {"n100": (100, 10), "n57": (57, 5)}.items():
        logits = (torch.randn(n, 1008, generator=g) * 3).half()  # float16 keeps the fixture small
        logits = logits.float()
        tensors[f"is.{name}"] = logits.half()
        out = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=2020)
        expected[f"is.{name}"] = {"mean": out["inception_score_mean"], "std": out["inception_score_std"],
                                  "splits": splits}
    expected["numpy_permutation"] = {str(seed): np.random.RandomState(seed).permutation(n).tolist()
                                     for seed, n in [(2020, 100), (0, 7), (4294967295, 1000)]}


def resize_cases(tensors):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    g = torch.Generator().manual_seed(2)
    image = torch.randint(0, 256, (2, 3, 37, 53), generator=g, dtype=torch.uint8)
    tensors["resize.input"] = image
    for h, w in [(61, 45), (20, 31), (37, 53)]:
        tensors[f"resize.{h}x{w}"] = interpolate_bilinear_2d_like_tensorflow1x(
            image.float(), size=(h, w), align_corners=False)


def write_fixtures():
    OUT.mkdir(parents=True, exist_ok=True)
    tensors, expected = {}, {}
    fid_cases(tensors, expected)
    inception_score_cases(tensors, expected)
    resize_cases(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / "metrics.safetensors"))
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1))
    print(f"wrote {len(tensors)} tensors and {len(expected)} expected values to {OUT}")


def real_images():
    """Real photos and panorama crops of several sizes, uint8 [1, 3, H, W] each."""
    from PIL import Image

    assets = pathlib.Path(os.environ.get("BACKDROP_ASSETS", pathlib.Path.home() / ".cache/backdrop/assets"))
    paths = sorted((assets / "photos").glob("*.png")) + sorted((assets / "panoramas").glob("*.png"))[:3]
    if not paths:
        sys.exit(f"no real images under {assets}/photos or {assets}/panoramas: run `make setup`")
    images = {}
    for path in paths:
        rgb = Image.open(path).convert("RGB")
        images[path.stem] = rgb
        w, h = rgb.size
        images[path.stem + "_crop"] = rgb.crop((w // 5, h // 7, w // 5 + min(w, h) // 2, h // 7 + min(w, h) // 3))
    return {name: torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].contiguous()
            for name, im in images.items()}


def write_real_images(directory):
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    images = real_images()
    save_file(images, str(d / "images.safetensors"))
    print(f"wrote {len(images)} real images to {d}")


def random_fid_inception():
    """torchvision's Inception-v3 with pytorch-fid's FID blocks and random weights whose batch-norm
    statistics are calibrated on noise, so activations stay O(1) through all the blocks."""
    import torchvision
    from pytorch_fid import inception as pfi

    torch.manual_seed(3)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    model.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    model.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    model.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    model.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    model.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    model.Mixed_7b = pfi.FIDInceptionE_1(1280)
    model.Mixed_7c = pfi.FIDInceptionE_2(2048)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 299, 299))
    model.eval()
    return {k: v for k, v in model.state_dict().items() if not k.startswith("AuxLogits")}


def write_random_inception(directory):
    from pytorch_fid import inception as pfi
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = random_fid_inception()
    torch.save(state, d / "weights.pth")

    images = list(real_images().values())[:2]
    g = torch.Generator().manual_seed(4)
    images.append(torch.randint(0, 256, (1, 3, 180, 240), generator=g, dtype=torch.uint8))
    io = {f"image{i}": im for i, im in enumerate(images)}

    names = ["64", "192", "768", "2048", "logits_unbiased", "logits"]
    fidelity = FeatureExtractorInceptionV3("inception-v3-compat", names, feature_extractor_weights_path=str(d / "weights.pth"))
    fidelity.eval()
    pfi.load_state_dict_from_url = lambda *args, **kwargs: state  # pytorch-fid would download its weights
    pytorch_fid = pfi.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    with torch.no_grad():
        for i, image in enumerate(images):
            for name, value in zip(names, fidelity(image)):
                io[f"tf1.image{i}.{name}"] = value
            io[f"pytorch-fid.image{i}.2048"] = pytorch_fid(image.float() / 255)[0].flatten(1)
    save_file({k: v.contiguous() for k, v in io.items()}, str(d / "io.safetensors"))
    print(f"wrote a random FID Inception and {len(images)} reference cases to {d}")


def write_parity_cases(directory):
    import os
    import torch.nn.functional as F
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    assets = pathlib.Path(os.environ.get("BACKDROP_ASSETS", pathlib.Path.home() / ".cache/backdrop/assets"))
    archive = torch.jit.load(str(assets / "models" / "fid_inception_nvidia.pt")).eval()
    crops = [im[:, :, :96, :128] for name, im in sorted(real_images().items()) if "crop" in name][:3]
    images = torch.cat(crops)
    for resize in ["tf1", "pytorch-fid"]:
        x = images.float()
        if resize == "tf1":
            x = (interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False) - 128) / 128
        else:
            x = F.interpolate(x / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        with torch.no_grad():
            pool = archive(x)
        d = pathlib.Path(directory) / f"inception_nvidia_{resize.replace('-', '_')}"
        d.mkdir(parents=True, exist_ok=True)
        save_file({"images": images.contiguous()}, str(d / "inputs.safetensors"))
        save_file({"pool_2048": pool.contiguous()}, str(d / "expected.safetensors"))
        (d / "case.json").write_text(json.dumps({"component": "inception",
                                                 "model": "$BACKDROP_ASSETS/models/fid_inception_nvidia.pt",
                                                 "atol": 1e-4, "rtol": 0, "args": {"resize": resize}}, indent=1))
        print(f"wrote {d} ({images.shape[0]} real crops, {resize})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-images", metavar="DIR")
    parser.add_argument("--random-inception", metavar="DIR")
    parser.add_argument("--parity-cases", metavar="DIR")
    args = parser.parse_args()
    if args.parity_cases:
        write_parity_cases(args.parity_cases)
        sys.exit(0)
    if args.real_images:
        write_real_images(args.real_images)
    elif args.random_inception:
        write_random_inception(args.random_inception)
    else:
        write_fixtures()
