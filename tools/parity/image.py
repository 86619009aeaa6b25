"""Parity cases for the image side of Stable Diffusion: `unet`, `vae_encode`, `vae_decode`
(format: docs/parity.md, i.e. CASE_DIR/{case.json, model/, inputs.safetensors, expected.safetensors}).

Models are diffusers 0.27 `UNet2DConditionModel` / `AutoencoderKL` with random weights, built from
small configs that each pin one piece of diffusers' behaviour, and saved with `save_pretrained`
(safetensors). `make_cases(out_dir, full=False)` writes the small committed cases (< 1 MB in all);
`full=True` writes SD 2-base-size models instead (several GB, for `make parity-full`).

Run standalone: `python tools/parity/image.py OUT_DIR [--full]`.
"""
import json
import pathlib
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

from diffusers import AutoencoderKL, UNet2DConditionModel

TOLERANCE = 1e-4  # max-abs, float32 (issue 3)

# Small UNets. Each names what it pins down.
UNET_CASES = {
    # SD2 layout: linear projections, attention_head_dim as a per-block list of HEAD COUNTS
    # (head width = channels / count, different per level), cross_attention_dim ≠ channels, and a
    # per-block layers_per_block list (up blocks take it reversed, plus one).
    "unet_sd2_linear": dict(
        config=dict(
            block_out_channels=[4, 8, 8],
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            layers_per_block=[2, 1, 1], attention_head_dim=[2, 4, 2], cross_attention_dim=12,
            use_linear_projection=True, norm_num_groups=4, sample_size=16,
        ),
        batch=2, size=(16, 16), context=7, timesteps=[999.0, 13.5],
    ),
    # SD1 layout: 1×1-conv projections, attention_head_dim an int (2 heads at every level), SD's
    # four levels and block kinds.
    "unet_sd1_conv": dict(
        config=dict(
            block_out_channels=[8, 8, 8, 8],
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            layers_per_block=1, attention_head_dim=2, cross_attention_dim=12, use_linear_projection=False,
            norm_num_groups=4, sample_size=16,
        ),
        batch=2, size=(16, 16), context=5, timesteps=[500.0, 500.0],
    ),
    # Odd everything: 3 groups, 3 heads, an odd sinusoid width (9, zero-padded), sin-before-cos with
    # freq_shift 1, two transformer layers per block, a mid-block output scale, and a latent size
    # that is not a multiple of the downsampling (the upsamplers get explicit output sizes).
    "unet_odd_groups": dict(
        config=dict(
            block_out_channels=[9, 9],
            down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
            layers_per_block=1, attention_head_dim=3, cross_attention_dim=5, use_linear_projection=False,
            norm_num_groups=3, flip_sin_to_cos=False, freq_shift=1, transformer_layers_per_block=2,
            mid_block_scale_factor=1.5, norm_eps=1e-6, sample_size=9,
        ),
        batch=2, size=(9, 11), context=3, timesteps=[1.0, 250.25],
    ),
    # SD 2.1's upcast_attention (float32 softmax; a no-op in float32, but the config must load).
    "unet_upcast": dict(
        config=dict(
            block_out_channels=[8, 8],
            down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
            layers_per_block=1, attention_head_dim=[2, 4], cross_attention_dim=8, use_linear_projection=True,
            upcast_attention=True, norm_num_groups=4, sample_size=8,
        ),
        batch=2, size=(8, 8), context=4, timesteps=[0.0, 999.0],
    ),
}

SMALL_VAE = dict(
    block_out_channels=[4, 8, 8],
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
    layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32,
)

SD2_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    layers_per_block=2, attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024,
    use_linear_projection=True, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0,
)

SD2_VAE = dict(
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512,
)


def reference(fn):
    """fn() without grad, run twice and checked to be finite and reproducible.

    torch 1.13's CPU `baddbmm` intermittently returns NaN for batched operands that are strided
    views (found with head width 2 and batch 1, where diffusers' `head_to_batch_dim` reshape does
    not copy), so a reference output is only trusted when two runs agree and are finite. The cases
    use batch 2, for which that reshape copies.
    """
    with torch.no_grad():
        first, second = fn(), fn()
    for a, b in zip(first, second):
        assert torch.isfinite(a).all(), "the reference output is not finite"
        assert torch.equal(a, b), "the reference output is not reproducible"
    return first


