#!/usr/bin/env python3
"""h5py side of Backdrop's HDF5 tests (reference environment with Debian's python3-h5py).

    python tools/hdf5_reference.py --write FILE   writes a file with h5py (committed as a fixture)
    python tools/hdf5_reference.py --dump FILE    prints every dataset (dtype, shape, values) and root
                                                  attribute of FILE as JSON, for the Swift test to compare
"""
import argparse
import json

import h5py
import numpy as np


def write(path):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("latents/f32", data=rng.standard_normal((5, 4, 3)).astype(np.float32),
                         chunks=(2, 4, 3), compression="gzip", compression_opts=4)
        f.create_dataset("latents/f16", data=rng.standard_normal((3, 2)).astype(np.float16))
        f.create_dataset("index", data=np.arange(-3, 7, dtype=np.int64))
        f.create_dataset("pixels", data=rng.integers(0, 256, (2, 3), dtype=np.uint8))
        f.create_dataset("f64", data=np.linspace(0, 1, 4))
        f.attrs["model_hash"] = "abc123"
        f.attrs["prompt_prefix"] = "This is one view of a scene. "
        f.attrs["unicode"] = "équirectangulaire ✓"


def dump(path):
    out = {"datasets": {}, "attributes": {}}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                out["datasets"][name] = {"dtype": str(data.dtype), "shape": list(data.shape),
                                         "values": np.asarray(data, dtype=np.float64).ravel().tolist(),
                                         "chunks": list(obj.chunks) if obj.chunks else None,
                                         "compression": obj.compression}
        f.visititems(visit)
        for key, value in f.attrs.items():
            out["attributes"][key] = value.decode() if isinstance(value, bytes) else str(value)
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="FILE")
    group.add_argument("--dump", metavar="FILE")
    args = parser.parse_args()
    write(args.write) if args.write else dump(args.dump)
