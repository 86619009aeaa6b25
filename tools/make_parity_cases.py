#!/usr/bin/env python3
"""Writes parity cases in the format of docs/parity.md (what `backdrop parity CASE_DIR` reads).

Each module tools/parity/<name>.py that defines `make_cases(out_dir: Path, full: bool)` contributes
its components (text.py: tokenizer, text_encoder, schedulers; image.py: unet, vae; pipeline.py: the
pipeline; others as they are added). Models are built from small configs with fixed seeds and
random weights (no model hub is reachable); `--full` writes SD 2-base-size cases instead (GBs, not
committed: `make parity-full`).

Run with the reference environment (docs/parity.md#reference-environment): diffusers 0.27.2, transformers 4.40.2,
Debian torch 1.13:
    ~/.cache/backdrop/venv-<hash>/bin/python tools/make_parity_cases.py [--out DIR] [--full] [--only text image]
"""
import argparse
import importlib
import pathlib
import sys

TOOLS = pathlib.Path(__file__).resolve().parent
ROOT = TOOLS.parent
sys.path.insert(0, str(TOOLS))


def modules():
    return sorted(p.stem for p in (TOOLS / "parity").glob("*.py") if not p.stem.startswith("_"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "Tests/Fixtures/parity",
                        help="folder to write the case folders into (default: Tests/Fixtures/parity)")
    parser.add_argument("--full", action="store_true", help="full-size SD 2-base configurations (not committed)")
    parser.add_argument("--only", nargs="+", metavar="MODULE", help=f"modules to run (of {', '.join(modules())})")
    parser.add_argument("--tokenizer-reference", type=pathlib.Path,
                        default=ROOT / "Tests/Fixtures/tokenizer/clip_vocab_ids.json",
                        help="where text.py writes the full-vocabulary tokenizer ids (skipped with --full)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or modules():
        module = importlib.import_module(f"parity.{name}")
        if not hasattr(module, "make_cases"):
            continue
        print(f"{name}: writing cases into {args.out}", flush=True)
        module.make_cases(args.out, args.full)
        if name == "text" and not args.full:
            module.make_tokenizer_reference(args.tokenizer_reference)


if __name__ == "__main__":
    main()
