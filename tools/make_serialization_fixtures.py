#!/usr/bin/env python3
"""Reference side of Backdrop's serialisation tests (Tests/TorchTests/SerializationTests.swift).

    python tools/make_serialization_fixtures.py [OUT_DIR]   # default Tests/Fixtures/serialization
    python tools/make_serialization_fixtures.py --check-swift DIR

The first form writes small safetensors and torch.save files plus `expected.json`, which records for
every tensor its dtype, shape, strides, storage offset and contiguous bytes (hex), so the Swift side
compares bit for bit. The second form reads the safetensors files the Swift test wrote into DIR and
checks them against DIR/expected.json (same layout) with `safetensors.torch.load_file`, and checks
that Swift laid the file out as the Python library does; it exits non-zero on any difference.

Needs torch and safetensors==0.4.3 (the project venv: ~/.cache/backdrop/venv/bin/python).
"""
import argparse
import collections
import io
import json
import os
import struct
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import load_file, save, save_file

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "serialization"


def describe(t):
    """What the Swift test compares: layout of the view and its contiguous bytes."""
    c = t.detach().contiguous()
    raw = c.reshape(-1).view(torch.uint8).numpy().tobytes() if c.numel() else b""
    return {
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "strides": list(t.stride()),
        "offset": t.storage_offset(),
        "hex": raw.hex(),
    }


def flat(obj, prefix=""):
    """Dotted key -> tensor for nested dicts/lists, as TorchPickle's `tensors(prefix:)` flattens."""
    out = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, torch.Tensor):
            out[key] = v
        else:
            out.update(flat(v, key + "."))
    return out


def dtype_tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(2, 3, generator=g),
        "f16": torch.tensor([1.0, -2.5, 65504.0, 1e-7], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -3.140625], [1e30, -0.0]], dtype=torch.bfloat16),
        "f64": torch.tensor([3.141592653589793, -1e-300], dtype=torch.float64),
        "i64": torch.tensor([0, -1, 2**40, -(2**62)], dtype=torch.int64),
        "i32": torch.tensor([2**31 - 1, -(2**31)], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 0], dtype=torch.int8),
        "u8": torch.arange(250, 255, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


# Stand-ins for classes a Lightning checkpoint carries; registered as importable modules so that
# pickle writes their real-looking names.
def fake_module(name, **members):
    module = types.ModuleType(name)
    for key, value in members.items():
        value.__module__ = name
        setattr(module, key, value)
    sys.modules[name] = module
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        setattr(parent, parts[i], sys.modules.get(".".join(parts[: i + 1]), module))
    return module


class AttributeDict(dict):
    pass


class CustomThing:
    def __init__(self, n):
        self.n = n
        self.label = "custom"


def helper_function(x):
    return x


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/backdrop_pwned",))


class EvilEval:
    def __reduce__(self):
        return (eval, ("open('/tmp/backdrop_pwned', 'w').write('pwned')",))


class CallsHelper:
    def __reduce__(self):
        return (helper_function, (1,))


def make(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    expected = {}
    torch.manual_seed(0)

    # -- safetensors
    tensors = dtype_tensors()
    metadata = {"format": "pt", "note": 'h\u00e9llo "quoted"\n'}
    save_file(tensors, str(out / "dtypes.safetensors"), metadata=metadata)
    expected["dtypes.safetensors"] = {
        "metadata": metadata,
        "tensors": {k: describe(v) for k, v in tensors.items()},
    }
    save_file({"x": torch.ones(2)}, str(out / "no_metadata.safetensors"))
    expected["no_metadata.safetensors"] = {"metadata": {}, "tensors": {"x": describe(torch.ones(2))}}

    # -- torch.save: a state_dict (OrderedDict with _metadata), file-stem prefix
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Conv1d(4, 2, 1))
    model[1].running_mean.add_(0.5)
    sd = model.state_dict()
    torch.save(sd, out / "state_dict.pt")
    expected["state_dict.pt"] = {"keys": list(sd.keys()), "tensors": {k: describe(v) for k, v in sd.items()}}

    # -- dtypes and plain Python values; written through a buffer so the prefix is "archive"
    values = {
        "name": "tiny", "n": 7, "neg": -3, "big": 2**40, "f": 0.25, "flag": True, "off": False,
        "none": None, "list": [1, 2.5, "a"], "tuple": (1, 2), "bytes": b"ab\x00",
        "param": torch.nn.Parameter(torch.tensor([1.0, 2.0])),
        "device": torch.device("cpu"), "size": torch.Size([2, 3]),
    }
    d = {**{k: v for k, v in tensors.items() if k != "empty"}, **values}
    buf = io.BytesIO()
    torch.save(d, buf)
    (out / "dtypes.pt").write_bytes(buf.getvalue())
    expected["dtypes.pt"] = {"tensors": {k: describe(v) for k, v in flat(d).items()}}

    # -- two tensors (and more) on one storage
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    shared = {"base": base, "row": base[1], "col": base[:, 2]}
    torch.save(shared, out / "shared.pt")
    expected["shared.pt"] = {"tensors": {k: describe(v) for k, v in shared.items()}}

    # -- non-contiguous views, saved alone (their storage is still the whole base)
    m = torch.arange(20, dtype=torch.float64).reshape(4, 5)
    noncontig = {"t": m.t(), "strided": m[::2, 1::2], "flat_step": m.view(-1)[3::4]}
    torch.save(noncontig, out / "noncontiguous.pt")
    expected["noncontiguous.pt"] = {"tensors": {k: describe(v) for k, v in noncontig.items()}}

    # -- pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL) and a list that contains itself
    loop = [1]
    loop.append(loop)
    p4 = {"a": torch.tensor([[1, 2], [3, 4]], dtype=torch.int32), "nested": {"b": [torch.tensor([0.5])]}, "loop": loop}
    torch.save(p4, out / "protocol4.pt", pickle_protocol=4)
    expected["protocol4.pt"] = {"tensors": {k: describe(v) for k, v in flat({k: v for k, v in p4.items() if k != "loop"}).items()}}

    # -- a Lightning-like checkpoint
    fake_module("pytorch_lightning.utilities.parsing", AttributeDict=AttributeDict)
    fake_module("lightning_like.callbacks", CustomThing=CustomThing)
    import numpy as np
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    ckpt_sd = collections.OrderedDict((f"model.{k}", v) for k, v in net.state_dict().items())
    ckpt = {
        "epoch": 3,
        "global_step": 10,
        "pytorch-lightning_version": "1.9.0",
        "state_dict": ckpt_sd,
        "hyper_parameters": AttributeDict(lr=1e-3, name="tiny", betas=(0.9, 0.999),
                                          args=argparse.Namespace(depth=2)),
        "optimizer_states": [{
            "state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.full((2, 2), 0.125)}},
            "param_groups": [{"lr": 1e-3, "params": [0, 1]}],
        }],
        "lr_schedulers": [],
        "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.5), "custom": CustomThing(3),
                                          "np_score": np.float64(0.75)}},
    }
    torch.save(ckpt, out / "lightning.ckpt")
    expected["lightning.ckpt"] = {
        "state_dict": {k: describe(v) for k, v in ckpt_sd.items()},
        "tensors": {k: describe(v) for k, v in flat(ckpt).items()},
    }

    # -- files that must be refused (never executed)
    fake_module("some_package.helpers", helper_function=helper_function)
    torch.save({"weight": torch.ones(2), "evil": Evil()}, out / "malicious_system.pt")
    torch.save({"weight": torch.ones(2), "evil": EvilEval()}, out / "malicious_eval.pt")
    torch.save({"weight": torch.ones(2), "call": CallsHelper()}, out / "unknown_function.pt")

    # -- the pre-1.6 format, for its error message
    torch.save({"x": torch.ones(1)}, out / "legacy.pt", _use_new_zipfile_serialization=False)

    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(list(out.iterdir()))} files, {total} bytes, to {out}")


