"""Parity cases for the whole text-to-image pipeline (format: docs/parity.md, component `pipeline`).

A diffusers 0.27.2 `StableDiffusionPipeline` folder (`save_pretrained`: model_index.json, tokenizer,
text_encoder, unet, vae, scheduler) assembled from tiny random-weight models: an SD2-style tokenizer
(pad "!", the first MERGES merges of OpenAI's vocabulary), a gelu CLIPTextModel, an SD2-style UNet
(linear projections, head counts) and a small VAE. It is run from given initial latents with a
prompt, a negative prompt and classifier-free guidance; expected are the latents after the last
step (`output_type="latent"`) and their decoding clamped to [-1, 1].
"""
import pathlib

import torch

from parity.text import write_case, write_tokenizer_folder, read_merges

TOLERANCE = 1e-3  # final latents of a 10-step DDIM run (issue 3)
MERGES = 300

TINY_UNET = dict(block_out_channels=[4, 4], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                 up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], layers_per_block=1, attention_head_dim=[2, 1],
                 cross_attention_dim=8, use_linear_projection=True, norm_num_groups=2, sample_size=8)
TINY_VAE = dict(block_out_channels=[4, 4], down_block_types=["DownEncoderBlock2D"] * 2,
                up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=4, sample_size=16,
                layers_per_block=1)
SD2_DDIM = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                clip_sample=False, set_alpha_to_one=False, steps_offset=1)

# SD 2-base's recipe: DDIM, 10 steps, guidance 9, a negative prompt.
DDIM_CASE = dict(prompt="a cozy living room with a fireplace!", negative_prompt="blurry, low quality",
                 num_inference_steps=10, guidance_scale=9.0, height=16, width=16)
# The same folder with its scheduler swapped for DPM-Solver++ 2M (`from_config`, args.scheduler
# "dpm"; the model is the DDIM case's, to keep the fixtures small), no negative prompt, another size.
DPM_CASE = dict(prompt="A bright kitchen, 8k", num_inference_steps=8, guidance_scale=7.5, height=16, width=24,
                scheduler="dpm")


def perturb(model, generator, scale=0.1):
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(scale * torch.randn(parameter.shape, generator=generator))


def build_pipeline(folder, seed, full):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    staging = pathlib.Path(folder).with_name(".staging_pipeline_tokenizer")
    write_tokenizer_folder(staging, read_merges(None if full else MERGES), "sd2")
    tokenizer = CLIPTokenizer.from_pretrained(str(staging))
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer.get_vocab()), hidden_size=8,
                                                intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                                                max_position_embeddings=77, hidden_act="gelu")).eval()
    unet = UNet2DConditionModel(**TINY_UNET).eval()
    vae = AutoencoderKL(**TINY_VAE).eval()
    for model in (text_encoder, unet, vae):
        perturb(model, generator)
    scheduler = DDIMScheduler(**SD2_DDIM)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    for path in staging.iterdir():
        path.unlink()
    staging.rmdir()
    return pipe, generator


def run(pipe, args, latents):
    with torch.no_grad():
        final = pipe(prompt=args["prompt"], negative_prompt=args.get("negative_prompt"),
                     num_inference_steps=args["num_inference_steps"], guidance_scale=args["guidance_scale"],
                     height=args["height"], width=args["width"], latents=latents.clone(),
                     output_type="latent").images
        image = pipe.vae.decode(final / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
    return {"final_latents": final, "image": image}


def initial_latents(pipe, args, generator):
    scale = pipe.vae_scale_factor
    return torch.randn((1, 4, args["height"] // scale, args["width"] // scale), generator=generator)


def make_cases(out_dir: pathlib.Path, full: bool = False):
    """Writes the pipeline cases under `out_dir` (small configurations either way; the full-size
    networks are covered by the unet/vae/text_encoder full cases)."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    torch.set_num_threads(1)
    if full:
        return
    out_dir = pathlib.Path(out_dir)
    pipe, generator = build_pipeline(out_dir / "pipeline_ddim" / "model", seed=60, full=False)
    pipe.set_progress_bar_config(disable=True)
    latents = initial_latents(pipe, DDIM_CASE, generator)
    write_case(out_dir / "pipeline_ddim", "pipeline", {"latents": latents}, run(pipe, DDIM_CASE, latents),
               atol=TOLERANCE, rtol=0, args=DDIM_CASE, model=lambda folder: pipe.save_pretrained(folder))
    # Swap the scheduler as a user does on a saved folder: from the config on disk. (In memory,
    # diffusers would skip keys the DDIM instance left at their defaults, e.g. timestep_spacing.)
    pipe = StableDiffusionPipeline.from_pretrained(out_dir / "pipeline_ddim" / "model", safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    latents = initial_latents(pipe, DPM_CASE, generator)
    write_case(out_dir / "pipeline_dpm", "pipeline", {"latents": latents}, run(pipe, DPM_CASE, latents),
               atol=TOLERANCE, rtol=0, args=DPM_CASE, model_path="../pipeline_ddim/model")
