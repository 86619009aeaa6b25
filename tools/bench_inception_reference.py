#!/usr/bin/env python3
"""PyTorch half of the Inception stage of `make bench` (Sources/BackdropBench/InceptionBench.swift).

    python tools/bench_inception_reference.py --workload NAME --state STATE.safetensors \
        --archive fid_inception_nvidia.pt --threads N --repeats N

    python tools/bench_inception_reference.py --check --state STATE.safetensors --archive ARCHIVE

Builds pytorch-fid 0.3.0's InceptionV3 (FID blocks, 2048-d pool3 output, no resize or input
normalisation: the inputs are already 299x299 in [-1, 1]) and loads STATE, the NVIDIA archive's
weights in torchvision's layout as Backdrop maps them, strictly (the archive has no classifier, so
fc is zero-filled; it is not on the pool3 path). With --workload it prints one JSON object
{"seconds", "cpu_seconds": medians for one batch, "peak_bytes"}; with --check it compares its
features with the archive's own TorchScript forward on the benchmark batch and prints
{"max_abs_vs_archive"} (exit status 1 above 1e-3), so that the timed processes never hold the archive.
"""
import argparse
import json
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, __import__("os").path.dirname(__file__))
from bench_reference import median_times, memory_field, reset_peak  # noqa: E402  (the same timing as every other workload)

# name: (batch, warm-up runs, most timed runs); names and shapes shared with InceptionBench.swift.
WORKLOADS = {"fid_inception_pool3_b8": (8, 1, 5)}


def pytorch_fid_model(state_path):
    import pytorch_fid.inception as pfi

    state = load_file(state_path)
    state.setdefault("fc.weight", torch.zeros(1008, 2048))
    state.setdefault("fc.bias", torch.zeros(1008))
    # pytorch-fid downloads its weights inside fid_inception_v3(); hand it these instead.
    pfi.load_state_dict_from_url = lambda *args, **kwargs: state
    return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=False,
                           normalize_input=False, use_fid_inception=True).eval()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="fid_inception_pool3_b8")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--state", required=True)
    parser.add_argument("--archive", help="the NVIDIA archive (for --check)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch, warmup, max_repeats = WORKLOADS[args.workload]
    baseline = reset_peak()
    model = pytorch_fid_model(args.state)
    # The Swift side's batch: a seeded normal batch (LibTorch's CPU generator) clamped to [-1, 1].
    x = torch.randn(batch, 3, 299, 299, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    with torch.inference_mode():
        if args.check:
            reference = torch.jit.load(args.archive).eval()(x)
            reference = reference[0] if isinstance(reference, (tuple, list)) else reference  # [N, 2048]
            error = float((model(x)[0].flatten(1) - reference).abs().max())
            json.dump({"max_abs_vs_archive": error}, sys.stdout)
            sys.exit(0 if error <= 1e-3 else 1)
        seconds, cpu = median_times(lambda: model(x), min(args.repeats, max_repeats), warmup)
    json.dump({"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": memory_field("VmHWM") - baseline}, sys.stdout)


if __name__ == "__main__":
    main()
