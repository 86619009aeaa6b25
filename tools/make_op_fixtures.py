#!/usr/bin/env python3
"""Reference values for Backdrop's tensor ops, computed with PyTorch.

Writes Tests/Fixtures/ops/cases.json and Tests/Fixtures/ops/tensors.safetensors. Each case is
{name, op, args, inputs, outputs, atol}: `inputs`/`outputs` name tensors in the safetensors file;
`op` and `args` are interpreted by Tests/TorchTests/OpsTests.swift, which runs the same op through
the Swift API and compares max-abs error against `atol`.

Run with the fixture venv (Debian torch 1.13 + safetensors 0.4.3):
    ~/.cache/backdrop/venv/bin/python tools/make_op_fixtures.py
The output is deterministic (seeded), so re-running it only changes the files when this script changes.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "ops")

torch.manual_seed(0)
torch.set_num_threads(1)

CASES = []
TENSORS = {}

F32 = 1e-5
F64 = 1e-10
DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.int64: "int64", torch.int32: "int32",
               torch.float16: "float16", torch.bfloat16: "bfloat16", torch.uint8: "uint8", torch.bool: "bool"}


def add(name, op, inputs, outputs, atol=F32, **args):
    """Registers a case; `inputs`/`outputs` are lists of tensors (None input = absent optional)."""
    assert all(c["name"] != name for c in CASES), name
    in_names, out_names = [], []
    for i, t in enumerate(inputs):
        if t is None:
            in_names.append(None)
            continue
        key = f"{name}/in{i}"
        TENSORS[key] = t.detach().contiguous().clone()
        in_names.append(key)
    for i, t in enumerate(outputs):
        key = f"{name}/out{i}"
        TENSORS[key] = t.detach().contiguous().clone()
        out_names.append(key)
    CASES.append(dict(name=name, op=op, args=args, inputs=in_names, outputs=out_names, atol=atol))


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=torch.float64).to(dtype)


# ---- creation -------------------------------------------------------------------------------------
def creation():
    add("arange_int", "arange", [], [torch.arange(-3, 7, 2)], start=-3, end=7, step=2, dtype="int64")
    add("arange_float", "arange", [], [torch.arange(0.5, 2.0, 0.25)], start=0.5, end=2.0, step=0.25, dtype="float32")
    add("arange_f64", "arange", [], [torch.arange(0, 1, 0.1, dtype=torch.float64)], F64,
        start=0, end=1, step=0.1, dtype="float64")
    add("linspace", "linspace", [], [torch.linspace(-1, 2, 7)], start=-1, end=2, steps=7, dtype="float32")
    add("linspace_f64", "linspace", [], [torch.linspace(0, 1, 11, dtype=torch.float64)], F64,
        start=0, end=1, steps=11, dtype="float64")
    add("eye", "eye", [], [torch.eye(4)], n=4, dtype="float32")
    add("full", "full", [], [torch.full((2, 3), 2.5)], shape=[2, 3], value=2.5, dtype="float32")


# ---- views, indexing, joining ---------------------------------------------------------------------
def views():
    x = randn(2, 3, 4)
    add("reshape", "reshape", [x], [x.reshape(4, -1)], shape=[4, -1])
    add("reshape_of_permuted", "reshape", [x], [x.permute(2, 0, 1).reshape(-1)], shape=[-1], permute=[2, 0, 1])
    add("view", "view", [x], [x.view(6, 4)], shape=[6, 4])
    add("permute", "permute", [x], [x.permute(2, 0, 1)], dims=[2, 0, 1])
    add("permute_contiguous", "contiguous", [x], [x.permute(1, 2, 0).contiguous()], permute=[1, 2, 0])
    add("clone", "clone", [x], [x.clone()])
    add("transpose", "transpose", [x], [x.transpose(0, 2)], dim0=0, dim1=2)
    add("transpose_neg", "transpose", [x], [x.transpose(-1, -2)], dim0=-1, dim1=-2)
    y = randn(5, 7)
    for nm, (s, e, st) in {"slice_basic": (1, 4, 1), "slice_step": (0, 7, 3), "slice_neg": (-4, -1, 1),
                           "slice_clamped": (-100, 100, 2), "slice_empty": (5, 2, 1),
                           "slice_open_start": (None, 3, 1), "slice_open_end": (2, None, 2)}.items():
        ref = y[:, s:e:st]
        add(nm, "slice", [y], [ref], dim=1, start=s, end=e, step=st)
    add("slice_dim0", "slice", [y], [y[-2:]], dim=0, start=-2, end=None, step=1)
    add("narrow", "narrow", [y], [y.narrow(1, 2, 3)], dim=1, start=2, length=3)
    add("narrow_neg", "narrow", [y], [y.narrow(0, -3, 2)], dim=0, start=-3, length=2)
    add("select", "select", [x], [x.select(1, 2)], dim=1, index=2)
    add("select_neg", "select", [x], [x.select(-1, -1)], dim=-1, index=-1)

    idx = torch.tensor([2, 0, 2])
    add("index_select", "index_select", [y, idx], [y.index_select(0, idx)], dim=0)
    add("index_select_i32", "index_select", [y, idx.int()], [y.index_select(1, idx.int())], dim=1)
    gidx = torch.randint(0, 7, (5, 4))
    add("gather", "gather", [y, gidx], [y.gather(1, gidx)], dim=1)
    sidx = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 1]])
    src = randn(2, 4)
    z = torch.zeros(3, 4)
    add("scatter", "scatter", [z, sidx, src], [z.scatter(0, sidx, src)], dim=0)
    add("scatter_add", "scatter_add", [z, sidx.repeat(2, 1), src.repeat(2, 1)],
        [z.scatter_add(0, sidx.repeat(2, 1), src.repeat(2, 1))], dim=0)

    rows, cols = torch.tensor([0, 4, 2]), torch.tensor([1, 1, 6])
    add("index_rows", "index", [y, rows], [y[rows]], pattern=[True])
    add("index_cols", "index", [y, cols], [y[:, cols]], pattern=[False, True])
    add("index_pairs", "index", [y, rows, cols], [y[rows, cols]], pattern=[True, True])
    bmask = y > 0
    add("index_bool", "index", [y, bmask], [y[bmask]], pattern=[True])
    vals = torch.tensor([10.0, 20.0, 30.0])
    ref = y.clone()
    ref[rows, cols] = vals
    add("index_put", "index_put", [y, rows, cols, vals], [ref], pattern=[True, True], accumulate=False)
    dup_rows = torch.tensor([1, 1, 3])
    ref = y.clone()
    ref.index_put_((dup_rows,), torch.ones(3, 7), accumulate=True)
    add("index_put_accumulate", "index_put", [y, dup_rows, torch.ones(3, 7)], [ref], pattern=[True], accumulate=True)

    mask = torch.tensor([True, False, True, False, True, True, False])  # broadcast over rows
    add("masked_fill", "masked_fill", [y, mask], [y.masked_fill(mask, -1.5)], value=-1.5)
    add("masked_select", "masked_select", [y, mask], [y.masked_select(mask)])
    a, b = randn(5, 1), randn(7)
    add("where", "where", [y > 0, a, b], [torch.where(y > 0, a, b)])

    p, q, r = randn(2, 3), randn(2, 1), randn(2, 2)
    add("cat", "cat", [p, q, r], [torch.cat([p, q, r], 1)], dim=1)
    add("cat_neg", "cat", [p, p], [torch.cat([p, p], -2)], dim=-2)
    add("stack", "stack", [p, p * 2, p * 3], [torch.stack([p, p * 2, p * 3], 1)], dim=1)
    add("stack_last", "stack", [p, -p], [torch.stack([p, -p], -1)], dim=-1)
    add("chunk", "chunk", [y], list(y.chunk(3, 1)), chunks=3, dim=1)
    add("chunk_uneven", "chunk", [y], list(y.chunk(2, 0)), chunks=2, dim=0)
    add("split_size", "split_size", [y], list(y.split(3, 1)), size=3, dim=1)
    add("split_sizes", "split_sizes", [y], list(y.split([1, 4, 2], 1)), sizes=[1, 4, 2], dim=1)
    add("repeat", "repeat", [p], [p.repeat(2, 1, 3)], repeats=[2, 1, 3])
    add("expand", "expand", [q], [q.expand(3, 2, 4)], shape=[3, 2, 4])
    add("expand_keep", "expand", [q], [q.expand(-1, 5)], shape=[-1, 5])
    add("flip", "flip", [x], [x.flip(0, 2)], dims=[0, 2])
    add("roll", "roll", [x], [x.roll((1, -2), (1, 2))], shifts=[1, -2], dims=[1, 2])
    add("roll_flat", "roll", [x], [x.roll(5)], shifts=[5], dims=[])
    s = randn(1, 3, 1, 2)
    add("squeeze_all", "squeeze", [s], [s.squeeze()], dim=None)
    add("squeeze_dim", "squeeze", [s], [s.squeeze(2)], dim=2)
    add("squeeze_noop", "squeeze", [s], [s.squeeze(1)], dim=1)
    add("unsqueeze", "unsqueeze", [p], [p.unsqueeze(1)], dim=1)
    add("unsqueeze_neg", "unsqueeze", [p], [p.unsqueeze(-1)], dim=-1)
    add("flatten", "flatten", [x], [x.flatten(1)], start=1, end=-1)
    add("flatten_all", "flatten", [x], [x.flatten()], start=0, end=-1)
    base = torch.arange(20, dtype=torch.float32)
    add("as_strided", "as_strided", [base], [base.as_strided((3, 3), (4, 1), 2)], shape=[3, 3], strides=[4, 1], offset=2)
    add("as_strided_overlap", "as_strided", [base], [base.as_strided((4, 3), (2, 1), 0)],
        shape=[4, 3], strides=[2, 1], offset=0)
    m = randn(4, 5)
    add("triu", "triu", [m], [m.triu()], diagonal=0)
    add("triu_1", "triu", [m], [m.triu(1)], diagonal=1)
    add("tril_neg", "tril", [m], [m.tril(-1)], diagonal=-1)
    nz = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 3.0]])
    add("nonzero", "nonzero", [nz], [nz.nonzero()])


# ---- elementwise ----------------------------------------------------------------------------------
UNARY = {
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt, "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
    "relu": torch.relu, "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu,
    "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "floor": torch.floor, "ceil": torch.ceil,
    "round": torch.round, "sign": torch.sign, "reciprocal": torch.reciprocal, "square": torch.square,
    "log1p": torch.log1p, "expm1": torch.expm1, "erf": torch.erf, "atan": torch.atan, "asin": torch.asin,
    "acos": torch.acos, "log2": torch.log2, "trunc": torch.trunc,
    "logical_not": torch.logical_not, "isnan": torch.isnan, "isfinite": torch.isfinite,
}
POSITIVE = {"log", "sqrt", "rsqrt", "log2"}
UNIT = {"asin", "acos"}


def elementwise():
    for fn, f in UNARY.items():
        x = randn(3, 5) * 2
        if fn in POSITIVE:
            x = x.abs() + 0.1
        if fn in UNIT:
            x = torch.tanh(x) * 0.95
        if fn in ("round", "floor", "ceil", "trunc"):
            x = torch.cat([x.flatten(), torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5])])
        if fn in ("isnan", "isfinite", "logical_not"):
            x = torch.tensor([0.0, 1.0, float("nan"), float("inf"), -float("inf"), -2.0])
        if fn == "reciprocal":
            x = x.sign() * (x.abs() + 0.2)
        add(f"unary_{fn}", "unary", [x], [f(x)], 1e-5 * max(1.0, float(f(x).abs().max())) if f(x).is_floating_point()
            else 0, fn=fn)
        if fn in ("exp", "tanh", "gelu", "sigmoid"):
            x64 = x.double()
            add(f"unary_{fn}_f64", "unary", [x64], [f(x64)], F64, fn=fn)

    binary = {
        "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
        "maximum": torch.maximum, "minimum": torch.minimum, "eq": torch.eq, "ne": torch.ne, "lt": torch.lt,
        "le": torch.le, "gt": torch.gt, "ge": torch.ge, "remainder": torch.remainder, "atan2": torch.atan2,
        "floor_divide": lambda a, b: torch.div(a, b, rounding_mode="floor"),
        "logical_and": torch.logical_and, "logical_or": torch.logical_or,
    }
    for fn, f in binary.items():
        a, b = randn(3, 1, 4), randn(2, 1)
        if fn == "pow":
            a = a.abs() + 0.5
        if fn in ("eq", "ne", "le", "ge"):
            b = torch.cat([a[0, 0, :2].reshape(2, 1)])  # some equal elements
        if fn in ("logical_and", "logical_or"):
            a, b = a > 0, b > 0
        out = f(a, b)
        tol = 1e-5 * max(1.0, float(out.abs().max())) if out.is_floating_point() else 0
        add(f"binary_{fn}", "binary", [a, b], [out], tol, fn=fn)

    for fn, f, s in [("add", torch.add, 2.5), ("sub", torch.sub, 0.75), ("mul", torch.mul, -3.0),
                     ("div", torch.div, 4.0), ("pow", torch.pow, 2.0), ("rsub", lambda t, v: v - t, 1.0),
                     ("rdiv", lambda t, v: v / t, 2.0), ("rpow", lambda t, v: v ** t, 2.0),
                     ("eq", torch.eq, 0.0), ("lt", torch.lt, 0.1), ("ge", torch.ge, -0.2),
                     ("remainder", torch.remainder, 0.7),
                     ("floor_divide", lambda t, v: torch.div(t, v, rounding_mode="floor"), 0.3)]:
        a = randn(2, 3)
        if fn == "eq":
            a[0, 1] = 0.0
        out = f(a, s)
        add(f"scalar_{fn}", "binary_scalar", [a], [out], 1e-5 * max(1.0, float(out.float().abs().max())),
            fn=fn, scalar=s)

    ai, bi = torch.tensor([[7, -7, 3]]), torch.tensor([[2], [-3]])
    add("binary_add_int", "binary", [ai, bi], [ai + bi], 0, fn="add")
    add("binary_div_int", "binary", [ai, bi], [ai / bi], F32, fn="div")
    add("binary_remainder_int", "binary", [ai, bi], [torch.remainder(ai, bi)], 0, fn="remainder")
    add("binary_floor_divide_int", "binary", [ai, bi], [torch.div(ai, bi, rounding_mode="floor")], 0, fn="floor_divide")
    a64, b64 = randn(4, 3, dtype=torch.float64), randn(3, dtype=torch.float64)
    add("binary_mul_f64", "binary", [a64, b64], [a64 * b64], F64, fn="mul")
    add("binary_mixed_promote", "binary", [a64.float(), b64], [a64.float() + b64], F32, fn="add")

    c = randn(3, 4)
    add("clamp_both", "clamp", [c], [c.clamp(-0.5, 0.5)], min=-0.5, max=0.5)
    add("clamp_min", "clamp", [c], [c.clamp(min=0.1)], min=0.1, max=None)
    add("clamp_max", "clamp", [c], [c.clamp(max=-0.1)], min=None, max=-0.1)
    e = randn(3, 4)
    add("lerp", "lerp", [c, e], [torch.lerp(c, e, 0.3)], weight=0.3)

    # in-place updates (the Swift side clones input 0 and applies the update to the clone)
    t, o, o2 = randn(3, 4), randn(3, 4), randn(3, 4).abs() + 0.5
    add("inplace_add_alpha", "inplace", [t, o], [t + 0.3 * o], fn="add_", alpha=0.3)
    add("inplace_sub_alpha", "inplace", [t, o], [t - 2.0 * o], fn="sub_", alpha=2.0)
    add("inplace_mul", "inplace", [t, o], [t * o], fn="mul_")
    add("inplace_mul_bcast", "inplace", [t, o[:1]], [t * o[:1]], fn="mul_")
    add("inplace_div", "inplace", [t, o2], [t / o2], fn="div_")
    add("inplace_mul_scalar", "inplace", [t], [t * 0.9], fn="mul_scalar", value=0.9)
    add("inplace_div_scalar", "inplace", [t], [t / 3.0], fn="div_scalar", value=3.0)
    add("inplace_add_scalar", "inplace", [t], [t + 1e-8], fn="add_scalar", value=1e-8)
    add("inplace_maximum", "inplace", [t, o], [torch.maximum(t, o)], fn="maximum_")
    add("inplace_addcmul", "inplace", [t, o, o2], [t.addcmul(o, o2, value=0.1)], fn="addcmul_", value=0.1)
    add("inplace_addcdiv", "inplace", [t, o, o2], [t.addcdiv(o, o2, value=-0.01)], fn="addcdiv_", value=-0.01)
    add("inplace_sqrt", "inplace", [o2], [o2.sqrt()], fn="sqrt_")
    add("inplace_copy_bcast", "inplace", [t, o[1]], [o[1].expand(3, 4)], fn="copy_")
    add("inplace_copy_convert", "inplace", [t, o.double()], [o], fn="copy_")
    add("inplace_fill", "inplace", [t], [torch.full((3, 4), 0.25)], fn="fill_", value=0.25)
    add("inplace_zero", "inplace", [t], [torch.zeros(3, 4)], fn="zero_")


# ---- reductions -----------------------------------------------------------------------------------
def reductions():
    x = randn(3, 4, 5)
    for fn in ("sum", "mean", "amax", "amin", "logsumexp", "prod"):
        f = getattr(torch, fn)
        for dims, keep in [([], False), ([1], False), ([0, 2], True), ([-1], True)]:
            if fn == "prod" and len(dims) > 1:
                continue  # torch.prod takes one dim
            if dims:
                out = f(x, dims[0] if fn == "prod" else dims, keepdim=keep)
            else:
                out = f(x) if fn != "logsumexp" else torch.logsumexp(x, (0, 1, 2))
            add(f"reduce_{fn}_{'_'.join(map(str, dims)) or 'all'}{'_keep' if keep else ''}", "reduce", [x], [out],
                1e-5 * max(1.0, float(out.abs().max())), fn=fn, dims=dims, keepdim=keep)
    x64 = x.double()
    add("reduce_sum_f64", "reduce", [x64], [x64.sum((0, 1))], F64, fn="sum", dims=[0, 1], keepdim=False)
    xi = torch.randint(-5, 5, (3, 4))
    add("reduce_sum_int", "reduce", [xi], [xi.sum(1)], 0, fn="sum", dims=[1], keepdim=False)
    b = torch.tensor([[True, False, False], [True, True, True]])
    add("reduce_any", "reduce", [b], [b.any(1)], 0, fn="any", dims=[1], keepdim=False)
    add("reduce_all", "reduce", [b], [b.all(1)], 0, fn="all", dims=[1], keepdim=False)
    add("reduce_any_all", "reduce", [b], [b.any()], 0, fn="any", dims=[], keepdim=False)
    add("reduce_all_all", "reduce", [b], [b.all()], 0, fn="all", dims=[], keepdim=False)

    for correction in (0, 1):
        for dims, keep in [([], False), ([1], True), ([0, 2], False)]:
            for fn in ("var", "std"):
                f = getattr(torch, fn)
                out = f(x, dim=dims or None, correction=correction, keepdim=keep)
                add(f"{fn}_c{correction}_{'_'.join(map(str, dims)) or 'all'}", fn, [x], [out], F32,
                    dims=dims, correction=correction, keepdim=keep)
    add("var_f64", "var", [x64], [x64.var(1, correction=1)], F64, dims=[1], correction=1, keepdim=False)

    v, i = x.max(1)
    add("max_dim", "max_dim", [x], [v, i], 0, dim=1, keepdim=False)
    v, i = x.min(-1, keepdim=True)
    add("min_dim_keep", "min_dim", [x], [v, i], 0, dim=-1, keepdim=True)
    add("max_all", "max_all", [x], [x.max()], 0)
    add("min_all", "min_all", [x], [x.min()], 0)
    add("argmax_dim", "argmax", [x], [x.argmax(2)], 0, dim=2, keepdim=False)
    add("argmax_flat", "argmax", [x], [x.argmax()], 0, dim=None, keepdim=False)
    add("argmin_dim_keep", "argmin", [x], [x.argmin(0, keepdim=True)], 0, dim=0, keepdim=True)
    add("cumsum", "cumsum", [x], [x.cumsum(1)], F32, dim=1)
    add("cumsum_int", "cumsum", [xi], [xi.cumsum(0)], 0, dim=0)
    v, i = x.sort(1)
    add("sort", "sort", [x], [v, i], 0, dim=1, descending=False)
    v, i = x.sort(-1, descending=True)
    add("sort_desc", "sort", [x], [v, i], 0, dim=-1, descending=True)
    v, i = x.topk(2, dim=-1)
    add("topk", "topk", [x], [v, i], 0, k=2, dim=-1, largest=True)
    v, i = x.topk(3, dim=0, largest=False)
    add("topk_smallest", "topk", [x], [v, i], 0, k=3, dim=0, largest=False)


# ---- linear algebra -------------------------------------------------------------------------------
def linalg():
    a, b = randn(3, 4), randn(4, 5)
    add("matmul_mm", "matmul", [a, b], [a @ b])
    add("matmul_vv", "matmul", [a[0], b[:, 0]], [a[0] @ b[:, 0]])
    add("matmul_mv", "matmul", [a, b[:, 0]], [a @ b[:, 0]])
    add("matmul_vm", "matmul", [a[0], b], [a[0] @ b])
    ba, bb = randn(2, 1, 3, 4), randn(5, 4, 2)
    add("matmul_batched_bcast", "matmul", [ba, bb], [ba @ bb])
    add("matmul_f64", "matmul", [a.double(), b.double()], [a.double() @ b.double()], F64)
    p, q, r = randn(2, 3, 4), randn(2, 4, 5), randn(2, 3, 5)
    add("bmm", "bmm", [p, q], [torch.bmm(p, q)])
    add("baddbmm", "baddbmm", [r, p, q], [torch.baddbmm(r, p, q, beta=0.5, alpha=2.0)], beta=0.5, alpha=2.0)
    add("baddbmm_beta0", "baddbmm", [r, p, q], [torch.baddbmm(r, p, q, beta=0.0, alpha=0.125)],
        beta=0.0, alpha=0.125)
    add("einsum_bmm", "einsum", [p, q], [torch.einsum("bij,bjk->bik", p, q)], equation="bij,bjk->bik")
    add("einsum_trace", "einsum", [a[:, :3]], [torch.einsum("ii", a[:, :3])], equation="ii")
    add("einsum_outer", "einsum", [a[0], b[0]], [torch.einsum("i,j->ij", a[0], b[0])], equation="i,j->ij")
    add("einsum_attn", "einsum", [p, p], [torch.einsum("bid,bjd->bij", p, p)], equation="bid,bjd->bij")
    x, w, bias = randn(2, 3, 4), randn(6, 4), randn(6)
    add("linear", "linear", [x, w, bias], [F.linear(x, w, bias)])
    add("linear_nobias", "linear", [x, w, None], [F.linear(x, w)])

    for dtype, tol, tag in [(torch.float32, 2e-4, "f32"), (torch.float64, 1e-9, "f64")]:
        m = randn(4, 4, dtype=dtype)
        sym = m + m.T
        w_, v_ = torch.linalg.eigh(sym)
        add(f"eigh_{tag}", "eigh", [sym], [w_, sym, torch.eye(4, dtype=dtype)], tol, upper=False)
        tri = sym.triu() + 7 * torch.tril(torch.ones(4, 4, dtype=dtype), -1)  # lower part must be ignored
        w_, _ = torch.linalg.eigh(tri, UPLO="U")
        add(f"eigh_upper_{tag}", "eigh", [tri], [w_, sym, torch.eye(4, dtype=dtype)], tol, upper=True)
        pm = randn(4, 4, dtype=dtype) + 3 * torch.eye(4, dtype=dtype)
        gen = pm @ torch.diag(torch.tensor([2.0, -1.5, 0.5, 3.0], dtype=dtype)) @ torch.linalg.inv(pm)
        ev = torch.linalg.eigvals(gen)
        add(f"eigvals_{tag}", "eigvals", [gen], [ev.real.sort().values, ev.imag.abs().max()], tol)
        rect = randn(3, 5, dtype=dtype)
        s = torch.linalg.svdvals(rect)
        add(f"svd_{tag}", "svd", [rect], [s, rect], tol, full_matrices=False)
        add(f"svd_full_{tag}", "svd", [rect], [s, rect], tol, full_matrices=True)
        sq = randn(2, 3, 3, dtype=dtype) + 2 * torch.eye(3, dtype=dtype)
        add(f"inv_{tag}", "inv", [sq], [torch.linalg.inv(sq)], tol)
        add(f"det_{tag}", "det", [sq], [torch.linalg.det(sq)], tol)
        rhs = randn(2, 3, 2, dtype=dtype)
        add(f"solve_{tag}", "solve", [sq, rhs], [torch.linalg.solve(sq, rhs)], tol)
        for ord_ in ["fro", "nuc", "2", "-2", "1", "inf"]:
            o = ord_ if ord_ in ("fro", "nuc") else float(ord_)
            add(f"matrix_norm_{ord_}_{tag}", "matrix_norm", [sq], [torch.linalg.matrix_norm(sq, o)], tol, ord=ord_)
        vec = randn(3, 4, dtype=dtype)
        add(f"vector_norm_2_{tag}", "vector_norm", [vec], [torch.linalg.vector_norm(vec)], tol,
            ord=2.0, dims=[], keepdim=False)
        add(f"vector_norm_1_{tag}", "vector_norm", [vec], [torch.linalg.vector_norm(vec, 1, dim=1, keepdim=True)], tol,
            ord=1.0, dims=[1], keepdim=True)
        add(f"vector_norm_inf_{tag}", "vector_norm", [vec], [torch.linalg.vector_norm(vec, math.inf, dim=0)], tol,
            ord="inf", dims=[0], keepdim=False)


# ---- neural-network functions ---------------------------------------------------------------------
def nn_functions():
    x = randn(2, 4, 7, 6)
    for nm, kw in {
        "conv2d": dict(), "conv2d_stride": dict(stride=2), "conv2d_padding": dict(padding=1),
        "conv2d_rect": dict(stride=(2, 1), padding=(0, 2)), "conv2d_dilation": dict(dilation=2, padding=2),
        "conv2d_groups": dict(groups=2, padding=1), "conv2d_depthwise": dict(groups=4, padding=1, stride=2),
    }.items():
        groups = kw.get("groups", 1)
        w, b = randn(8, 4 // groups, 3, 3), randn(8)
        out = F.conv2d(x, w, b, **kw)
        add(nm, "conv2d", [x, w, b], [out], 1e-4, **pair_args(kw, ["stride", "padding", "dilation"]), groups=groups)
    w = randn(8, 4, 1, 1)
    add("conv2d_nobias_1x1", "conv2d", [x, w, None], [F.conv2d(x, w)], 1e-4, stride=[1], padding=[0], dilation=[1],
        groups=1)

    xt = randn(2, 4, 5, 4)
    for nm, kw in {
        "conv_transpose2d": dict(), "conv_transpose2d_stride": dict(stride=2),
        "conv_transpose2d_pad_outpad": dict(stride=2, padding=1, output_padding=1),
        "conv_transpose2d_groups": dict(groups=2, stride=(2, 1)), "conv_transpose2d_dilation": dict(dilation=2, padding=1),
    }.items():
        groups = kw.get("groups", 1)
        w, b = randn(4, 6 // groups, 3, 3), randn(6)
        out = F.conv_transpose2d(xt, w, b, **kw)
        add(nm, "conv_transpose2d", [xt, w, b], [out], 1e-4,
            **pair_args(kw, ["stride", "padding", "output_padding", "dilation"]), groups=groups)

    for nm, kw in {
        "avg_pool2d": dict(kernel_size=2), "avg_pool2d_stride_pad": dict(kernel_size=3, stride=2, padding=1),
        "avg_pool2d_no_count_pad": dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
        "avg_pool2d_ceil": dict(kernel_size=2, ceil_mode=True),
    }.items():
        add(nm, "avg_pool2d", [x], [F.avg_pool2d(x, **kw)], **pool_args(kw),
            count_include_pad=kw.get("count_include_pad", True))
    for nm, kw in {
        "max_pool2d": dict(kernel_size=2), "max_pool2d_stride_pad": dict(kernel_size=3, stride=2, padding=1),
        "max_pool2d_dilation": dict(kernel_size=2, dilation=2), "max_pool2d_ceil": dict(kernel_size=(2, 3), ceil_mode=True),
    }.items():
        add(nm, "max_pool2d", [x], [F.max_pool2d(x, **kw)], **pool_args(kw), dilation=pair(kw.get("dilation", 1)))
    add("adaptive_avg_pool2d", "adaptive_avg_pool2d", [x], [F.adaptive_avg_pool2d(x, (3, 4))], output_size=[3, 4])
    add("adaptive_avg_pool2d_1", "adaptive_avg_pool2d", [x], [F.adaptive_avg_pool2d(x, 1)], output_size=[1])
    add("adaptive_max_pool2d", "adaptive_max_pool2d", [x], [F.adaptive_max_pool2d(x, (5, 4))], output_size=[5, 4])

    w, b = randn(4), randn(4)
    add("group_norm", "group_norm", [x, w, b], [F.group_norm(x, 2, w, b)], groups=2, eps=1e-5)
    add("group_norm_noaffine", "group_norm", [x, None, None], [F.group_norm(x, 4, eps=1e-3)], groups=4, eps=1e-3)
    lw, lb = randn(7, 6), randn(7, 6)
    add("layer_norm", "layer_norm", [x, lw, lb], [F.layer_norm(x, (7, 6), lw, lb)], shape=[7, 6], eps=1e-5)
    add("layer_norm_last", "layer_norm", [x, lw[0], None], [F.layer_norm(x, (6,), lw[0], eps=1e-6)],
        shape=[6], eps=1e-6)
    mean, var = randn(4), randn(4).abs() + 0.5
    add("batch_norm_eval", "batch_norm", [x, mean, var, w, b], [F.batch_norm(x, mean, var, w, b, eps=1e-3)],
        training=False, momentum=0.1, eps=1e-3)
    rm, rv = mean.clone(), var.clone()
    out = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2, eps=1e-5)
    add("batch_norm_train", "batch_norm", [x, mean, var, w, b], [out, rm, rv], training=True, momentum=0.2, eps=1e-5)

    s = randn(3, 5) * 3
    add("softmax", "softmax", [s], [F.softmax(s, 1)], dim=1)
    add("softmax_dim0", "softmax", [s], [F.softmax(s, 0)], dim=0)
    add("log_softmax", "log_softmax", [s], [F.log_softmax(s, -1)], dim=-1)
    emb, ids = randn(10, 4), torch.tensor([[1, 3, 3], [9, 0, 2]])
    add("embedding", "embedding", [emb, ids], [F.embedding(ids, emb)], 0)

    img = randn(1, 2, 6, 8)
    for nm, kw in {
        "interp_nearest_up": dict(size=(9, 13), mode="nearest"),
        "interp_nearest_down": dict(size=(4, 5), mode="nearest"),
        "interp_nearest_scale": dict(scale_factor=1.5, mode="nearest"),
        "interp_bilinear": dict(size=(9, 13), mode="bilinear", align_corners=False),
        "interp_bilinear_ac": dict(size=(9, 13), mode="bilinear", align_corners=True),
        "interp_bilinear_default": dict(size=(4, 11), mode="bilinear"),
        "interp_bilinear_scale": dict(scale_factor=(0.5, 1.75), mode="bilinear", align_corners=False),
        "interp_bicubic": dict(size=(9, 13), mode="bicubic", align_corners=False),
        "interp_bicubic_ac": dict(size=(5, 5), mode="bicubic", align_corners=True),
        "interp_bilinear_aa": dict(size=(3, 5), mode="bilinear", antialias=True, align_corners=False),
        "interp_bicubic_aa": dict(size=(3, 3), mode="bicubic", antialias=True, align_corners=False),
    }.items():
        out = F.interpolate(img, **kw)
        sf = kw.get("scale_factor")
        add(nm, "interpolate", [img], [out], 1e-5, size=list(kw["size"]) if "size" in kw else None,
            scale=None if sf is None else ([sf, sf] if isinstance(sf, float) else list(sf)),
            mode=kw["mode"], align_corners=kw.get("align_corners"), antialias=kw.get("antialias", False))

    src = randn(2, 3, 5, 6)
    grid = torch.rand(2, 4, 7, 2) * 2.4 - 1.2
    for mode in ("bilinear", "nearest", "bicubic"):
        for padding in ("zeros", "border", "reflection"):
            for ac in (False, True):
                if mode != "bilinear" and padding != "zeros" and ac:
                    continue
                out = F.grid_sample(src, grid, mode=mode, padding_mode=padding, align_corners=ac)
                add(f"grid_sample_{mode}_{padding}_{'ac' if ac else 'noac'}", "grid_sample", [src, grid], [out], 1e-5,
                    mode=mode, padding_mode=padding, align_corners=ac)

    for mode, pads, value in [("constant", [1, 2], 0.0), ("constant", [1, 0, 2, 1], -2.0),
                              ("constant", [0, 0, 1, 1, 1, 0], 3.0),
                              ("reflect", [2, 1, 1, 3], 0.0), ("replicate", [2, 1, 1, 3], 0.0),
                              ("circular", [2, 1, 1, 3], 0.0)]:
        out = F.pad(img, pads, mode=mode, value=value) if mode == "constant" else F.pad(img, pads, mode=mode)
        add(f"pad_{mode}_{len(pads)}_{'_'.join(map(str, pads))}", "pad", [img], [out], 0, pads=pads, mode=mode,
            value=value)

    q, k, v = randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 5)
    add("sdpa", "sdpa", [q, k, v, None], [explicit_attention(q, k, v)], causal=False, scale=None)
    add("sdpa_scale", "sdpa", [q, k, v, None], [explicit_attention(q, k, v, scale=0.5)], causal=False, scale=0.5)
    additive = randn(4, 6)
    add("sdpa_float_mask", "sdpa", [q, k, v, additive], [explicit_attention(q, k, v, mask=additive)],
        causal=False, scale=None)
    bool_mask = torch.rand(2, 1, 4, 6) > 0.3
    bool_mask[..., 0] = True  # every query keeps at least one key
    add("sdpa_bool_mask", "sdpa", [q, k, v, bool_mask], [explicit_attention(q, k, v, mask=bool_mask)],
        causal=False, scale=None)
    kc, vc = randn(2, 3, 4, 8), randn(2, 3, 4, 5)
    add("sdpa_causal", "sdpa", [q, kc, vc, None], [explicit_attention(q, kc, vc, causal=True)],
        causal=True, scale=None)

    pred, tgt = randn(3, 4), randn(3, 4)
    for red in ("none", "mean", "sum"):
        add(f"mse_loss_{red}", "mse_loss", [pred, tgt], [F.mse_loss(pred, tgt, reduction=red)], reduction=red)
    logits, labels = randn(4, 5), torch.tensor([0, 4, 2, 2])
    for red in ("none", "mean", "sum"):
        add(f"cross_entropy_{red}", "cross_entropy", [logits, labels], [F.cross_entropy(logits, labels, reduction=red)],
            reduction=red)
    probs = F.softmax(randn(4, 5), 1)
    add("cross_entropy_probs", "cross_entropy", [logits, probs], [F.cross_entropy(logits, probs)], reduction="mean")


def explicit_attention(q, k, v, mask=None, causal=False, scale=None):
    """softmax(q kᵀ·scale + mask) v, written out (torch 1.13 has no scaled_dot_product_attention)."""
    scores = q @ k.transpose(-2, -1) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, -math.inf)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(-1) @ v


def pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v]


def pair_args(kw, keys):
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "output_padding": 0}
    return {k: pair(kw.get(k, defaults[k])) for k in keys}


def pool_args(kw):
    return dict(kernel=pair(kw["kernel_size"]), stride=pair(kw["stride"]) if "stride" in kw else None,
                padding=pair(kw.get("padding", 0)), ceil_mode=kw.get("ceil_mode", False))


# ---- gradients ------------------------------------------------------------------------------------
def grad_case(name, fn, inputs, wrt, forward, atol=1e-4, **args):
    """Gradient of sum(forward(*inputs) * R) w.r.t. inputs[wrt]; R is stored as the last input."""
    leaves = [t.detach().clone().requires_grad_(i in wrt) if t is not None else None for i, t in enumerate(inputs)]
    out = forward(*leaves)
    r = randn(*out.shape)
    (out * r).sum().backward()
    add(name, "grad", inputs + [r], [leaves[i].grad for i in wrt], atol, fn=fn, wrt=wrt, **args)


def gradients():
    x, w, b = randn(1, 4, 6, 5), randn(6, 2, 3, 3), randn(6)
    grad_case("grad_conv2d", "conv2d", [x, w, b], [0, 1, 2],
              lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=2),
              stride=[2], padding=[1], dilation=[1], groups=2)
    gw, gb = randn(4), randn(4)
    grad_case("grad_group_norm", "group_norm", [x, gw, gb], [0, 1, 2], lambda x, w, b: F.group_norm(x, 2, w, b),
              groups=2, eps=1e-5)
    lw, lb = randn(5), randn(5)
    grad_case("grad_layer_norm", "layer_norm", [x, lw, lb], [0, 1, 2], lambda x, w, b: F.layer_norm(x, (5,), w, b),
              shape=[5], eps=1e-5)
    s = randn(3, 7)
    grad_case("grad_softmax", "softmax", [s], [0], lambda s: F.softmax(s, -1), dim=-1)
    grad_case("grad_interp_bilinear", "interpolate", [x], [0],
              lambda x: F.interpolate(x, size=(9, 4), mode="bilinear", align_corners=False),
              size=[9, 4], scale=None, mode="bilinear", align_corners=False, antialias=False)
    src, grid = randn(1, 2, 5, 6), torch.rand(1, 3, 4, 2) * 2.2 - 1.1
    grad_case("grad_grid_sample", "grid_sample", [src, grid], [0, 1],
              lambda s, g: F.grid_sample(s, g, mode="bilinear", padding_mode="border", align_corners=True),
              mode="bilinear", padding_mode="border", align_corners=True)
    q, k, v = randn(1, 2, 3, 4), randn(1, 2, 5, 4), randn(1, 2, 5, 3)
    grad_case("grad_sdpa", "sdpa", [q, k, v, None], [0, 1, 2], lambda q, k, v, m: explicit_attention(q, k, v),
              causal=False, scale=None)
    grad_case("grad_sdpa_causal", "sdpa", [q, k[:, :, :3], v[:, :, :3], None], [0, 1, 2],
              lambda q, k, v, m: explicit_attention(q, k, v, causal=True), causal=True, scale=None)


def main():
    creation()
    views()
    elementwise()
    reductions()
    linalg()
    nn_functions()
    gradients()
    os.makedirs(OUT, exist_ok=True)
    tensors_path = os.path.join(OUT, "tensors.safetensors")
# One metadata key only: safetensors writes the metadata map in hash order, so two keys would
    # make the file's bytes differ from run to run.
    save_file(TENSORS, tensors_path, metadata={"generator": f"tools/make_op_fixtures.py, torch {torch.__version__}"})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": CASES}, f, indent=1)
        f.write("\n")
    size = os.path.getsize(tensors_path)
    print(f"{len(CASES)} cases, {len(TENSORS)} tensors, {size / 1e6:.2f} MB", file=sys.stderr)
    assert size < 1.5e6, "fixtures too large"


if __name__ == "__main__":
    main()