def randomize_vectors(model, generator, scale=0.1):
    """Default init leaves norms at weight 1 / bias 0 and many biases tiny: perturb every 1-D
    parameter so that a swapped or ignored weight/bias shows in the output."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(scale * torch.randn(parameter.shape, generator=generator))


def write_case(case_dir, component, model, inputs, expected, args=None, save_model=True):
    case_dir = pathlib.Path(case_dir)
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    if save_model:
        model.save_pretrained(case_dir / "model", safe_serialization=True)
    save_file({k: v.contiguous() for k, v in inputs.items()}, case_dir / "inputs.safetensors")
    save_file({k: v.contiguous() for k, v in expected.items()}, case_dir / "expected.safetensors")
    (case_dir / "case.json").write_text(json.dumps(
        {"component": component, "model": "model", "atol": TOLERANCE, "rtol": TOLERANCE, "args": args or {}},
        indent=2) + "\n")


def unet_case(out_dir, name, config, batch, size, context, timesteps, seed, vectors=True):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = UNet2DConditionModel(**config).eval()
    if vectors:
        randomize_vectors(model, generator)
    inputs = {
        "sample": torch.randn(batch, model.config.in_channels, *size, generator=generator),
        "timestep": torch.tensor(timesteps, dtype=torch.float32),
        "encoder_hidden_states": torch.randn(batch, context, model.config.cross_attention_dim, generator=generator),
    }
    sample, = reference(lambda: (model(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]).sample,))
    write_case(out_dir / name, "unet", model, inputs, {"sample": sample})


def vae_cases(out_dir, config, image_size, batch, seed, prefix="vae", old_keys=True):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = AutoencoderKL(**config).eval()
    randomize_vectors(model, generator)
    factor = 2 ** (len(config["block_out_channels"]) - 1)
    image = torch.rand(batch, 3, image_size, image_size, generator=generator) * 2 - 1
    latents = torch.randn(batch, config["latent_channels"], image_size // factor, image_size // factor,
                          generator=generator)
    mean, logvar = reference(lambda: (lambda d: (d.mean, d.logvar))(model.encode(image).latent_dist))
    decoded, = reference(lambda: (model.decode(latents).sample,))
    write_case(out_dir / f"{prefix}_encode", "vae_encode", model, {"image": image},
               {"mean": mean, "logvar": logvar})
    write_case(out_dir / f"{prefix}_decode", "vae_decode", model, {"latents": latents}, {"image": decoded})
    if old_keys:
        # The same weights under diffusers' pre-0.14 attention names, which diffusers still loads.
        case_dir = out_dir / f"{prefix}_decode_old_keys"
        write_case(case_dir, "vae_decode", model, {"latents": latents}, {"image": decoded}, save_model=False)
        (case_dir / "model").mkdir()
        shutil.copy(out_dir / f"{prefix}_decode" / "model" / "config.json", case_dir / "model" / "config.json")
        new_to_old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
        state = {}
        for key, value in model.state_dict().items():
            for new, old in new_to_old.items():
                marker = f".attentions.0.{new}."
                if ".mid_block" in key and marker in key:
                    key = key.replace(marker, f".attentions.0.{old}.")
            state[key] = value.contiguous()
        assert any(".query." in k for k in state), "no attention keys were renamed"
        save_file(state, case_dir / "model" / "diffusion_pytorch_model.safetensors", metadata={"format": "pt"})
        reloaded = AutoencoderKL.from_pretrained(case_dir / "model").eval()
        again, = reference(lambda: (reloaded.decode(latents).sample,))
        assert torch.equal(again, decoded), "diffusers did not load the old attention names as expected"


def make_cases(out_dir: pathlib.Path, full: bool = False):
    """Writes the image-side cases under `out_dir` (one folder per case)."""
    out_dir = pathlib.Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # summation order, hence the last bits, are then fixed
    try:
        if full:
            # SD 2-base architecture with random weights: a 64×64-latent UNet step and a 512² VAE.
            unet_case(out_dir, "unet_sd2_base_full", SD2_UNET, batch=1, size=(64, 64), context=77,
                      timesteps=[981.0], seed=20, vectors=False)
            vae_cases(out_dir, SD2_VAE, image_size=512, batch=1, seed=21, prefix="vae_sd2_full", old_keys=False)
            return
        for index, (name, case) in enumerate(UNET_CASES.items()):
            unet_case(out_dir, name, seed=10 + index, **case)
        vae_cases(out_dir, SMALL_VAE, image_size=32, batch=1, seed=30)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print(__doc__)
        sys.exit(2)
    make_cases(pathlib.Path(sys.argv[1]), full="--full" in sys.argv[2:])
