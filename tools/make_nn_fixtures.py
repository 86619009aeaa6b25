#!/usr/bin/env python3
"""Reference fixtures for Backdrop's nn layers, optimisers, LR schedules and TorchScript export.

Run with the Python reference environment (`make fixtures`):
    python tools/make_nn_fixtures.py                     # writes Tests/Fixtures/nn/
    python tools/make_nn_fixtures.py --check-torchscript DIR
        loads DIR/model.pt (exported by the Swift test) with torch.jit.load, runs it on
        DIR/io.safetensors["input"], compares with ["output"], and checks that named_parameters()
        lists exactly the names in DIR/names.json. Exit status 0 only when everything agrees.
"""
import argparse
import json
import math
import pathlib
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "nn"
STEPS = 20


class Layers(nn.Module):
    """One of each standard layer, in the key layout the Swift test builds."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, dilation=1, groups=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, bias=False)
        self.norm = nn.GroupNorm(4, 8, eps=1e-5)
        self.bn = nn.BatchNorm2d(8)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, output_padding=0, groups=2)
        self.ln = nn.LayerNorm(4)
        self.proj = nn.Sequential(nn.Linear(4, 6), nn.SiLU(), nn.Linear(6, 5, bias=False))
        self.embed = nn.Embedding(10, 5)

    def forward(self, x, ids):
        h = self.conv(x)
        h = F.silu(self.norm(self.grouped(h)))
        h = self.bn(h)
        h = self.up(h)  # [B, 4, H, W]
        h = self.ln(h.permute(0, 2, 3, 1))
        h = self.proj(h)  # [B, H, W, 5]
        return h + self.embed(ids)[:, None, None, :]


def layers_fixture(tensors):
    torch.manual_seed(1)
    model = Layers()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.num_batches_tracked.fill_(7)
        for p in [model.norm.weight, model.norm.bias, model.bn.weight, model.bn.bias, model.ln.weight, model.ln.bias]:
            p.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    ids = torch.tensor([3, 7])
    with torch.no_grad():
        y = model(x, ids)
    for k, v in model.state_dict().items():
        tensors["layers." + k] = v.contiguous()
    tensors["layers_in.x"] = x
    tensors["layers_in.ids"] = ids
    tensors["layers_out"] = y


def problem():
    torch.manual_seed(2)
    return {
        "w": torch.randn(4, 3), "b": torch.randn(4), "x": torch.randn(8, 3), "y": torch.randn(8, 4),
    }


def run_optimizer(name, tensors, make_opt, make_sched):
    data = problem()
    w = data["w"].clone().requires_grad_(True)
    b = data["b"].clone().requires_grad_(True)
    opt = make_opt(w, b)
    sched = make_sched(opt)
    ws, bs, lrs = [], [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.mse_loss(F.linear(data["x"], w, b), data["y"])
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        ws.append(w.detach().clone())
        bs.append(b.detach().clone())
        lrs.append([g["lr"] for g in opt.param_groups])
    tensors[f"{name}.w"] = torch.stack(ws)
    tensors[f"{name}.b"] = torch.stack(bs)
    tensors[f"{name}.lr"] = torch.tensor(lrs, dtype=torch.float64)


def optimizer_fixtures(tensors):
    for k, v in problem().items():
        tensors["problem." + k] = v
    # AdamW, one group, cosine annealing per step (restarts upward after T_max, as PyTorch does).
    run_optimizer("adamw_cosine", tensors,
                  lambda w, b: torch.optim.AdamW([w, b], lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1),
                  lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=1e-4))
    # AdamW with two parameter groups, linear warm-up.
    run_optimizer("adamw_groups_linear", tensors,
                  lambda w, b: torch.optim.AdamW([{"params": [w], "lr": 2e-2, "weight_decay": 0.05},
                                                  {"params": [b], "lr": 5e-3, "weight_decay": 0.0}]),
                  lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=5))
    # SGD with momentum and dampening, constant.
    run_optimizer("sgd_momentum", tensors,
                  lambda w, b: torch.optim.SGD([w, b], lr=5e-2, momentum=0.9, dampening=0.1, weight_decay=0.01),
                  lambda o: None)
    run_optimizer("sgd_nesterov", tensors,
                  lambda w, b: torch.optim.SGD([w, b], lr=5e-2, momentum=0.8, nesterov=True),
                  lambda o: None)
    # diffusers' EMAModel (what SD training keeps) over an AdamW trajectory: the average after each step.
    from diffusers.training_utils import EMAModel
    data = problem()
    w = data["w"].clone().requires_grad_(True)
    b = data["b"].clone().requires_grad_(True)
    opt = torch.optim.AdamW([w, b], lr=1e-2)
    ema = EMAModel([w, b], decay=0.8)
    averages = {"w": [], "b": []}
    for _ in range(STEPS):
        opt.zero_grad()
        F.mse_loss(F.linear(data["x"], w, b), data["y"]).backward()
        opt.step()
        ema.step([w, b])
        averages["w"].append(ema.shadow_params[0].detach().clone())
        averages["b"].append(ema.shadow_params[1].detach().clone())
    tensors["ema.w"] = torch.stack(averages["w"])
    tensors["ema.b"] = torch.stack(averages["b"])
    # Global-norm gradient clipping on the first step's gradients.
    data = problem()
    w = data["w"].clone().requires_grad_(True)
    b = data["b"].clone().requires_grad_(True)
    F.mse_loss(F.linear(data["x"], w, b), data["y"]).backward()
    total = torch.nn.utils.clip_grad_norm_([w, b], max_norm=0.5)
    tensors["clip.total_norm"] = total.reshape(1)
    tensors["clip.w_grad"] = w.grad
    tensors["clip.b_grad"] = b.grad


def write():
    OUT.mkdir(parents=True, exist_ok=True)
    tensors = {}
    layers_fixture(tensors)
    optimizer_fixtures(tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / "nn.safetensors"))
    print(f"wrote {len(tensors)} tensors to {OUT / 'nn.safetensors'}")


def check_torchscript(directory):
    d = pathlib.Path(directory)
    module = torch.jit.load(str(d / "model.pt"))
    io = load_file(str(d / "io.safetensors"))
    expected_names = json.loads((d / "names.json").read_text())
    failures = []
    names = [n for n, _ in module.named_parameters()]
    if sorted(names) != sorted(expected_names):
        failures.append(f"parameter names differ: python {sorted(names)} vs swift {sorted(expected_names)}")
    with torch.no_grad():
        out = module(io["input"])
    err = (out - io["output"]).abs().max().item()
    if not err <= 1e-5:
        failures.append(f"output differs from Swift's by max-abs {err}")
    for f in failures:
        print("FAIL:", f)
    print(f"torch.jit.load: {len(names)} parameters, max-abs error {err:.3g}")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-torchscript", metavar="DIR")
    args = parser.parse_args()
    if args.check_torchscript:
        sys.exit(check_torchscript(args.check_torchscript))
    write()
