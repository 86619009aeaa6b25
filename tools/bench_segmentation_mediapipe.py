#!/usr/bin/env python3
"""MediaPipe's own runtime on the selfie segmentation model: the reference half of the segmentation
benchmark in `make bench` (Sources/BackdropBench/SegmentationBench.swift). Runs in the MediaPipe venv
(`make fixtures-segmentation` creates it). Prints JSON with median milliseconds per frame.

Timed: `SelfieSegmentation.process` of MediaPipe's CPU graph (selfie_segmentation_cpu.binarypb) with its
XNNPACK delegate set to --threads threads (the graph's default is 1 on desktop Linux), for
  - model_256: a 256x256 RGB frame (the resizes are identities: essentially the model, plus the
    graph's scheduling and the Python binding's copy in and out);
  - frame_1280x720: a 1280x720 frame (resize to 256x256, the model, the mask resized back to 720p).
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import mediapipe as mp
from mediapipe.calculators.tensor import inference_calculator_pb2
from mediapipe.framework import calculator_pb2
from mediapipe.python.solution_base import SolutionBase


def graph_config(threads: int) -> calculator_pb2.CalculatorGraphConfig:
    path = os.path.join(os.path.dirname(mp.__file__), "modules/selfie_segmentation/selfie_segmentation_cpu.binarypb")
    config = calculator_pb2.CalculatorGraphConfig()
    with open(path, "rb") as f:
        config.ParseFromString(f.read())
    for node in config.node:
        if node.calculator == "InferenceCalculator":
            options = node.options.Extensions[inference_calculator_pb2.InferenceCalculatorOptions.ext]
            options.delegate.xnnpack.num_threads = threads
    return config


def median_ms(segmenter, frame: np.ndarray, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        segmenter.process(frame)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter.process(frame)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {"mediapipe": mp.__version__, "threads": args.threads}
    segmenter = SolutionBase(graph_config=graph_config(args.threads), side_inputs={"model_selection": 0},
                             outputs=["segmentation_mask"])
    for name, (h, w) in {"model_256": (256, 256), "frame_1280x720": (720, 1280)}.items():
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        results[name] = median_ms(segmenter, frame, warmup=10, repeats=args.repeats)
    segmenter.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
