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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "tiny_adds_1e5": median_time(tiny_adds(), args.repeats),
        "conv_norm_attention_fwd_bwd": median_time(conv_norm_attention(), args.repeats),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
