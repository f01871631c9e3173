#!/usr/bin/env python3
"""Python side of scripts/bench-io.sh: the onnx reference for prunec's model I/O benchmark.

  bench_io.py generate OUT.onnx [--layers 24 --rows 2048 --cols 1024]
      Writes a large model (a chain of MatMul+Add layers with float32 weights stored as raw_data),
      ~200 MB with the defaults. Deterministic; nothing is downloaded.

  bench_io.py time MODEL.onnx... [--runs N] [--out-dir DIR] [--json FILE]
      Times, per model, with the onnx of the running interpreter (.venv's pinned onnx):
        load       onnx.load(path)
        serialize  model.SerializeToString()
        save       onnx.save(model, out)            (serialize + write, as onnx does it: no fsync)
        load_save  onnx.load(path) then onnx.save(model, out)
        load_save_fsync  the same, then fsync of the written file (what ModelExporter.write does:
                   temp file, fsync, rename), for an apples-to-apples reading of load+write
      Each is run once to warm up, then N times; the median (and min) in milliseconds go to JSON.

  bench_io.py report --python PY.json --swift SWIFT.jmh.json [--json FILE]
      Joins the Python timings with the Swift ones (the JMH export of
      `swift package benchmark --target ModelIO --format jmh`) and prints one table, medians in ms,
      with the ratios python/swift (> 1 means Swift is faster).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time


def generate(args: argparse.Namespace) -> int:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(20240601)
    nodes = []
    inits = []
    width = args.rows
    x = "x"
    for i in range(args.layers):
        # Alternate rows x cols and cols x rows so the chain composes.
        k, n = (args.rows, args.cols) if i % 2 == 0 else (args.cols, args.rows)
        assert k == width
        w = rng.standard_normal((k, n), dtype=np.float32) * np.float32(1.0 / np.sqrt(k))
        b = rng.standard_normal((n,), dtype=np.float32) * np.float32(0.01)
        inits.append(numpy_helper.from_array(w, f"layer{i}.weight"))
        inits.append(numpy_helper.from_array(b, f"layer{i}.bias"))
        mm, y = f"layer{i}.mm", f"layer{i}.out"
        nodes.append(helper.make_node("MatMul", [x, f"layer{i}.weight"], [mm], name=f"layer{i}/MatMul"))
        nodes.append(helper.make_node("Add", [mm, f"layer{i}.bias"], [y], name=f"layer{i}/Add"))
        x, width = y, n
    graph = helper.make_graph(
        nodes,
        "bench_large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", args.rows])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", width])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench_io.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, args.out)
    print(f"bench_io: wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)", file=sys.stderr)
    return 0


def _measure(fn, runs: int) -> dict:
    fn()  # warm-up (page cache, allocator, imports)
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "runs": runs}


def time_models(args: argparse.Namespace) -> int:
    import onnx

    os.makedirs(args.out_dir, exist_ok=True)
    results = {}
    for path in args.models:
        name = os.path.splitext(os.path.basename(path))[0]
        size = os.path.getsize(path)
        runs = args.runs if size < (32 << 20) else max(3, args.large_runs)
        out = os.path.join(args.out_dir, f"{name}.python.onnx")
        model = onnx.load(path)

        entry = {"path": path, "bytes": size}
        entry["load"] = _measure(lambda: onnx.load(path), runs)
        entry["serialize"] = _measure(lambda: model.SerializeToString(), runs)
        entry["save"] = _measure(lambda: onnx.save(model, out), runs)

        def load_save():
            onnx.save(onnx.load(path), out)

        entry["load_save"] = _measure(load_save, runs)

        def load_save_fsync():
            onnx.save(onnx.load(path), out)
            fd = os.open(out, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        entry["load_save_fsync"] = _measure(load_save_fsync, runs)
        results[name] = entry
        print(
            f"bench_io: {name}: load {entry['load']['median_ms']:.3f} ms, "
            f"load+save {entry['load_save']['median_ms']:.3f} ms ({runs} runs)",
            file=sys.stderr,
        )
        del model
        gc.collect()

    doc = {
        "python": sys.version.split()[0],
        "onnx": onnx.__version__,
        "protobuf": __import__("google.protobuf").protobuf.__version__,
        "protobuf_backend": _protobuf_backend(),
        "models": results,
    }
    text = json.dumps(doc, indent=2, sort_keys=True)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


SWIFT_KINDS = {"load": "load", "serialize": "serialize", "load+write": "load_write"}


def read_swift_jmh(path: str) -> dict:
    """{model: {"load": ms, "serialize": ms, "load_write": ms, ...}} from a benchmark JMH export.

    JMH names are "package.benchmark.<target>.<name with spaces as _>"; the wall-clock metric's
    percentiles are in microseconds.
    """
    with open(path) as f:
        elements = json.load(f)
    out: dict = {}
    for e in elements:
        name = e["benchmark"].split(".", 3)[3] if e["benchmark"].count(".") >= 3 else e["benchmark"]
        kind, _, model = name.partition("_")
        if kind not in SWIFT_KINDS:
            continue
        metrics = e.get("secondaryMetrics") or {}
        wall = metrics.get("Time (wall clock)")
        if wall is None:
            continue
        entry = out.setdefault(model, {})
        key = SWIFT_KINDS[kind]
        entry[key] = wall["scorePercentiles"]["50.0"] / 1000.0
        entry[key + "_samples"] = e.get("measurementIterations")
        malloc = metrics.get("Malloc (total)")
        if malloc is not None:
            entry[key + "_mallocs"] = malloc["scorePercentiles"]["50.0"]
        peak = metrics.get("Memory (resident peak)")
        if peak is not None:
            entry[key + "_peak_rss_mb"] = peak["scorePercentiles"]["50.0"] / 1e6
    return out


def report(args: argparse.Namespace) -> int:
    with open(args.python) as f:
        py = json.load(f)
    swift = read_swift_jmh(args.swift)

    def ratio(p, s):
        return p / s if p is not None and s else None

    rows = []
    for model, p in sorted(py["models"].items(), key=lambda kv: (kv[1]["bytes"], kv[0])):
        s = swift.get(model, {})
        row = {
            "model": model,
            "size_mb": p["bytes"] / 1e6,
            "swift_load_ms": s.get("load"),
            "python_load_ms": p["load"]["median_ms"],
            "swift_serialize_ms": s.get("serialize"),
            "python_serialize_ms": p["serialize"]["median_ms"],
            "swift_load_write_ms": s.get("load_write"),
            "python_load_save_ms": p["load_save"]["median_ms"],
            "python_load_save_fsync_ms": p.get("load_save_fsync", {}).get("median_ms"),
            "swift_load_peak_rss_mb": s.get("load_peak_rss_mb"),
        }
        row["ratio_load"] = ratio(row["python_load_ms"], row["swift_load_ms"])
        row["ratio_serialize"] = ratio(row["python_serialize_ms"], row["swift_serialize_ms"])
        row["ratio_load_write"] = ratio(row["python_load_save_ms"], row["swift_load_write_ms"])
        row["ratio_load_write_fsync"] = ratio(row["python_load_save_fsync_ms"], row["swift_load_write_ms"])
        rows.append(row)

    def fmt(v, digits=2):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    columns = [
        ("model", "model", 0),
        ("size MB", "size_mb", 1),
        ("swift load ms", "swift_load_ms", 2),
        ("swift load+write ms", "swift_load_write_ms", 2),
        ("python load ms", "python_load_ms", 2),
        ("python load+save ms", "python_load_save_ms", 2),
        ("ratio load", "ratio_load", 2),
        ("ratio load+write", "ratio_load_write", 2),
        ("swift serialize ms", "swift_serialize_ms", 2),
        ("python serialize ms", "python_serialize_ms", 2),
        ("ratio serialize", "ratio_serialize", 2),
        ("python load+save+fsync ms", "python_load_save_fsync_ms", 2),
        ("ratio load+write (both fsync)", "ratio_load_write_fsync", 2),
    ]
    lines = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row[key], digits) for _, key, digits in columns) + " |")
    print("\n".join(lines))
    print()
    print(
        f"Medians. ratio = python / swift (> 1: Swift faster; goal >= 2). Python {py['python']}, onnx {py['onnx']}, "
        f"protobuf {py['protobuf']} ({py['protobuf_backend']}). Swift load+write is ModelExporter.write: temp file, "
        "fsync, rename; python load+save is onnx.save (no fsync), load+save+fsync adds an fsync of the written file."
    )
    missing = [r["model"] for r in rows if r["swift_load_ms"] is None]
    if missing:
        print(f"warning: no Swift results for {', '.join(missing)}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "python": {k: py[k] for k in py if k != "models"}}, f, indent=2, sort_keys=True)
            f.write("\n")
    return 1 if missing else 0


def _protobuf_backend() -> str:
    try:
        from google.protobuf.internal import api_implementation

        return api_implementation.Type()
    except Exception:  # pragma: no cover - informational only
        return "unknown"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write the large benchmark model")
    g.add_argument("out")
    g.add_argument("--layers", type=int, default=24)
    g.add_argument("--rows", type=int, default=2048)
    g.add_argument("--cols", type=int, default=1024)
    g.set_defaults(func=generate)

    t = sub.add_parser("time", help="time onnx.load / onnx.save")
    t.add_argument("models", nargs="+")
    t.add_argument("--runs", type=int, default=30, help="timed runs per measurement (small models)")
    t.add_argument("--large-runs", type=int, default=7, help="timed runs for models over 32 MiB")
    t.add_argument("--out-dir", default=".cache/bench/out")
    t.add_argument("--json", help="write the results here instead of stdout")
    t.set_defaults(func=time_models)

    r = sub.add_parser("report", help="join Python and Swift results into one table")
    r.add_argument("--python", required=True, help="JSON written by `time --json`")
    r.add_argument("--swift", required=True, help="JMH JSON written by `swift package benchmark --format jmh`")
    r.add_argument("--json", help="also write the joined rows here")
    r.set_defaults(func=report)

    args = p.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
