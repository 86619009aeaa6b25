"""Parity cases for the CLIP score (component `clip`, docs/parity.md), and the reference for the
CLIP image preprocessing test.

`make_cases(out_dir, full)` writes random-weight transformers 4.40.2 `CLIPModel` folders (config.json,
model.safetensors, a tokenizer built from OpenAI's BPE vocabulary `$BACKDROP_ASSETS/clip/
bpe_simple_vocab_16e6.txt.gz` truncated to MERGES merges, preprocessor_config.json) and runs torchmetrics'
CLIP-score steps on REAL images (photos and panorama crops from `$BACKDROP_ASSETS`):
`CLIPProcessor(images=[uint8 CHW tensors])` → `get_image_features`; `tokenizer(prompts, padding=True)`
cut at max_position_embeddings → `get_text_features`; 100·cos; the mean clamped at 0. torchmetrics
itself is not installed in the reference venv: `torchmetrics_clip_score` below is its
`_clip_score_update`/`clip_score` arithmetic line for line (torchmetrics 1.x).

- `clip_quick_gelu_legacy_eos`: OpenAI-style config (quick_gelu, `eos_token_id: 2`, so transformers
  pools at the largest id), two 200×150 landscape crops (upscaled to 224 by Pillow bicubic), a short
  prompt and one longer than 77 tokens (cut without its end token).
- `clip_gelu`: gelu, eps 1e-6, the real end-token id (pools at the first end token; position 0 for the
  cut prompt), one 228×240 portrait crop (downscaled to 224×235: Pillow's widened filter); its score is
  negative, so the clamp of the mean shows.
Expected: `image_embeds`, `text_embeds` [N, E] (projected, not normalised), `score` [N] (100·cos),
`mean` [] (torchmetrics' clamped mean). atol 1e-3.

As a script (used by Tests/EvaluationTests/CLIPScoreTests.swift):
    python tools/parity/clip.py --preprocess DIR
writes DIR/preprocess.safetensors: for every real photo and panorama (and crops of other aspect ratios,
some smaller than 224 so they are upscaled) `<name>.image` uint8 [3, H, W], `<name>.resized` uint8
[3, h, w] (transformers' Pillow resize, before the crop) and `<name>.pixel_values` float32 [3, 224, 224]
(`CLIPImageProcessor()` output); and `filter<code>_<h>x<w>.resized`: `astronaut_small` resized by
Pillow with each other filter (1 lanczos, 2 bilinear, 4 box, 5 hamming) to 71×53 and 203×311.
"""
import json
import os
import pathlib
import sys

import numpy as np
import torch
from safetensors.torch import save_file

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from parity.text import read_merges, write_case, write_tokenizer_folder  # noqa: E402

CLIP_TOLERANCE = 1e-3  # max-abs on embeddings and scores (issue 5)
MERGES = 200           # merges kept in the committed tokenizers (vocab 2·256 + MERGES + 2)

LONG_PROMPT = ("a wide panorama of a bright scandinavian living room with oak floors, a grey sofa, plants, "
               "large windows, warm afternoon light, a wooden table, white walls, a rug, shelves with books, "
               "a lamp, a fireplace, paintings, a view of a garden, soft shadows, ultra realistic, highly "
               "detailed, cinematic, 8k, trending, sharp focus")

CASES = {
    "clip_quick_gelu_legacy_eos": dict(
        text=dict(hidden_size=12, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                  hidden_act="quick_gelu", eos_token_id=2),
        vision=dict(hidden_size=12, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                    image_size=224, patch_size=14, hidden_act="quick_gelu"),
        projection_dim=12,
        crops=[("astronaut", (60, 40, 260, 190)), ("interior", (300, 180, 500, 330))],
        prompts=["an astronaut in a white suit", LONG_PROMPT],
        seed=50),
    "clip_gelu": dict(
        text=dict(hidden_size=12, intermediate_size=24, num_hidden_layers=2, num_attention_heads=3,
                  hidden_act="gelu", layer_norm_eps=1e-6),
        vision=dict(hidden_size=12, intermediate_size=36, num_hidden_layers=2, num_attention_heads=2,
                    image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-6),
        projection_dim=10,
        crops=[("camera", (150, 100, 378, 340))],
        prompts=[LONG_PROMPT + ", photographer with a camera"],
        seed=51),
}


def assets():
    return pathlib.Path(os.environ.get("BACKDROP_ASSETS") or pathlib.Path.home() / ".cache/backdrop/assets")


def real_image(name):
    from PIL import Image
    for folder in ("photos", "panoramas"):
        path = assets() / folder / f"{name}.png"
        if path.exists():
            return Image.open(path).convert("RGB")
    raise SystemExit(f"{name}.png is missing under {assets()}/photos or panoramas: run `make setup`")


def chw(image):
    """A PIL image as uint8 [3, H, W]."""
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()


