#!/usr/bin/env python3
"""Pruning benchmark: onnxruntime latency of original vs pruned models at 30% and 50% sparsity.

usage: bench_pruning.py [--prunec BIN] [--sparsity 0.3,0.5] [--round-to 1,16] [--threads N] [--seconds S]
                        [--min-runs R] [--opt-level all|extended|basic] [--cache DIR]
                        [--models NAME,...] [--no-examples] [--rebuild] [--json OUT]

Prunes each model with `prunec MODEL --pass 'magnitude{sparsity=S}' --pass fold-masks` (structured
sparsity: every prunable group loses the fraction S of its units), reads parameters and MACs of the
original and the result with `prunec inspect --json`, and times both in onnxruntime (CPU provider,
intra-op threads = --threads, default 1; all graph optimizations unless --opt-level says otherwise:
'extended' leaves out the NCHWc convolution layout). Original and pruned runs alternate in one
loop (which one goes first flips every iteration) until --seconds (default 2) of timed runs and at
least --min-runs (default 10) runs of each are done, so machine noise hits both alike; the figure
is each side's median. The result is not validated (prunec's --no-validate): this measures speed.
Each sparsity runs once per --round-to value (magnitude's `round-to`: kept channel and neuron counts
are multiples of it; 16 matches the channel blocking of onnxruntime's NCHWc convolutions on AVX-512).

Models:
  encoder   4 layers of a BERT-base encoder (hidden 768, 12 heads of 64, FFN 3072, GELU in its Erf
            form) written the way torch's legacy ONNX exporter writes it; inputs `hidden` float
            [batch, seq, 768] and `attention_mask` int64 [batch, seq]; run at batch 1 x seq 128.
  convnet   a ResNet-18-like CNN (7x7/2 stem, 4 stages of 2 basic blocks at 64/128/256/512 channels,
            1x1 downsample convolutions, BatchNormalization with non-trivial statistics, global
            average pool, Gemm to 1000 classes) on [1, 3, 224, 224].
  examples/models/*.onnx, with the inputs in their .calib.npz (skip with --no-examples).
The two built models are generated with a fixed seed into --cache (default .cache/bench-models/,
reused when present; --rebuild regenerates them); the pruned models go there too.

Prints a Markdown table (ratios are pruned / original; efficiency = (1 - latency ratio) /
(1 - MACs ratio): the share of the MAC reduction that shows up as a latency reduction; the goal is
>= 0.8) and, with --json, writes the rows as one JSON object. Exits non-zero only on errors (a
prunec failure, a model that does not load or run), not when the goal is missed.

Example (what `make bench-prune` runs):
  .venv/bin/python scripts/bench_pruning.py --prunec .build/release/prunec --json .cache/bench-prune.json
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET = 17


class Builder:
    """A tiny graph builder that names values the way torch's exporter does (/scope/Op_N_output_0)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.counts = [], [], {}

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, scope, array):
        """A Constant node, as the legacy exporter emits for shape pieces and scalars."""
        out = self._name(scope, "Constant")
        self.nodes.append(helper.make_node("Constant", [], [out], name=out.rsplit("_output", 1)[0],
                                           value=numpy_helper.from_array(np.asarray(array))))
        return out

    def op(self, scope, op_type, inputs, **attrs):
        out = self._name(scope, op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out.rsplit("_output", 1)[0], **attrs))
        return out

    def _name(self, scope, op_type):
        key = (scope, op_type)
        n = self.counts.get(key, 0)
        self.counts[key] = n + 1
        suffix = "" if n == 0 else f"_{n}"
        return f"{scope}/{op_type}{suffix}_output_0"

    def normal(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def uniform(self, shape, lo, hi):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# encoder: BERT-base-like, 4 layers, legacy-exporter style


def build_encoder(layers=4, hidden=768, heads=12, ffn=3072, seed=0):
    head_dim = hidden // heads
    b = Builder(seed)
    x = "hidden"
    inputs = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "sequence", hidden]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])]

    # Extended attention mask: (1 - mask[:, None, None, :]) * -10000, computed once.
    s = "/encoder"
    m = b.op(s, "Unsqueeze", ["attention_mask", b.const(s, np.array([1], np.int64))])
    m = b.op(s, "Unsqueeze", [m, b.const(s, np.array([2], np.int64))])
    m = b.op(s, "Cast", [m], to=TensorProto.FLOAT)
    m = b.op(s, "Sub", [b.const(s, np.array(1.0, np.float32)), m])
    mask = b.op(s, "Mul", [m, b.const(s, np.array(-10000.0, np.float32))])

    def linear(scope, name, inp, n_in, n_out):
        w = b.init(f"onnx::MatMul_{name}", b.normal((n_in, n_out), 0.02))
        bias = b.init(f"{name}.bias", b.normal((n_out,), 0.02))
        y = b.op(scope, "MatMul", [inp, w])
        return b.op(scope, "Add", [bias, y])

    def layernorm(scope, name, inp):
        g = b.init(f"{name}.weight", b.uniform((hidden,), 0.8, 1.2))
        beta = b.init(f"{name}.bias", b.normal((hidden,), 0.05))
        return b.op(scope, "LayerNormalization", [inp, g, beta], axis=-1, epsilon=1e-12)

    for i in range(layers):
        p, s = f"encoder.layer.{i}", f"/encoder/layer.{i}/attention/self"
        # Batch and sequence length read off the layer's input, once per layer.
        shape = b.op(s, "Shape", [x])
        batch = b.op(s, "Gather", [shape, b.const(s, np.array(0, np.int64))], axis=0)
        seq = b.op(s, "Gather", [shape, b.const(s, np.array(1, np.int64))], axis=0)

        def split_target():
            ub = b.op(s, "Unsqueeze", [batch, b.const(s, np.array([0], np.int64))])
            us = b.op(s, "Unsqueeze", [seq, b.const(s, np.array([0], np.int64))])
            return b.op(s, "Concat", [ub, us, b.const(s, np.array([heads], np.int64)),
                                      b.const(s, np.array([head_dim], np.int64))], axis=0)

        q = linear(f"{s}/query", f"{p}.attention.self.query", x, hidden, hidden)
        q = b.op(s, "Transpose", [b.op(s, "Reshape", [q, split_target()])], perm=[0, 2, 1, 3])
        k = linear(f"{s}/key", f"{p}.attention.self.key", x, hidden, hidden)
        k = b.op(s, "Reshape", [k, split_target()])
        v = linear(f"{s}/value", f"{p}.attention.self.value", x, hidden, hidden)
        v = b.op(s, "Transpose", [b.op(s, "Reshape", [v, split_target()])], perm=[0, 2, 1, 3])
        k = b.op(s, "Transpose", [k], perm=[0, 2, 3, 1])
        scores = b.op(s, "MatMul", [q, k])
        scores = b.op(s, "Div", [scores, b.const(s, np.array(np.sqrt(head_dim), np.float32))])
        scores = b.op(s, "Add", [scores, mask])
        probs = b.op(s, "Softmax", [scores], axis=-1)
        ctx = b.op(s, "MatMul", [probs, v])
        ctx = b.op(s, "Transpose", [ctx], perm=[0, 2, 1, 3])
        ub = b.op(s, "Unsqueeze", [batch, b.const(s, np.array([0], np.int64))])
        us = b.op(s, "Unsqueeze", [seq, b.const(s, np.array([0], np.int64))])
        merge = b.op(s, "Concat", [ub, us, b.const(s, np.array([hidden], np.int64))], axis=0)
        ctx = b.op(s, "Reshape", [ctx, merge])

        so = f"/encoder/layer.{i}/attention/output"
        y = linear(f"{so}/dense", f"{p}.attention.output.dense", ctx, hidden, hidden)
        y = b.op(so, "Add", [y, x])
        x = layernorm(f"{so}/LayerNorm", f"{p}.attention.output.LayerNorm", y)

        si = f"/encoder/layer.{i}/intermediate"
        h = linear(f"{si}/dense", f"{p}.intermediate.dense", x, hidden, ffn)
        sa = f"{si}/intermediate_act_fn"
        g = b.op(sa, "Div", [h, b.const(sa, np.array(1.4142135, np.float32))])
        g = b.op(sa, "Erf", [g])
        g = b.op(sa, "Add", [g, b.const(sa, np.array(1.0, np.float32))])
        g = b.op(sa, "Mul", [h, g])
        g = b.op(sa, "Mul", [g, b.const(sa, np.array(0.5, np.float32))])

        sf = f"/encoder/layer.{i}/output"
        y = linear(f"{sf}/dense", f"{p}.output.dense", g, ffn, hidden)
        y = b.op(sf, "Add", [y, x])
        x = layernorm(f"{sf}/LayerNorm", f"{p}.output.LayerNorm", y)

    b.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="/encoder/Identity"))
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])]
    graph = helper.make_graph(b.nodes, "encoder", inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pytorch", producer_version="2.1.0")
    model.ir_version = 8

    rng = np.random.default_rng(seed + 1)
    seq_len = 128
    am = np.ones((1, seq_len), np.int64)
    am[:, seq_len - 16:] = 0  # the last 16 positions are padding
    feeds = {"hidden": rng.standard_normal((1, seq_len, hidden)).astype(np.float32), "attention_mask": am}
    return model, feeds


# ---------------------------------------------------------------------------------------------
# The ResNets: torchvision's layout, legacy-exporter style. The stem, Conv+BN and the classifier
# are shared; the builders differ in their blocks.


def conv_bn(b, scope, name, inp, cin, cout, k, stride, gamma=(0.5, 1.5)):
    w = b.init(f"{name}.weight", b.normal((cout, cin, k, k), np.sqrt(2.0 / (cin * k * k))))
    y = b.op(scope, "Conv", [inp, w], kernel_shape=[k, k], strides=[stride, stride],
             pads=[k // 2] * 4, dilations=[1, 1], group=1)
    bn = name.replace("conv", "bn").replace("downsample.0", "downsample.1")
    # Running statistics that are not the identity: the BN really rescales and shifts.
    args = [b.init(f"{bn}.weight", b.uniform((cout,), *gamma)),
            b.init(f"{bn}.bias", b.normal((cout,), 0.1)),
            b.init(f"{bn}.running_mean", b.normal((cout,), 0.2)),
            b.init(f"{bn}.running_var", b.uniform((cout,), 0.5, 2.0))]
    bn_scope = scope.replace("conv", "bn").replace("downsample.0", "downsample.1")
    return b.op(bn_scope, "BatchNormalization", [y] + args, epsilon=1e-5, momentum=0.9)


def resnet_stem(b):
    """conv1 (7x7, stride 2) + BN + Relu + 3x3 max pool on a 1x3x224x224 `input`."""
    x = conv_bn(b, "/conv1", "conv1", "input", 3, 64, 7, 2)
    x = b.op("/relu", "Relu", [x])
    return b.op("/maxpool", "MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                ceil_mode=0, dilations=[1, 1])


def resnet_model(b, x, cin, classes, graph_name, seed):
    """Global pool, flatten and the fc layer after `x` (`cin` channels); the model and its input."""
    x = b.op("/avgpool", "GlobalAveragePool", [x])
    x = b.op("", "Flatten", [x], axis=1)
    w = b.init("fc.weight", b.normal((classes, cin), 1.0 / np.sqrt(cin)))
    bias = b.init("fc.bias", b.normal((classes,), 0.01))
    y = b.op("/fc", "Gemm", [x, w, bias], alpha=1.0, beta=1.0, transB=1)
    b.nodes.append(helper.make_node("Identity", [y], ["output"], name="/Identity"))
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, classes])]
    graph = helper.make_graph(b.nodes, graph_name, inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pytorch", producer_version="2.1.0")
    model.ir_version = 8
    feeds = {"input": np.random.default_rng(seed + 1).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    return model, feeds


def build_convnet(seed=0, classes=1000):
    """ResNet-18-like: basic blocks 2-2-2-2."""
    b = Builder(seed)
    x = resnet_stem(b)
    cin = 64
    for stage, cout in enumerate([64, 128, 256, 512], start=1):
        for blk in range(2):
            stride = 2 if (stage > 1 and blk == 0) else 1
            s, n = f"/layer{stage}/layer{stage}.{blk}", f"layer{stage}.{blk}"
            y = conv_bn(b, f"{s}/conv1", f"{n}.conv1", x, cin, cout, 3, stride)
            y = b.op(f"{s}/relu", "Relu", [y])
            # The block's last BN starts small (as zero-init-residual training leaves it), which
            # keeps the activations' scale in check over the 8 residual additions.
            y = conv_bn(b, f"{s}/conv2", f"{n}.conv2", y, cout, cout, 3, 1, gamma=(0.2, 0.6))
            if stride != 1 or cin != cout:
                x = conv_bn(b, f"{s}/downsample/downsample.0", f"{n}.downsample.0", x, cin, cout, 1, stride)
            y = b.op(s, "Add", [y, x])
            x = b.op(f"{s}/relu_1", "Relu", [y])
            cin = cout
    return resnet_model(b, x, cin, classes, "convnet", seed)


def build_resnet50(seed=0, classes=1000):
    """ResNet-50-sized: bottlenecks 3-4-6-3, expansion 4."""
    b = Builder(seed)
    x = resnet_stem(b)
    cin = 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        cout = width * 4
        for blk in range(blocks):
            stride = 2 if (stage > 1 and blk == 0) else 1
            s, n = f"/layer{stage}/layer{stage}.{blk}", f"layer{stage}.{blk}"
            y = b.op(f"{s}/relu", "Relu", [conv_bn(b, f"{s}/conv1", f"{n}.conv1", x, cin, width, 1, 1)])
            y = b.op(f"{s}/relu_1", "Relu", [conv_bn(b, f"{s}/conv2", f"{n}.conv2", y, width, width, 3, stride)])
            y = conv_bn(b, f"{s}/conv3", f"{n}.conv3", y, width, cout, 1, 1, gamma=(0.1, 0.3))
            if stride != 1 or cin != cout:
                x = conv_bn(b, f"{s}/downsample/downsample.0", f"{n}.downsample.0", x, cin, cout, 1, stride)
            x = b.op(f"{s}/relu_2", "Relu", [b.op(s, "Add", [y, x])])
            cin = cout
    return resnet_model(b, x, cin, classes, "resnet50", seed)


BUILT = {"encoder": build_encoder, "convnet": build_convnet,
         "bert-base": lambda: build_encoder(layers=12), "resnet50": build_resnet50}


def built_model(name, cache, rebuild):
    """Writes (once) and returns the model path and its inputs (.npz next to it)."""
    path, inputs = os.path.join(cache, f"{name}.onnx"), os.path.join(cache, f"{name}.inputs.npz")
    if rebuild or not (os.path.exists(path) and os.path.exists(inputs)):
        model, feeds = BUILT[name]()
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, path)
        np.savez(inputs, **feeds)
        # It must run and stay finite.
        out = ort_session(path, 1).run(None, feeds)
        for o in out:
            if not np.all(np.isfinite(o)):
                raise SystemExit(f"bench_pruning: {name}: non-finite output")
    data = np.load(inputs)
    return path, {k: data[k] for k in data.files}


# ---------------------------------------------------------------------------------------------


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({r.returncode}):\n{r.stderr.strip()}")
    return r.stdout


def inspect(prunec, model, feeds):
    cmd = [prunec, "inspect", model, "--json", "--no-check"]
    for name, value in feeds.items():
        cmd += ["--shape", f"{name}=" + "x".join(str(d) for d in value.shape)]
    d = json.loads(run(cmd))
    return d["params"], d["macs"]


OPT_LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}


def ort_session(model, threads, opt_level="all"):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = OPT_LEVELS[opt_level]
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def time_pair(original, pruned, feeds, threads, seconds, min_runs, warmup, opt_level):
    """Median ms of each model, timed alternately (the first of each pair flips every iteration)."""
    sessions = [ort_session(original, threads, opt_level), ort_session(pruned, threads, opt_level)]
    inputs = [{i.name: feeds[i.name] for i in s.get_inputs()} for s in sessions]
    for s, f in zip(sessions, inputs):
        for _ in range(warmup):
            s.run(None, f)
    times = [[], []]
    spent, it = 0.0, 0
    while spent < seconds or len(times[0]) < min_runs:
        for side in ((0, 1) if it % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            sessions[side].run(None, inputs[side])
            dt = time.perf_counter() - t0
            times[side].append(dt * 1e3)
            spent += dt
        it += 1
    return statistics.median(times[0]), statistics.median(times[1]), len(times[0])


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prunec", default=os.environ.get("PRUNEC", os.path.join(ROOT, ".build/release/prunec")))
    p.add_argument("--sparsity", default="0.3,0.5")
    p.add_argument("--round-to", default="1,16", help="magnitude round-to values to run for each sparsity")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per model and sparsity")
    p.add_argument("--min-runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--opt-level", choices=sorted(OPT_LEVELS), default="all",
                   help="onnxruntime graph optimizations ('extended' leaves out the NCHWc conv layout)")
    p.add_argument("--cache", default=os.path.join(ROOT, ".cache/bench-models"))
    p.add_argument("--models", help="comma-separated subset, e.g. encoder,convnet,resnet")
    p.add_argument("--no-examples", action="store_true")
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--json")
    args = p.parse_args()

    os.makedirs(args.cache, exist_ok=True)
    prunec = os.path.abspath(args.prunec)
    if not os.path.exists(prunec):
        raise SystemExit(f"bench_pruning: no prunec at {prunec} (build it, or pass --prunec / PRUNEC)")
    help_text = run([prunec, "compile", "--help"])
    no_validate = ["--no-validate"] if "--no-validate" in help_text else []
    wanted = set(args.models.split(",")) if args.models else None

    models = []  # (name, path, feeds)
    for name in BUILT:
        if wanted is None or name in wanted:
            t0 = time.perf_counter()
            path, feeds = built_model(name, args.cache, args.rebuild)
            print(f"# {name}: {os.path.relpath(path, ROOT)} ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            models.append((name, path, feeds))
    if not args.no_examples:
        for path in sorted(glob.glob(os.path.join(ROOT, "examples/models/*.onnx"))):
            name = os.path.basename(path)[: -len(".onnx")]
            if wanted is not None and name not in wanted:
                continue
            data = np.load(os.path.join(os.path.dirname(path), name.split(".")[0] + ".calib.npz"))
            models.append((name, path, {k: data[k] for k in data.files if "." not in k}))

    started = time.perf_counter()
    rows, errors = [], []
    for name, path, feeds in models:
        try:
            params0, macs0 = inspect(prunec, path, feeds)
        except RuntimeError as e:
            errors.append({"model": name, "error": str(e)})
            print(f"# {name}: ERROR {e}", file=sys.stderr)
            continue
        for sparsity, round_to in [(float(s), int(r)) for s in args.sparsity.split(",") for r in args.round_to.split(",")]:
            out = os.path.join(args.cache, f"{name}.pruned{int(round(sparsity * 100))}r{round_to}.onnx")
            cmd = [prunec, path, "--pass", f"magnitude{{sparsity={sparsity:g},round-to={round_to}}}", "--pass", "fold-masks",
                   "-o", out] + no_validate
            row = {"model": name, "sparsity": sparsity, "round_to": round_to, "command": " ".join(cmd)}
            try:
                t0 = time.perf_counter()
                run(cmd)
                row["prune_s"] = time.perf_counter() - t0
                params1, macs1 = inspect(prunec, out, feeds)
                lat0, lat1, n = time_pair(path, out, feeds, args.threads, args.seconds, args.min_runs, args.warmup,
                                          args.opt_level)
            except Exception as e:  # a prunec failure or a result onnxruntime cannot run
                row["error"] = str(e)
                errors.append(row)
                print(f"# {name} @ {sparsity:g}: ERROR {e}", file=sys.stderr)
                continue
            macs_ratio = macs1 / macs0 if macs0 else None
            lat_ratio = lat1 / lat0
            row.update({
                "params_original": params0, "params_pruned": params1, "params_ratio": params1 / params0,
                "macs_original": macs0, "macs_pruned": macs1, "macs_ratio": macs_ratio,
                "latency_ms_original": lat0, "latency_ms_pruned": lat1, "latency_ratio": lat_ratio,
                "efficiency": (1 - lat_ratio) / (1 - macs_ratio) if macs_ratio is not None and macs_ratio < 1 else None,
                "runs": n,
            })
            rows.append(row)
            print(f"# {name} @ {sparsity:g}: pruned in {row['prune_s']:.1f} s, {lat0:.3f} -> {lat1:.3f} ms "
                  f"({n} runs each)", file=sys.stderr)

    print(f"\nonnxruntime {ort.__version__}, CPU, {args.threads} intra-op thread(s), {args.opt_level} graph optimizations;"
          " ratios are pruned / original;"
          " efficiency = (1 - latency ratio) / (1 - MACs ratio), goal >= 0.8\n")
    print("| model | sparsity | round-to | params ratio | MACs ratio | ms original | ms pruned | latency ratio | efficiency |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['sparsity']:g} | {r['round_to']} | {r['params_ratio']:.3f} | {fmt(r['macs_ratio'], '.3f')} | "
              f"{r['latency_ms_original']:.3f} | {r['latency_ms_pruned']:.3f} | {r['latency_ratio']:.3f} | "
              f"{fmt(r['efficiency'], '.2f')} |")
    for e in errors:
        print(f"\nERROR {e['model']}" + (f" @ {e['sparsity']:g}" if "sparsity" in e else "") + f": {e['error']}")
    total = time.perf_counter() - started
    print(f"\n({total:.0f} s)")

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"onnxruntime": ort.__version__, "threads": args.threads, "opt_level": args.opt_level,
                       "seconds": args.seconds,
                       "prunec": os.path.relpath(prunec, ROOT) if prunec.startswith(ROOT) else os.path.basename(prunec),
                       "rows": rows, "errors": errors, "total_s": total}, f, indent=1)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
