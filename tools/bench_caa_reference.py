#!/usr/bin/env python3
"""PyTorch half of the CAA training-step benchmark (Sources/BackdropBench/CAABench.swift, issue 7).

A multi-view UNet in MVDiffusion's style, written from docs/models.md#mvdiffusion: diffusers'
UNet2DConditionModel (random weights) whose parameters keep requires_grad=True, as in the original,
which computes their gradients although only the CAA blocks are optimised; nine CAA blocks run at
the insertion points by re-implementing the UNet's forward loop (as MVDiffusion's MVGenModel does);
and the correspondences recomputed in every forward from K and R: all view pairs at full image
resolution (get_correspondences), then, inside every CAA block, subsampled at that level's query
pixels, expanded to the 3×3 neighbourhood, checked for validity and mapped back into the query view
for the positional encoding. The CAA math is vectorised (no Python loop over views or pixels).

One training step: forward over all views of one panorama, MSE against the noise, backward, AdamW
step on the CAA parameters only (optimizer.zero_grad clears only those, as Lightning does; the
UNet's gradients stay allocated).

    python tools/bench_caa_reference.py --workload caa_smoke_8x64 [--threads 2] [--repeats 3]
    python tools/bench_caa_reference.py --check   # the re-implemented UNet loop equals diffusers' forward

Prints {"seconds", "cpu_seconds", "peak_bytes", "model_bytes"} (see `run_workload`).
"""
import argparse
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __import__("os").path.dirname(__file__))
from bench_reference import median_times, memory_field, reset_peak  # noqa: E402  (the same timing as every other workload)

# Shared with CAABench.swift. name: (UNet config, views, image size, warm-up steps)
SMOKE_UNET = dict(block_out_channels=[32, 64], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                  up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], layers_per_block=1, attention_head_dim=[2, 2],
                  cross_attention_dim=32, use_linear_projection=True, norm_num_groups=8)
SD2_WIDTH_UNET = dict(block_out_channels=[320, 640, 1280, 1280], layers_per_block=1, attention_head_dim=[5, 10, 20, 20],
                      cross_attention_dim=1024, use_linear_projection=True)
WORKLOADS = {
    "caa_smoke_8x64": (SMOKE_UNET, 8, 64, 1),
    "caa_sd2w_lpb1_8x128": (SD2_WIDTH_UNET, 8, 128, 1),
}


# ---------------------------------------------------------------- geometry, recomputed every forward
def cameras(views, size, fov=90.0):
    """K and camera-to-world R (yaw about +y, 360°/views apart), [1, V, 3, 3] float32."""
    f = 0.5 * size / math.tan(math.radians(fov) / 2)
    K = torch.tensor([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]]).repeat(views, 1, 1)
    t = torch.tensor([2 * math.pi * i / views for i in range(views)])
    c, s, z, o = t.cos(), t.sin(), torch.zeros(views), torch.ones(views)
    R = torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2)
    return K[None], R[None]


def homographies(K, R):
    """[B, V, V, 3, 3]: H[b, i, j] = K_j R_j⁻¹ R_i K_i⁻¹ (view i → view j)."""
    Kinv, Rinv = torch.linalg.inv(K), torch.linalg.inv(R)
    return K[:, None] @ Rinv[:, None] @ R[:, :, None] @ Kinv[:, :, None]


def apply_h(H, xy):
    """H [..., 3, 3] applied to xy [..., 2] (broadcast), dehomogenised."""
    p = torch.cat([xy, torch.ones_like(xy[..., :1])], -1)
    q = (H @ p[..., None])[..., 0]
    return q[..., :2] / q[..., 2:]


