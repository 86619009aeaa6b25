#!/usr/bin/env python3
"""PyTorch-eager halves of `make bench`: the same workloads as Sources/BackdropBench, timed the same
way (median of repeated runs after warm-up) on the same LibTorch with the same thread count.
Prints one JSON object {name: seconds} on stdout; backdrop-bench reads it and prints ratios."""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def tiny_adds(n=100_000):
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    b = torch.tensor([4.0, 3.0, 2.0, 1.0])

    def run():
        for _ in range(n):
            a + b
    return run


def conv_norm_attention(batch=2, channels=128, size=32, groups=32, heads=4):
    """conv3×3 → GroupNorm → SiLU → conv3×3 → residual, then self-attention over the h·w tokens
    with q/k/v/out projections; forward and backward (the shape of an SD UNet level)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=g)
    p = {
        "conv1.w": torch.randn(channels, channels, 3, 3, generator=g) * 0.03, "conv1.b": torch.zeros(channels),
        "norm.w": torch.ones(channels), "norm.b": torch.zeros(channels),
        "conv2.w": torch.randn(channels, channels, 3, 3, generator=g) * 0.03, "conv2.b": torch.zeros(channels),
        "q": torch.randn(channels, channels, generator=g) * 0.05, "k": torch.randn(channels, channels, generator=g) * 0.05,
        "v": torch.randn(channels, channels, generator=g) * 0.05, "o": torch.randn(channels, channels, generator=g) * 0.05,
        "o.b": torch.zeros(channels),
    }
    for t in p.values():
        t.requires_grad_(True)

    def run():
        h = F.conv2d(x, p["conv1.w"], p["conv1.b"], padding=1)
        h = F.silu(F.group_norm(h, groups, p["norm.w"], p["norm.b"], 1e-5))
        h = x + F.conv2d(h, p["conv2.w"], p["conv2.b"], padding=1)
        b, c, hh, ww = h.shape
        tokens = h.flatten(2).transpose(1, 2)  # [B, N, C]

        def split(t):
            return t.reshape(b, hh * ww, heads, c // heads).transpose(1, 2)
        q, k, v = split(F.linear(tokens, p["q"])), split(F.linear(tokens, p["k"])), split(F.linear(tokens, p["v"]))
        scores = torch.matmul(q, k.transpose(-2, -1)).mul_(1.0 / (c // heads) ** 0.5)
        attn = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(b, hh * ww, c)
        out = tokens + F.linear(attn, p["o"], p["o.b"])
        out.square().mean().backward()
        for t in p.values():
            t.grad = None
    return run


# The UNet workloads of Sources/BackdropBench/UNetBench.swift: diffusers' UNet2DConditionModel with
# random weights, each run alone in this process (`--workload NAME`) so that its peak memory can be
# read: the kernel's high-water mark is reset once torch is loaded, before the model is built.
SD2_BASE_UNET = dict(
    block_out_channels=[320, 640, 1280, 1280], attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024,
    use_linear_projection=True,
)
SD2_SMALL_UNET = dict(SD2_BASE_UNET, block_out_channels=[64, 128, 256, 256], attention_head_dim=[1, 2, 4, 4])
# name: (config, batch, latent size, backward, warm-up runs, most timed runs)
UNET_WORKLOADS = {
    "unet_sd2_small_32_fwd": (SD2_SMALL_UNET, 2, 32, False, 2, 100),
    "unet_sd2_small_32_fwd_bwd": (SD2_SMALL_UNET, 2, 32, True, 2, 100),
    "unet_sd2_base_64_fwd": (SD2_BASE_UNET, 1, 64, False, 1, 3),
}


def memory_field(name):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak():
    """Resets the high-water mark VmHWM (Linux clear_refs 5) and returns the resident size now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return memory_field("VmRSS")


def median_times(fn, repeats, warmup):
    """Median wall-clock and process CPU seconds of fn()."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(max(repeats, 1)):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def unet_workload(name, repeats):
    """{"seconds", "cpu_seconds": medians, "peak_bytes": VmHWM above the resident size before the
    model exists}."""
    from diffusers import UNet2DConditionModel
    config, batch, latent, backward, warmup, max_repeats = UNET_WORKLOADS[name]
    baseline = reset_peak()
    g = torch.Generator().manual_seed(0)
    unet = UNet2DConditionModel(**config)
    sample = torch.randn(batch, 4, latent, latent, generator=g)
    timestep = torch.full((batch,), 500.0)
    context = torch.randn(batch, 77, 1024, generator=g)
    repeats = min(repeats, max_repeats)
    if backward:
        unet.train()
        target = torch.randn(sample.shape, generator=g)

        def step():
            out = unet(sample, timestep, context).sample
            F.mse_loss(out, target).backward()
            unet.zero_grad(set_to_none=True)
        seconds, cpu = median_times(step, repeats, warmup)
    else:
        unet.eval()
        with torch.no_grad():
            seconds, cpu = median_times(lambda: unet(sample, timestep, context), repeats, warmup)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": memory_field("VmHWM") - baseline}


# The CLIP workload of Sources/BackdropBench/CLIPBench.swift: transformers' ViT-L/14 image tower with
# its projection (CLIPModel.get_image_features) with random weights, on 224×224 pixel values.
CLIP_VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=224, patch_size=14, projection_dim=768)
# name: (vision config, batch, warm-up runs, most timed runs)
CLIP_WORKLOADS = {"clip_vit_l14_image_embeds_b4": (CLIP_VIT_L14, 4, 1, 5)}


def clip_workload(name, repeats):
    """{"seconds", "cpu_seconds": medians for one batch, "peak_bytes": as unet_workload}."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    config, batch, warmup, max_repeats = CLIP_WORKLOADS[name]
    baseline = reset_peak()
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**config)).eval()
    pixels = torch.randn(batch, 3, config["image_size"], config["image_size"], generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # as the Swift side and its CLIPScorer run it
        seconds, cpu = median_times(lambda: model(pixel_values=pixels).image_embeds, min(repeats, max_repeats), warmup)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": memory_field("VmHWM") - baseline}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", choices=sorted(UNET_WORKLOADS) + sorted(CLIP_WORKLOADS),
                        help="run one UNet or CLIP workload alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.workload:
        workload = clip_workload if args.workload in CLIP_WORKLOADS else unet_workload
        json.dump(workload(args.workload, args.repeats), sys.stdout)
        return
    results = {
        "tiny_adds_1e5": median_time(tiny_adds(), args.repeats),
        "conv_norm_attention_fwd_bwd": median_time(conv_norm_attention(), args.repeats),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
