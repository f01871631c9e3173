#!/usr/bin/env python3
"""Randomized single-node `com.microsoft` models with onnxruntime's outputs, for the interpreter's tests.

    contrib_cases.py OUT_DIR [--seed N] [--per-op N] [--ops A,B]

For every contrib op the interpreter implements, builds `--per-op` models with random shapes,
attributes, optional inputs and masks, runs onnxruntime (CPU) on random inputs and writes each
case in the layout of the ONNX node tests:

    OUT_DIR/<op>_<i>/model.onnx
    OUT_DIR/<op>_<i>/test_data_set_0/input_<k>.pb, output_<k>.pb

and OUT_DIR/cases.json, one entry per case: name, op, dtype, rtol, atol and a one-line
description of the randomized choices (so a failure names what was drawn).

An expected value of NaN means "onnxruntime leaves this undefined": GroupQueryAttention's output
rows for a padded first prompt read memory the kernel never wrote, so they are not compared.
BiasAdd has no CPU kernel in onnxruntime; its expected output is NumPy's input + bias + skip.
onnxruntime knows SimplifiedLayerNormalization only in the default domain; the com.microsoft
cases write the model in that domain but take their expected outputs from the default-domain model.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

F32, F16 = np.float32, np.float16
ONNX_TYPE = {np.dtype(F32): TP.FLOAT, np.dtype(F16): TP.FLOAT16, np.dtype(np.int32): TP.INT32,
             np.dtype(np.int64): TP.INT64}


class Case:
    """One node: its inputs in order (None for an omitted optional input) and output names."""

    def __init__(self, op, inputs, outputs, attrs, desc, dtype, domain="com.microsoft"):
        self.op, self.inputs, self.outputs, self.attrs = op, inputs, outputs, attrs
        self.desc, self.dtype, self.domain = desc, dtype, domain
        self.post = None          # post(expected outputs, feeds) -> expected outputs
        self.reference = None     # reference(feeds) -> outputs, instead of onnxruntime
        self.oracle_domain = None  # run onnxruntime on the model in this domain instead


def model_of(case, domain=None):
    domain = case.domain if domain is None else domain
    names = [n if a is not None else "" for n, a in case.inputs]
    node = helper.make_node(case.op, names, [o for o, _ in case.outputs], domain=domain, **case.attrs)
    ins = [helper.make_tensor_value_info(n, ONNX_TYPE[a.dtype], list(a.shape)) for n, a in case.inputs if a is not None]
    outs = [helper.make_tensor_value_info(o, t, None) for o, t in case.outputs if o]
    graph = helper.make_graph([node], case.op, ins, outs)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, ir_version=10, opset_imports=opsets)


def rnd(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def pick(rng, xs):
    return xs[int(rng.integers(len(xs)))]


def tdt(dtype):
    return TP.FLOAT if dtype == F32 else TP.FLOAT16


# ---------------------------------------------------------------- normalization

def skip_layer_norm(rng, dtype, simplified):
    B, S, H = int(rng.integers(1, 4)), int(rng.integers(1, 6)), pick(rng, [4, 8, 16, 33, 64])
    rank2 = rng.random() < 0.2
    xshape = [B * S, H] if rank2 else [B, S, H]
    skip_shape = xshape if rank2 else pick(rng, [[B, S, H], [1, S, H], [S, H]])
    x, skip = rnd(rng, xshape, dtype), rnd(rng, skip_shape, dtype)
    gamma = rnd(rng, [H], dtype)
    beta = rnd(rng, [H], dtype) if not simplified and rng.random() < 0.7 else None
    bias = rnd(rng, [H], dtype) if rng.random() < 0.5 else None
    attrs = {}
    if rng.random() < 0.5:
        attrs["epsilon"] = float(pick(rng, [1e-5, 1e-6, 1e-3]))
    outs = [("output", tdt(dtype))]
    for name in ["mean", "inv_std_var", "input_skip_bias_sum"]:
        t = tdt(dtype) if name == "input_skip_bias_sum" else TP.FLOAT
        outs.append((name, t) if rng.random() < 0.5 else ("", t))
    while outs and outs[-1][0] == "":
        outs.pop()
    op = "SkipSimplifiedLayerNormalization" if simplified else "SkipLayerNormalization"
    ins = [("input", x), ("skip", skip), ("gamma", gamma)]
    ins += [("bias", bias)] if simplified else [("beta", beta), ("bias", bias)]
    desc = f"x{xshape} skip{skip_shape} beta={beta is not None} bias={bias is not None} {attrs} outs={[o for o, _ in outs]}"
    return Case(op, ins, outs, attrs, desc, dtype)


def simplified_layer_norm(rng, dtype, domain):
    rank = int(rng.integers(2, 5))
    shape = [int(rng.integers(1, 5)) for _ in range(rank - 1)] + [pick(rng, [4, 8, 16, 33])]
    axis = pick(rng, [-1, -1, rank - 1, -2]) if rank > 2 else -1
    norm_shape = shape[axis:] if axis < 0 else shape[axis:]
    x, scale = rnd(rng, shape, dtype), rnd(rng, norm_shape, dtype)
    attrs = {"axis": axis}
    if rng.random() < 0.5:
        attrs["epsilon"] = float(pick(rng, [1e-5, 1e-6, 1e-3]))
    outs = [("Y", tdt(dtype))] + ([("inv_std_var", TP.FLOAT)] if rng.random() < 0.4 else [])
    c = Case("SimplifiedLayerNormalization", [("X", x), ("scale", scale)], outs, attrs,
             f"x{shape} {attrs} outs={len(outs)}", dtype, domain=domain)
    if domain == "com.microsoft":
        c.oracle_domain = ""
    return c


def embed_layer_norm(rng, dtype):
    B, S, H = int(rng.integers(1, 4)), int(rng.integers(1, 7)), pick(rng, [4, 8, 16, 24])
    V, P, G = int(rng.integers(5, 20)), S + int(rng.integers(0, 5)), int(rng.integers(2, 4))
    ids = rng.integers(0, V, size=[B, S]).astype(np.int32)
    has_seg = rng.random() < 0.6
    seg = rng.integers(0, G, size=[B, S]).astype(np.int32) if has_seg else None
    mask = None
    if rng.random() < 0.6:
        lens = rng.integers(1, S + 1, size=[B])
        mask = (np.arange(S)[None, :] < lens[:, None]).astype(np.int32)
    pos = None
    if rng.random() < 0.4:
        pos = rng.integers(0, P, size=pick(rng, [[B, S], [1, S]])).astype(np.int32)
    attrs = {}
    if rng.random() < 0.5:
        attrs["epsilon"] = float(pick(rng, [1e-5, 1e-12, 1e-3]))
    ins = [("input_ids", ids), ("segment_ids", seg), ("word_embedding", rnd(rng, [V, H], dtype)),
           ("position_embedding", rnd(rng, [P, H], dtype)),
           ("segment_embedding", rnd(rng, [G, H], dtype) if has_seg else None),
           ("gamma", rnd(rng, [H], dtype)), ("beta", rnd(rng, [H], dtype)), ("mask", mask), ("position_ids", pos)]
    while ins[-1][1] is None:
        ins.pop()
    outs = [("output", tdt(dtype)), ("mask_index", TP.INT32)]
    if rng.random() < 0.5:
        outs.append(("embedding_sum", tdt(dtype)))
    desc = f"B{B} S{S} H{H} seg={has_seg} mask={mask is not None} pos={None if pos is None else list(pos.shape)} {attrs} outs={len(outs)}"
    return Case("EmbedLayerNormalization", ins, outs, attrs, desc, dtype)


# ---------------------------------------------------------------- activations

def activation(rng, dtype, op):
    shape = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 3)))] + [pick(rng, [3, 8, 16, 31])]
    x = rnd(rng, shape, dtype, 2.0)
    ins, attrs = [("X", x)], {}
    if op == "BiasGelu" or (op == "FastGelu" and rng.random() < 0.5):
        ins.append(("bias", rnd(rng, [shape[-1]], dtype)))
    if op == "QuickGelu" and rng.random() < 0.7:
        attrs["alpha"] = float(pick(rng, [1.702, 1.0, 0.5, 2.5]))
    return Case(op, ins, [("Y", tdt(dtype))], attrs, f"x{shape} inputs={len(ins)} {attrs}", dtype)


def bias_add(rng, dtype):
    B, S, C = int(rng.integers(1, 4)), int(rng.integers(1, 6)), pick(rng, [4, 8, 32, 320])
    x, bias, skip = rnd(rng, [B, S, C], dtype), rnd(rng, [C], dtype), rnd(rng, [B, S, C], dtype)
    c = Case("BiasAdd", [("X", x), ("bias", bias), ("skip", skip)], [("Y", tdt(dtype))], {}, f"[{B},{S},{C}]", dtype)
    c.reference = lambda f: [(f["X"].astype(F32) + f["bias"].astype(F32) + f["skip"].astype(F32)).astype(dtype)]
    return c


# ---------------------------------------------------------------- rotary embedding

def rotary(rng, dtype):
    B, S, N, D = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 4)), pick(rng, [4, 8, 16])
    rd = pick(rng, [D, D, D // 2]) if D >= 8 else D
    four_d = rng.random() < 0.4
    x = rnd(rng, [B, N, S, D] if four_d else [B, S, N * D], dtype)
    maxS = S + int(rng.integers(0, 6))
    if rng.random() < 0.5:
        pos = rng.integers(0, maxS, size=[B, S]).astype(np.int64)
    else:
        pos = np.array([int(rng.integers(0, maxS - S + 1))], dtype=np.int64)
    theta = rng.random([maxS, rd // 2]) * 6.0
    attrs = {"interleaved": int(rng.random() < 0.5)}
    if not four_d or rd != D or rng.random() < 0.5:
        attrs["num_heads"] = N
    if rd != D or rng.random() < 0.3:
        attrs["rotary_embedding_dim"] = rd
        attrs["num_heads"] = N
    ins = [("input", x), ("position_ids", pos), ("cos_cache", np.cos(theta).astype(dtype)),
           ("sin_cache", np.sin(theta).astype(dtype))]
    desc = f"x{list(x.shape)} pos{list(pos.shape)} cache[{maxS},{rd // 2}] {attrs}"
    return Case("RotaryEmbedding", ins, [("output", tdt(dtype))], attrs, desc, dtype)


# ---------------------------------------------------------------- attention

def key_lengths(rng, B, T):
    return rng.integers(1, T + 1, size=[B]).astype(np.int32)


def attention(rng, dtype):
    B, S, N, D = int(rng.integers(1, 3)), int(rng.integers(1, 7)), int(rng.integers(1, 4)), pick(rng, [4, 8])
    Din = pick(rng, [8, 12, 16])
    hq = N * D
    hv = pick(rng, [hq, N * 4, N * 6])
    sizes = [hq, hq, hv]
    attrs = {"num_heads": N}
    if hv != hq or rng.random() < 0.2:
        attrs["qkv_hidden_sizes"] = sizes
    if rng.random() < 0.3:
        attrs["unidirectional"] = 1
    if rng.random() < 0.3:
        attrs["scale"] = float(pick(rng, [0.1, 0.5, 1.0]))
    if rng.random() < 0.2:
        attrs["mask_filter_value"] = -1000.0
    T = S
    form = pick(rng, ["none", "keylen", "keylen_start", "2d", "3d"])
    mask = None
    if form == "keylen":
        mask = key_lengths(rng, B, T)
    elif form == "keylen_start":
        ends = key_lengths(rng, B, T)
        mask = np.concatenate([ends, rng.integers(0, ends).astype(np.int32)])
    elif form == "2d":
        mask = (rng.random([B, T]) < 0.75).astype(np.int32)
    elif form == "3d":
        mask = (rng.random([B, S, T]) < 0.75).astype(np.int32)
    # The schema makes bias optional, but onnxruntime's CPU kernel crashes without it.
    bias = rnd(rng, [sum(sizes)], dtype)
    abias = rnd(rng, [pick(rng, [1, B]), N, S, T], dtype) if rng.random() < 0.3 else None
    ins = [("input", rnd(rng, [B, S, Din], dtype)), ("weights", rnd(rng, [Din, sum(sizes)], dtype, 0.5)),
           ("bias", bias), ("mask_index", mask), ("past", None), ("attention_bias", abias)]
    while ins[-1][1] is None:
        ins.pop()
    desc = f"B{B} S{S} N{N} D{D} hv{hv} mask={form} bias={bias is not None} attn_bias={abias is not None} {attrs}"
    return Case("Attention", ins, [("output", tdt(dtype))], attrs, desc, dtype)


def mha(rng, dtype):
    B, S, N, D = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 4)), pick(rng, [4, 8])
    unidirectional = rng.random() < 0.25
    L = S if unidirectional else int(rng.integers(1, 7))
    Dv = D
    attrs = {"num_heads": N}
    if unidirectional:
        attrs["unidirectional"] = 1
    if rng.random() < 0.3:
        attrs["scale"] = float(pick(rng, [0.1, 0.5]))
    past = (not unidirectional) and rng.random() < 0.3
    P = int(rng.integers(1, 4)) if past else 0
    T = P + L
    form = pick(rng, ["none", "keylen", "2d"])
    mask = key_lengths(rng, B, T) if form == "keylen" else (
        (rng.random([B, T]) < 0.75).astype(np.int32) if form == "2d" else None)
    bias = rnd(rng, [2 * N * D + N * Dv], dtype) if rng.random() < 0.5 else None
    abias = rnd(rng, [pick(rng, [1, B]), pick(rng, [1, N]), S, T], dtype) if rng.random() < 0.3 else None
    ins = [("query", rnd(rng, [B, S, N * D], dtype)), ("key", rnd(rng, [B, L, N * D], dtype)),
           ("value", rnd(rng, [B, L, N * Dv], dtype)), ("bias", bias), ("key_padding_mask", mask),
           ("attention_bias", abias),
           ("past_key", rnd(rng, [B, N, P, D], dtype) if past else None),
           ("past_value", rnd(rng, [B, N, P, Dv], dtype) if past else None)]
    while ins[-1][1] is None:
        ins.pop()
    outs = [("output", tdt(dtype))]
    if past or rng.random() < 0.3:
        outs += [("present_key", tdt(dtype)), ("present_value", tdt(dtype))]
    desc = f"B{B} S{S} L{L} P{P} N{N} D{D} mask={form} bias={bias is not None} attn_bias={None if abias is None else list(abias.shape)} {attrs} outs={len(outs)}"
    return Case("MultiHeadAttention", ins, outs, attrs, desc, dtype)


def gqa(rng, dtype):
    B, kvN = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    N = kvN * pick(rng, [1, 2, 3])
    # onnxruntime's CPU kernel wants head_size a multiple of 8.
    D = pick(rng, [8, 16])
    decode = rng.random() < 0.5
    attrs = {"num_heads": N, "kv_num_heads": kvN}
    if decode:
        # Token generation or a later chunk: past of capacity P, per-batch valid past lengths.
        # onnxruntime takes a chunk longer than one token after a past only at batch size 1.
        S = pick(rng, [1, 1, 2]) if B == 1 else 1
        P = int(rng.integers(2, 8))
        # A dynamic cache grows to P + S; a static one (total ≤ P) keeps its capacity P.
        static = rng.random() < 0.4 and P > S
        past_lens = rng.integers(0, (P - S if static else P) + 1, size=[B])
        total = past_lens + S
        seqlens = (total - 1).astype(np.int32)
        total_len = int(total.max()) if static else P + S
    else:
        S = int(rng.integers(1, 7))
        P = 0
        lens = rng.integers(1, S + 1, size=[B]) if rng.random() < 0.5 else np.full([B], S)
        seqlens = (lens - 1).astype(np.int32)
        total_len = S
    if rng.random() < 0.3:
        attrs["local_window_size"] = int(rng.integers(1, 4))
    if rng.random() < 0.3:
        attrs["softcap"] = float(pick(rng, [5.0, 20.0]))
    if rng.random() < 0.3:
        attrs["scale"] = float(pick(rng, [0.1, 0.5]))
    rotary = rng.random() < 0.4
    if rotary:
        # onnxruntime's rotary path wants head_size a multiple of 16.
        D = pick(rng, [16, 32])
    packed = rng.random() < 0.25
    q = rnd(rng, [B, S, N * D], dtype)
    k, v = rnd(rng, [B, S, kvN * D], dtype), rnd(rng, [B, S, kvN * D], dtype)
    if packed:
        q, k, v = np.concatenate([q, k, v], axis=2), None, None
    with_past = decode or rng.random() < 0.3
    ins = [("query", q), ("key", k), ("value", v),
           ("past_key", rnd(rng, [B, kvN, P, D], dtype) if with_past else None),
           ("past_value", rnd(rng, [B, kvN, P, D], dtype) if with_past else None),
           ("seqlens_k", seqlens), ("total_sequence_length", np.array(total_len, dtype=np.int32))]
    if rotary:
        attrs["do_rotary"] = 1
        attrs["rotary_interleaved"] = int(rng.random() < 0.5)
        maxS = max(P, total_len) + 2
        theta = rng.random([maxS, D // 2]) * 6.0
        ins += [("cos_cache", np.cos(theta).astype(dtype)), ("sin_cache", np.sin(theta).astype(dtype))]
    outs = [("output", tdt(dtype)), ("present_key", tdt(dtype)), ("present_value", tdt(dtype))]
    desc = f"B{B} S{S} P{P}{' static' if decode and static else ''} N{N} kvN{kvN} D{D} seqlens={seqlens.tolist()} total={total_len} packed={packed} past={with_past} {attrs}"
    c = Case("GroupQueryAttention", ins, outs, attrs, desc, dtype)

    def post(expected, feeds):
        # A padded first prompt: rows past a batch entry's length read unwritten scores in onnxruntime.
        if decode:
            return expected
        out = expected[0].copy()
        for b in range(B):
            out[b, int(seqlens[b]) + 1:, :] = np.nan
        return [out] + expected[1:]
    c.post = post
    return c


GENERATORS = {
    "SkipLayerNormalization": lambda r, d: skip_layer_norm(r, d, False),
    "SkipSimplifiedLayerNormalization": lambda r, d: skip_layer_norm(r, d, True),
    "SimplifiedLayerNormalization": lambda r, d: simplified_layer_norm(r, d, ""),
    "SimplifiedLayerNormalization.ms": lambda r, d: simplified_layer_norm(r, d, "com.microsoft"),
    "EmbedLayerNormalization": embed_layer_norm,
    "Gelu": lambda r, d: activation(r, d, "Gelu"),
    "BiasGelu": lambda r, d: activation(r, d, "BiasGelu"),
    "FastGelu": lambda r, d: activation(r, d, "FastGelu"),
    "QuickGelu": lambda r, d: activation(r, d, "QuickGelu"),
    "BiasAdd": bias_add,
    "RotaryEmbedding": rotary,
    "Attention": attention,
    "MultiHeadAttention": mha,
    "GroupQueryAttention": gqa,
}


def tolerance(dtype, op):
    if dtype == F16:
        return 2e-3, 2e-3
    # Attention sums many products; onnxruntime's MLAS GEMM orders them differently.
    return (1e-4, 1e-5) if "Attention" not in op else (1e-4, 1e-5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-op", type=int, default=12)
    ap.add_argument("--ops", default="")
    a = ap.parse_args()
    ops = [o for o in a.ops.split(",") if o] or list(GENERATORS)
    os.makedirs(a.out, exist_ok=True)
    manifest = []
    so = ort.SessionOptions()
    so.log_severity_level = 3
    for op in ops:
        rng = np.random.default_rng([a.seed, sum(map(ord, op))])
        for i in range(a.per_op):
            # About a third of the cases of each op run in float16.
            dtype = F16 if i % 3 == 2 else F32
            case = GENERATORS[op](rng, dtype)
            feeds = {n: v for n, v in case.inputs if v is not None}
            if os.environ.get("CONTRIB_CASES_VERBOSE"):
                print(op, i, case.desc, file=sys.stderr, flush=True)
            if case.reference is not None:
                expected = case.reference(feeds)
            else:
                oracle = model_of(case, case.oracle_domain)
                sess = ort.InferenceSession(oracle.SerializeToString(), so, providers=["CPUExecutionProvider"])
                expected = sess.run(None, feeds)
            if case.post is not None:
                expected = case.post(expected, feeds)
            name = f"{op}_{i}"
            d = os.path.join(a.out, name)
            os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
            onnx.save(model_of(case), os.path.join(d, "model.onnx"))
            for k, (n, v) in enumerate([(n, v) for n, v in case.inputs if v is not None]):
                t = numpy_helper.from_array(v, n)
                with open(os.path.join(d, "test_data_set_0", f"input_{k}.pb"), "wb") as f:
                    f.write(t.SerializeToString())
            for k, v in enumerate(expected):
                t = numpy_helper.from_array(np.asarray(v), f"out{k}")
                with open(os.path.join(d, "test_data_set_0", f"output_{k}.pb"), "wb") as f:
                    f.write(t.SerializeToString())
            rtol, atol = tolerance(dtype, op)
            manifest.append({"name": name, "op": op, "dtype": np.dtype(dtype).name, "rtol": rtol, "atol": atol,
                             "desc": case.desc})
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"{len(manifest)} cases in {a.out}")


if __name__ == "__main__":
    sys.exit(main())