# Order the Python library writes tensors in: larger dtypes first, then by name.
ST_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
            "I64", "U64"]


def check_swift(directory: Path) -> int:
    expected = json.loads((directory / "expected.json").read_text())
    problems = []
    for filename, spec in sorted(expected.items()):
        path = directory / filename
        try:
            loaded = load_file(str(path))
        except Exception as error:  # report every file, not just the first failure
            problems.append(f"{filename}: safetensors.torch.load_file failed: {error}")
            continue
        data = path.read_bytes()
        n = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + n])
        if n % 8:
            problems.append(f"{filename}: header length {n} is not a multiple of 8")
        got_meta = header.pop("__metadata__", {})
        if got_meta != spec.get("metadata", {}):
            problems.append(f"{filename}: metadata {got_meta!r} != {spec.get('metadata', {})!r}")
        if set(loaded) != set(spec["tensors"]):
            problems.append(f"{filename}: names {sorted(loaded)} != {sorted(spec['tensors'])}")
        for name, want in spec["tensors"].items():
            if name not in loaded:
                continue
            got = describe(loaded[name])
            for field in ("dtype", "shape", "hex"):
                if got[field] != want[field]:
                    problems.append(f"{filename}: {name}: {field} {got[field]!r} != {want[field]!r}")
        # Same layout as the Python library: tensor order, offsets and data bytes.
        reference = save(loaded)
        rn = struct.unpack("<Q", reference[:8])[0]
        ref_header = json.loads(reference[8:8 + rn])
        ref_header.pop("__metadata__", None)
        if list(header.items()) != list(ref_header.items()):
            problems.append(f"{filename}: header differs from Python's layout:\n  swift  {header}\n  python {ref_header}")
        if data[8 + n:] != reference[8 + rn:]:
            problems.append(f"{filename}: data section differs from Python's")
    for p in problems:
        print(p)
    print(f"checked {len(expected)} files: {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check-swift", type=Path, metavar="DIR")
    args = parser.parse_args()
    if args.check_swift:
        sys.exit(check_swift(args.check_swift))
    make(args.out)