def get_correspondences(K, R, size):
    """Every pixel of every view mapped into every view, at full image resolution: [B, V, V, H, W, 2]."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=K.dtype), torch.arange(size, dtype=K.dtype), indexing="ij")
    pixels = torch.stack([xs, ys], -1)  # [H, W, 2]
    H = homographies(K, R)[:, :, :, None, None]  # [B, V, V, 1, 1, 3, 3]
    return apply_h(H, pixels)


OFFSETS = torch.tensor([[dx, dy] for dx in (-1.0, 0.0, 1.0) for dy in (-1.0, 0.0, 1.0)])  # x offset outer


# ---------------------------------------------------------------- CAA block (MVDiffusion's key names)
class PosEmbedding(nn.Module):
    def __init__(self, c):
        super().__init__()
        n = c // 4
        base = 2 if n <= 80 else 5000 ** (1 / (n / 2.5))
        self.register_buffer("freq_bands", (base ** torch.linspace(0, n - 1, n))[None, None])

    def forward(self, uv):
        f = self.freq_bands.reshape(-1)
        u, v = uv[..., :1] * f, uv[..., 1:] * f
        return torch.cat([u.sin(), v.sin(), u.cos(), v.cos()], -1)


class CrossAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c // 32
        self.to_q, self.to_k, self.to_v = (nn.Linear(c, c, bias=False) for _ in range(3))
        self.to_out = nn.Linear(c, c)

    def forward(self, x, context):
        n, c = x.shape[0], x.shape[-1]

        def split(t):
            return t.reshape(n, -1, self.heads, 32).transpose(1, 2)
        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(32))
        return self.to_out((scores.softmax(-1) @ v).transpose(1, 2).reshape(n, -1, c))


class GEGLU(nn.Module):
    def __init__(self, c, inner):
        super().__init__()
        self.proj = nn.Linear(c, 2 * inner)

    def forward(self, x):
        value, gate = self.proj(x).chunk(2, -1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(c, 4 * c), nn.Dropout(0.0), nn.Linear(4 * c, c)])

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn1, self.ff = CrossAttention(c), FeedForward(c)
        self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
        for layer in (self.attn1.to_out, self.ff.net[2]):  # an untrained block is the identity
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x, context, query_pe):
        y = x + self.attn1(self.norm1(x + query_pe), self.norm1(context))
        return y + self.ff(self.norm2(y))


class CAABlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer, self.pe = Transformer(c), PosEmbedding(c)

    def forward(self, x, correspondences, K, R, image_size, views):
        """x [B·V, C, h, w]; correspondences [B, V, V, H, W, 2] at full image resolution."""
        bv, c, h, w = x.shape
        b, v = bv // views, views
        s = image_size // h
        nbr = torch.tensor([[(i - 1) % v, (i + 1) % v] for i in range(v)])  # [V, 2]
        view = torch.arange(v)[:, None].expand(v, 2)
        # Query pixels p and their correspondences in the two neighbours, subsampled at this level.
        ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
        p = torch.stack([s // 2 + s * xs, s // 2 + s * ys], -1)  # [h, w, 2]
        corr = correspondences[:, view, nbr][..., s // 2::s, s // 2::s, :]  # [B, V, 2, h, w, 2]
        g = corr / s - 0.5
        q = g[..., None, :] + OFFSETS.to(x.dtype)  # [B, V, 2, h, w, 9, 2]
        image = (q + 0.5) * s
        valid = ((image > 0) & (image < image_size)).all(-1)  # [B, V, 2, h, w, 9]
        back = homographies(K, R)[:, nbr, view][:, :, :, None, None, None]  # neighbour → query view
        pe_in = torch.nan_to_num((apply_h(back, image) - p[:, :, None]) / s, 0.0, 0.0, 0.0)
        # 3×3 bilinear samples of the neighbours' features (align_corners, zero padding).
        grid = q * torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=x.dtype) - 1
        grid = torch.nan_to_num(grid, 0.0, 0.0, 0.0).reshape(b * v * 2, h, w * 9, 2)
        feats = x.reshape(b, v, c, h, w)[:, nbr].reshape(b * v * 2, c, h, w)
        sampled = F.grid_sample(feats, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        sampled = sampled.reshape(b, v, 2, c, h, w, 9).permute(0, 1, 4, 5, 2, 6, 3)  # [B, V, h, w, 2, 9, C]
        pe = self.pe(pe_in.permute(0, 1, 3, 4, 2, 5, 6))
        mask = valid.permute(0, 1, 3, 4, 2, 5)[..., None].to(x.dtype)
        keys = ((sampled + pe) * mask).reshape(b * v * h * w, 18, c)
        queries = x.reshape(b, v, c, h, w).permute(0, 1, 3, 4, 2).reshape(b * v * h * w, 1, c)
        query_pe = self.pe(torch.zeros(2, dtype=x.dtype))
        out = self.transformer(queries, keys, query_pe)
        return out.reshape(b, v, h, w, c).permute(0, 1, 4, 2, 3).reshape(bv, c, h, w)


# ---------------------------------------------------------------- the multi-view UNet
class MultiViewUNet(nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        widths = unet.config.block_out_channels
        self.cp_blocks_encoder = nn.ModuleList(CAABlock(c) for c in widths)
        self.cp_blocks_mid = CAABlock(widths[-1])
        self.cp_blocks_decoder = nn.ModuleList(CAABlock(c) for c in reversed(widths))

    def forward(self, sample, timestep, context, K, R, views, image_size, use_caa=True):
        """sample [B·V, 4, h, w], timestep [B·V], context [B·V, S, D] → noise prediction."""
        unet = self.unet
        correspondences = get_correspondences(K, R, image_size) if use_caa else None

        def caa(block, h):
            return block(h, correspondences, K, R, image_size, views) if use_caa else h
        emb = unet.time_embedding(unet.time_proj(timestep).to(sample.dtype))
        h = unet.conv_in(sample)
        skips = (h,)
        for i, block in enumerate(unet.down_blocks):
            attentions = getattr(block, "attentions", None)
            for k, resnet in enumerate(block.resnets):
                h = resnet(h, emb)
                if attentions is not None:
                    h = attentions[k](h, encoder_hidden_states=context, return_dict=False)[0]
                skips += (h,)
            h = caa(self.cp_blocks_encoder[i], h)
            if block.downsamplers is not None:
                for down in block.downsamplers:
                    h = down(h)
                skips += (h,)
        mid = unet.mid_block
        h = mid.resnets[0](h, emb)
        h = caa(self.cp_blocks_mid, h)
        for attention, resnet in zip(mid.attentions, mid.resnets[1:]):
            h = attention(h, encoder_hidden_states=context, return_dict=False)[0]
            h = resnet(h, emb)
        for i, block in enumerate(unet.up_blocks):
            attentions = getattr(block, "attentions", None)
            for k, resnet in enumerate(block.resnets):
                h = resnet(torch.cat([h, skips[-1]], 1), emb)
                skips = skips[:-1]
                if attentions is not None:
                    h = attentions[k](h, encoder_hidden_states=context, return_dict=False)[0]
            h = caa(self.cp_blocks_decoder[i], h)
            if block.upsamplers is not None:
                for up in block.upsamplers:
                    h = up(h)
        return unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))


def build(config, views, image_size, seed=0):
    from diffusers import UNet2DConditionModel
    torch.manual_seed(seed)
    model = MultiViewUNet(UNet2DConditionModel(**config)).train()  # UNet parameters keep requires_grad
    latent = image_size // 8
    g = torch.Generator().manual_seed(seed)
    inputs = dict(sample=torch.randn(views, 4, latent, latent, generator=g),
                  timestep=torch.full((views,), 500, dtype=torch.long),  # one timestep for the panorama's views
                  context=torch.randn(views, 77, config["cross_attention_dim"], generator=g))
    K, R = cameras(views, image_size)
    noise = torch.randn(views, 4, latent, latent, generator=g)
    return model, inputs, K, R, noise


# ---------------------------------------------------------------- measurement
def run_workload(name, repeats):
    """Median wall/CPU seconds of one training step; peak_bytes: VmHWM during warm-up + timed steps
    minus the resident size right after the model, inputs and optimiser were built (high-water mark
    reset there); model_bytes: resident growth from just before the model to just after it."""
    config, views, image_size, warmup = WORKLOADS[name]
    before = reset_peak()
    model, inputs, K, R, noise = build(config, views, image_size)
    caa = [p for n, p in model.named_parameters() if not n.startswith("unet.")]
    optimizer = torch.optim.AdamW(caa, lr=2e-4, weight_decay=0.01)
    baseline = reset_peak()

    def step():
        prediction = model(inputs["sample"], inputs["timestep"], inputs["context"], K, R, views, image_size)
        F.mse_loss(prediction, noise).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds, cpu_seconds = median_times(step, max(repeats, 3), warmup)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds,
            "peak_bytes": memory_field("VmHWM") - baseline, "model_bytes": baseline - before}


def check():
    """The re-implemented forward loop with CAA off equals diffusers' own forward; with identity CAA
    blocks (zero-initialised outputs) it is unchanged; the loss has gradients on the CAA."""
    for name, (config, views, image_size, _) in WORKLOADS.items():
        if name != "caa_smoke_8x64":
            continue
        model, inputs, K, R, noise = build(config, views, image_size)
        with torch.no_grad():
            ref = model.unet(inputs["sample"], inputs["timestep"], inputs["context"]).sample
            mine = model(inputs["sample"], inputs["timestep"], inputs["context"], K, R, views, image_size, use_caa=False)
            with_caa = model(inputs["sample"], inputs["timestep"], inputs["context"], K, R, views, image_size)
        print(f"{name}: loop vs diffusers {(ref - mine).abs().max():.2e}, identity CAA {(ref - with_caa).abs().max():.2e}")
        F.mse_loss(model(inputs["sample"], inputs["timestep"], inputs["context"], K, R, views, image_size), noise).backward()
        grad = model.cp_blocks_encoder[0].transformer.attn1.to_out.weight.grad
        print(f"  CAA to_out grad norm {grad.norm():.3e}, UNet conv_in grad {model.unet.conv_in.weight.grad is not None}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workload", choices=sorted(WORKLOADS))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.check:
        return check()
    json.dump(run_workload(args.workload, args.repeats), sys.stdout)


if __name__ == "__main__":
    main()
