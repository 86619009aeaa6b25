// Stable Diffusion from diffusers model folders: tokenizer, CLIP text encoder, UNet, VAE, schedulers, pipeline (docs/models.md).