def torchmetrics_clip_score(images, prompts, model, processor):
    """torchmetrics' `_clip_score_update` (images: list of uint8 [3, H, W]) and `clip_score`'s reduction:
    the unnormalised features, the per-pair scores and the clamped mean."""
    processed = processor(images=[i.cpu() for i in images], return_tensors="pt", padding=True)
    image_features = model.get_image_features(processed["pixel_values"])
    processed = processor(text=prompts, return_tensors="pt", padding=True)
    limit = model.config.text_config.max_position_embeddings
    if processed["attention_mask"].shape[-1] > limit:
        processed["attention_mask"] = processed["attention_mask"][..., :limit]
        processed["input_ids"] = processed["input_ids"][..., :limit]
    text_features = model.get_text_features(processed["input_ids"], processed["attention_mask"])
    a = image_features / image_features.norm(p=2, dim=-1, keepdim=True)
    b = text_features / text_features.norm(p=2, dim=-1, keepdim=True)
    score = 100 * (a * b).sum(axis=-1)
    mean = score.mean(0)
    return image_features, text_features, score, torch.max(mean, torch.zeros_like(mean)), processed["input_ids"]


def clip_case(out_dir, name, text, vision, projection_dim, crops, prompts, seed):
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer,
                              CLIPTokenizerFast)
    case_dir = pathlib.Path(out_dir) / name
    staging = pathlib.Path(out_dir) / f".staging_{name}"
    if staging.exists():
        import shutil
        shutil.rmtree(staging)
    write_tokenizer_folder(staging, read_merges(MERGES), "sd1")
    vocab = len(json.loads((staging / "vocab.json").read_text()))
    text = dict(text, vocab_size=vocab, max_position_embeddings=77, bos_token_id=vocab - 2, pad_token_id=vocab - 1)
    text.setdefault("eos_token_id", vocab - 1)

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # norms start at 1/0 and biases at 0: make each one count
            if parameter.ndim == 1:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))

    tokenizer = CLIPTokenizer.from_pretrained(str(staging))
    assert tokenizer.fix_text is None, "ftfy is installed: the reference path would differ"
    # torchmetrics' CLIPProcessor loads the fast tokenizer; for these prompts both give the same ids.
    fast = CLIPTokenizerFast.from_pretrained(str(staging))
    assert fast(prompts, padding=True).input_ids == tokenizer(prompts, padding=True).input_ids, "fast ≠ slow ids"
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)

    images = [chw(real_image(source).crop(box)) for source, box in crops]
    with torch.no_grad():
        image_embeds, text_embeds, score, mean, ids = torchmetrics_clip_score(images, prompts, model, processor)
    print(f"  {name}: images {[tuple(i.shape) for i in images]}, ids {tuple(ids.shape)}, "
          f"scores {[round(s, 3) for s in score.tolist()]}, mean {mean.item():.3f}")

    def save(folder):
        model.save_pretrained(folder)
        processor.image_processor.save_pretrained(folder)
        for path in staging.iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
    write_case(case_dir, "clip", {"images": torch.stack(images)},
               {"image_embeds": image_embeds, "text_embeds": text_embeds, "score": score, "mean": mean},
               atol=CLIP_TOLERANCE, rtol=0, args={"prompts": prompts}, model=save)
    import shutil
    shutil.rmtree(staging)


def make_cases(out_dir: pathlib.Path, full: bool = False):
    """Writes the `clip` cases under `out_dir` (none at full size: no CLIP weights are reachable)."""
    if full:
        return
    torch.set_num_threads(1)
    for name, case in CASES.items():
        clip_case(out_dir, name, **case)


# MARK: preprocessing reference

def preprocessing_reference(directory):
    from PIL import Image
    from transformers import CLIPImageProcessor
    from transformers.image_transforms import get_resize_output_image_size, resize
    from transformers.image_utils import ChannelDimension, PILImageResampling
    processor = CLIPImageProcessor()
    paths = sorted((assets() / "photos").glob("*.png")) + sorted((assets() / "panoramas").glob("*.png"))
    if not paths:
        raise SystemExit(f"no real images under {assets()}/photos or panoramas: run `make setup`")
    images = {}
    for path in paths:
        rgb = Image.open(path).convert("RGB")
        images[path.stem] = rgb
    # Other aspect ratios and sizes: portrait, square, a thin strip, and crops below 224 (upscaled).
    w, h = images["astronaut"].size
    images["astronaut_portrait"] = images["astronaut"].crop((100, 0, 400, h))
    images["astronaut_small"] = images["astronaut"].crop((50, 60, 210, 180))
    images["interior_strip"] = images["interior"].crop((0, 200, 1024, 430))
    images["forest_tiny"] = images["forest"].crop((500, 250, 590, 400))
    tensors = {}
    for name, image in images.items():
        array = np.asarray(image)
        size = get_resize_output_image_size(array, size=224, default_to_square=False,
                                            input_data_format=ChannelDimension.LAST)
        resized = resize(array, size=size, resample=PILImageResampling.BICUBIC, input_data_format=ChannelDimension.LAST)
        pixels = processor(images=chw(image), return_tensors="pt")["pixel_values"][0]
        tensors[f"{name}.image"] = chw(image)
        tensors[f"{name}.resized"] = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).contiguous()
        tensors[f"{name}.pixel_values"] = pixels.contiguous()
    # Every other Pillow filter a preprocessor_config.json may name, down and up, on one real crop.
    for code in (1, 2, 4, 5):
        for w, h in ((53, 71), (311, 203)):
            tensors[f"filter{code}_{h}x{w}.resized"] = chw(images["astronaut_small"].resize((w, h), resample=code))
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "preprocess.safetensors"))
    print(f"wrote {len(images)} images to {out / 'preprocess.safetensors'}")


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preprocess", metavar="DIR", required=True, help="write the preprocessing reference here")
    preprocessing_reference(parser.parse_args().preprocess)
