#!/usr/bin/env python3
"""Checks that models exported by prunec (a round trip) are equivalent to their originals.

usage: roundtrip_check.py --pairs FILE.tsv [--json] [--allow-different] [--no-downgrade]

Each non-empty line of FILE.tsv (lines starting with '#' are comments) is
``<original.onnx>\\t<exported.onnx>``; relative paths are relative to the current folder.
For each pair:

(a) checker: ``onnx.checker.check_model(exported, full_check=True)`` passes (external data is
    loaded; models over 2 GB are checked by path). When the exported model fails but the
    original fails too and the two are bytes/canonically equal, the pair is reported as
    ``checker=original-invalid`` and does not fail: the round trip kept the model as it was.
(b) compare: ``bytes`` when the files (and the external-data files they reference) are
    identical, else ``canonical`` when ``onnx.load`` of both (external data loaded) serializes
    to the same deterministic bytes, else ``different`` (a failure unless --allow-different).
(c) ort: if onnxruntime can create a session for the original (else
    ``ort-unsupported(<reason>)``), both models run on the same inputs: the node-test inputs in
    ``<original's folder>/test_data_set_0/input_N.pb`` when present, else deterministic random
    inputs from the graph input types (seed 0, symbolic dims = 1, ints in [0, 10), random bools).
    Outputs must be bit-identical (same dtype and shape, np.array_equal, NaNs at the same
    positions count as equal; types numpy lacks, such as bfloat16 or int4, by their bytes).
    A model whose IR version or opset is newer than onnxruntime supports is run, original and
    exported alike, with those lowered to the newest it supports (--no-downgrade: report it as
    ort-unsupported instead); the JSON result says so in ``ort_downgraded``. A model whose original gives different outputs on two runs
    (random ops) is reported as ``ort-unsupported(nondeterministic)``.

Prints one line per pair:
    OK|FAIL <original> bytes|canonical|different checker=ok|... ort=identical|ort-unsupported(<reason>)|ort=<failure>
and finally ``N passed, N failed``; exits 1 if any pair failed, 2 on usage errors.
With --json, stdout is instead one JSON object (sorted keys) and the summary line goes to stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import sys
import time
import traceback

import numpy as np
import onnx
import onnx.checker
import onnx.external_data_helper
from onnx import numpy_helper

TWO_GB = 2**31
# Above this (model file + external data), protos are not serialized in one piece.
BIG = TWO_GB - 64 * 2**20


def short(msg: object, limit: int = 160) -> str:
    s = " ".join(str(msg).split())
    s = s.replace("(", "[").replace(")", "]")
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --------------------------------------------------------------------------- files


def external_locations(path: str) -> list[str]:
    """Relative locations of the external-data files a model references (not loaded)."""
    try:
        m = onnx.load(path, load_external_data=False)
    except Exception:
        return []
    locs = []
    for t in onnx.external_data_helper._get_all_tensors(m):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for kv in t.external_data:
                if kv.key == "location" and kv.value not in locs:
                    locs.append(kv.value)
    return locs


def total_size(path: str, locs: list[str]) -> int:
    n = os.path.getsize(path)
    base = os.path.dirname(path)
    for loc in locs:
        p = os.path.join(base, loc)
        if os.path.isfile(p):
            n += os.path.getsize(p)
    return n


def same_file_bytes(a: str, b: str) -> bool:
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    if os.path.samefile(a, b):
        return True
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 22)
            y = fb.read(1 << 22)
            if x != y:
                return False
            if not x:
                return True


def bytes_equal(orig: str, exp: str) -> bool:
    if not same_file_bytes(orig, exp):
        return False
    locs = external_locations(orig)
    ob, eb = os.path.dirname(orig), os.path.dirname(exp)
    for loc in locs:
        po, pe = os.path.join(ob, loc), os.path.join(eb, loc)
        if not (os.path.isfile(po) and os.path.isfile(pe) and same_file_bytes(po, pe)):
            return False
    return True


def canonical_bytes(m: onnx.ModelProto, big: bool) -> tuple[bytes, list[bytes]]:
    """Deterministic serialization; for big models the tensor payloads are split off."""
    if not big:
        return m.SerializeToString(deterministic=True), []
    payloads = []
    for t in onnx.external_data_helper._get_all_tensors(m):
        if t.HasField("raw_data"):
            payloads.append(t.raw_data)
            t.ClearField("raw_data")
    return m.SerializeToString(deterministic=True), payloads


# --------------------------------------------------------------------------- ort


class Unsupported(Exception):
    """The pair cannot be compared with onnxruntime; not a failure."""


def value_info_to_random(vtype: onnx.TypeProto, rng: np.random.Generator):
    which = vtype.WhichOneof("value")
    if which == "tensor_type":
        tt = vtype.tensor_type
        elem = tt.elem_type
        if elem == onnx.TensorProto.UNDEFINED:
            raise Unsupported("input of undefined element type")
        dims = []
        if tt.HasField("shape"):
            for d in tt.shape.dim:
                dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else 1)
        shape = tuple(dims)
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
        if elem == onnx.TensorProto.STRING:
            return rng.integers(0, 10, size=shape).astype(str).astype(object)
        if elem == onnx.TensorProto.BOOL:
            return rng.random(size=shape) < 0.5
        kind = np.dtype(np_dtype).kind
        small_ints = {
            getattr(onnx.TensorProto, n)
            for n in ("INT4", "UINT4", "INT2", "UINT2")
            if hasattr(onnx.TensorProto, n)
        }
        if elem in small_ints:
            return rng.integers(0, 2, size=shape).astype(np_dtype)
        if kind in "iu":
            return rng.integers(0, 10, size=shape).astype(np_dtype)
        if kind == "c":
            return (rng.standard_normal(size=shape) + 1j * rng.standard_normal(size=shape)).astype(
                np_dtype
            )
        return rng.standard_normal(size=shape).astype(np.float32).astype(np_dtype)
    if which == "sequence_type":
        return [value_info_to_random(vtype.sequence_type.elem_type, rng)]
    if which == "optional_type":
        return value_info_to_random(vtype.optional_type.elem_type, rng)
    raise Unsupported(f"random input of type {which}")


def random_inputs(model: onnx.ModelProto) -> dict:
    rng = np.random.default_rng(0)
    inits = {t.name for t in model.graph.initializer}
    inits |= {t.values.name for t in model.graph.sparse_initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        feeds[vi.name] = value_info_to_random(vi.type, rng)
    return feeds


def read_proto_input(path: str, vtype: onnx.TypeProto):
    with open(path, "rb") as f:
        data = f.read()
    which = vtype.WhichOneof("value") if vtype is not None else "tensor_type"
    if which == "sequence_type":
        p = onnx.SequenceProto()
        p.ParseFromString(data)
        return p.name, numpy_helper.to_list(p)
    if which == "optional_type":
        p = onnx.OptionalProto()
        p.ParseFromString(data)
        return p.name, numpy_helper.to_optional(p)
    if which == "map_type":
        p = onnx.MapProto()
        p.ParseFromString(data)
        return p.name, numpy_helper.to_dict(p)
    p = onnx.TensorProto()
    p.ParseFromString(data)
    return p.name, numpy_helper.to_array(p)


def test_data_inputs(model: onnx.ModelProto, folder: str) -> dict | None:
    ds = os.path.join(folder, "test_data_set_0")
    if not os.path.isdir(ds):
        return None
    files = sorted(
        (f for f in os.listdir(ds) if f.startswith("input_") and f.endswith(".pb")),
        key=lambda f: int(f[len("input_") : -len(".pb")]),
    )
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in inits]
    by_name = {vi.name: vi for vi in graph_inputs}
    feeds = {}
    for f in files:
        j = int(f[len("input_") : -len(".pb")])
        # The node-test writer pairs input_j with graph.input[j]; names usually agree too.
        vi = model.graph.input[j] if j < len(model.graph.input) else None
        name, value = read_proto_input(os.path.join(ds, f), vi.type if vi is not None else None)
        if name not in by_name:
            if vi is None:
                raise Unsupported(f"{f} names no graph input")
            name = vi.name
        feeds[name] = value
    return feeds


def to_ort_feed(value):
    # onnxruntime takes tensors as arrays, sequences as lists and absent optionals as None.
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "U":
            return value.astype(object)
        return value
    return value


def arrays_identical(a, b) -> str | None:
    """None if identical, else a description of the first difference."""
    if isinstance(a, RawTensor):
        return a.diff(b)
    if isinstance(b, RawTensor):
        return f"type {type(a).__name__} vs {b.dtype}"
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)):
            return f"type {type(a).__name__} vs {type(b).__name__}"
        if len(a) != len(b):
            return f"sequence length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = arrays_identical(x, y)
            if d:
                return f"[{i}] {d}"
        return None
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return f"type {type(a).__name__} vs {type(b).__name__}"
        if sorted(a) != sorted(b):
            return "map keys differ"
        for k in a:
            d = arrays_identical(a[k], b[k])
            if d:
                return f"[{k}] {d}"
        return None
    if a is None or b is None:
        return None if a is None and b is None else "optional presence differs"
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} vs {b.dtype}"
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    if a.dtype.kind in "fc":
        same = np.array_equal(a, b, equal_nan=True)
    elif a.dtype.kind in "biuUSO":
        same = np.array_equal(a, b)
    else:
        # ml_dtypes (bfloat16, float8, int4, ...): compare the bit patterns.
        same = a.tobytes() == b.tobytes()
    if same:
        return None
    try:
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        return f"values differ [max abs diff {np.nanmax(diff):.3g}]"
    except Exception:
        return "values differ"


# Element types numpy (and so InferenceSession.run) handles; others go through OrtValues.
NUMPY_TENSOR_TYPES = {
    f"tensor({t})"
    for t in (
        "float", "double", "float16", "bool", "string",
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    )
}
NUMPY_DTYPES = {
    np.dtype(t)
    for t in (
        np.float16, np.float32, np.float64, np.bool_,
        np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    )
}
IR_RE = re.compile(r"max supported IR version: (\d+)")
OPSET_RE = re.compile(r"official support for domain (\S+) is till opset (\d+)")


class Ort:
    def __init__(self, downgrade: bool) -> None:
        import onnxruntime as ort

        self.ort = ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.so = so
        self.providers = ["CPUExecutionProvider"]
        self.downgrade = downgrade

    def _from(self, source):
        return self.ort.InferenceSession(source, sess_options=self.so, providers=self.providers)

    @staticmethod
    def _patched(path: str, patch: dict) -> bytes:
        m = onnx.load(path, load_external_data=False)
        if "ir" in patch:
            m.ir_version = min(m.ir_version, patch["ir"])
        opsets = patch.get("opsets", {})
        for imports in [m.opset_import] + [f.opset_import for f in m.functions]:
            for o in imports:
                if o.domain in opsets and o.version > opsets[o.domain]:
                    o.version = opsets[o.domain]
        return m.SerializeToString()

    def session(self, path: str, patch: dict | None = None):
        """Session for path. With patch=None, an IR version or opset that onnxruntime does
        not support yet is lowered to the newest it does (on both models alike: the
        comparison is original vs exported under one interpretation); returns the patch."""
        if patch:
            return self._from(self._patched(path, patch)), patch
        try:
            return self._from(path), {}
        except Exception as first:  # noqa: BLE001
            if not self.downgrade or external_locations(path):
                raise
            patch, err = {}, first
            for attempt in range(4):
                msg = str(err)
                ir, op = IR_RE.search(msg), OPSET_RE.search(msg)
                if ir:
                    patch["ir"] = int(ir.group(1))
                elif op:
                    domain = "" if op.group(1) in ("ai.onnx", "''", '""') else op.group(1)
                    patch.setdefault("opsets", {})[domain] = int(op.group(2))
                elif attempt == 0:
                    raise
                else:
                    break
                try:
                    return self._from(self._patched(path, patch)), patch
                except Exception as e:  # noqa: BLE001
                    err = e
            raise Unsupported(f"as {describe_patch(patch)}: {ort_reason(err)}") from None

    def run(self, sess, feeds: dict) -> list:
        names = [o.name for o in sess.get_outputs()]
        ins = {i.name for i in sess.get_inputs()}
        feeds = {k: v for k, v in feeds.items() if k in ins}
        types = [i.type for i in sess.get_inputs()] + [o.type for o in sess.get_outputs()]
        if all(t in NUMPY_TENSOR_TYPES or not t.startswith("tensor(") for t in types):
            return sess.run(names, {k: to_ort_feed(v) for k, v in feeds.items()})
        # bfloat16, float8, int4, int2, ...: feed and read the packed ONNX bytes.
        vals = {k: self._ort_value(v) for k, v in feeds.items()}
        return [self._from_ort_value(v) for v in sess.run_with_ort_values(names, vals)]

    def _ort_value(self, a):
        if not isinstance(a, np.ndarray):
            raise Unsupported("non-tensor input to a model with non-numpy element types")
        if a.dtype in NUMPY_DTYPES or a.dtype.kind in "OUS":
            return self.ort.OrtValue.ortvalue_from_numpy(to_ort_feed(a))
        tp = numpy_helper.from_array(a)
        raw = tp.raw_data
        v = self.ort.OrtValue.ortvalue_from_shape_and_type(list(a.shape), tp.data_type)
        if v.tensor_size_in_bytes() != len(raw):
            raise Unsupported(f"cannot pack {a.dtype} input")
        ctypes.memmove(v.data_ptr(), raw, len(raw))
        return v

    @staticmethod
    def _from_ort_value(v):
        if v.is_tensor() and v.data_type() not in NUMPY_TENSOR_TYPES:
            n = v.tensor_size_in_bytes()
            raw = ctypes.string_at(v.data_ptr(), n) if n else b""
            return RawTensor(v.data_type(), tuple(v.shape()), raw)
        return v.numpy()


def describe_patch(patch: dict) -> str:
    parts = []
    if "ir" in patch:
        parts.append(f"IR {patch['ir']}")
    for d, v in sorted(patch.get("opsets", {}).items()):
        parts.append(f"{d or 'ai.onnx'} opset {v}")
    return ", ".join(parts)


class RawTensor:
    """An output of an element type numpy lacks: compared by type, shape and bytes."""

    def __init__(self, dtype: str, shape: tuple, raw: bytes) -> None:
        self.dtype, self.shape, self.raw = dtype, shape, raw

    def diff(self, other) -> str | None:
        if not isinstance(other, RawTensor):
            return f"type {self.dtype} vs {type(other).__name__}"
        if self.dtype != other.dtype:
            return f"dtype {self.dtype} vs {other.dtype}"
        if self.shape != other.shape:
            return f"shape {self.shape} vs {other.shape}"
        return None if self.raw == other.raw else "bytes differ"


def ort_compare(ortx: Ort, orig: str, exp: str, orig_model: onnx.ModelProto, r: dict) -> tuple[bool, str]:
    """(passed, text) where text is 'ort=identical', 'ort-unsupported(..)' or 'ort=<failure>'."""
    try:
        so, patch = ortx.session(orig)
    except Unsupported as e:
        return True, f"ort-unsupported({short(e)})"
    except Exception as e:  # noqa: BLE001
        return True, f"ort-unsupported({ort_reason(e)})"
    if patch:
        r["ort_downgraded"] = describe_patch(patch)
    try:
        feeds = test_data_inputs(orig_model, os.path.dirname(orig))
        if feeds is None:
            feeds = random_inputs(orig_model)
            r["ort_inputs"] = "random"
        else:
            r["ort_inputs"] = "test_data_set_0"
    except Unsupported as e:
        return True, f"ort-unsupported({short(e)})"
    except Exception as e:  # noqa: BLE001
        return True, f"ort-unsupported(inputs: {short(e)})"
    try:
        out_o = ortx.run(so, feeds)
    except Unsupported as e:
        return True, f"ort-unsupported({short(e)})"
    except Exception as e:  # noqa: BLE001
        return True, f"ort-unsupported(run: {ort_reason(e)})"
    try:
        se, _ = ortx.session(exp, patch)
    except Exception as e:  # noqa: BLE001
        return False, f"ort=session-failed({ort_reason(e)})"
    try:
        out_e = ortx.run(se, feeds)
    except Exception as e:  # noqa: BLE001
        return False, f"ort=run-failed({ort_reason(e)})"
    names_o = [o.name for o in so.get_outputs()]
    names_e = [o.name for o in se.get_outputs()]
    if names_o != names_e:
        return False, f"ort=outputs-differ({short(names_o)} vs {short(names_e)})"
    for name, a, b in zip(names_o, out_o, out_e):
        d = arrays_identical(a, b)
        if d:
            # Random ops (RandomNormal, Bernoulli, Dropout in training...) differ run to run.
            again = ortx.run(so, feeds)
            if any(arrays_identical(x, y) for x, y in zip(out_o, again)):
                return True, "ort-unsupported(nondeterministic)"
            return False, f"ort=different({short(name)}: {short(d)})"
    return True, "ort=identical"


def ort_reason(e: Exception) -> str:
    """onnxruntime's message without its boilerplate (status code, file paths)."""
    msg = str(e)
    msg = re.sub(r"^\[ONNXRuntimeError\] : \d+ : ", "", msg)
    msg = re.sub(r"Load model from .*? failed:", "", msg)
    msg = re.sub(r"/onnxruntime_src/\S+ ", "", msg)
    msg = re.sub(r"onnxruntime::\S+\(.*?\)(?: const)? ", "", msg)
    return short(msg)


# --------------------------------------------------------------------------- checks


def load_full(path: str) -> onnx.ModelProto:
    """onnx.load with external data, which then looks as if it had been stored inline
    (the loader sets data_location=DEFAULT explicitly, which inline tensors do not have)."""
    m = onnx.load(path, load_external_data=False)
    external = [
        t
        for t in onnx.external_data_helper._get_all_tensors(m)
        if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        onnx.external_data_helper.load_external_data_for_model(m, os.path.dirname(path) or ".")
        for t in external:
            t.ClearField("data_location")
    return m


def run_checker(path: str, model: onnx.ModelProto | None, big: bool) -> str | None:
    """None if check_model(full_check=True) passes, else the message."""
    try:
        if big or model is None:
            onnx.checker.check_model(path, full_check=True)
        else:
            onnx.checker.check_model(model, full_check=True)
        return None
    except Exception as e:  # noqa: BLE001
        return short(f"{type(e).__name__}: {e}")


def check_pair(ortx: Ort, orig: str, exp: str, allow_different: bool) -> dict:
    r: dict = {"original": orig, "exported": exp}
    for p in (orig, exp):
        if not os.path.isfile(p):
            r.update(ok=False, compare="missing", checker="skipped", ort=f"ort=missing({p})")
            r["line"] = f"FAIL {orig} missing {p}"
            return r

    # (b) bytes / canonical.
    exp_locs = external_locations(exp)
    exp_big = total_size(exp, exp_locs) > BIG
    orig_big = total_size(orig, external_locations(orig)) > BIG
    if bytes_equal(orig, exp):
        compare = "bytes"
    else:
        compare = "different"
    orig_model = exp_model = None
    orig_error = exp_error = None
    try:
        orig_model = load_full(orig)
    except Exception as e:  # noqa: BLE001
        orig_error = short(e)
    try:
        exp_model = load_full(exp)
    except Exception as e:  # noqa: BLE001
        exp_error = short(e)
    if compare == "different" and orig_model is not None and exp_model is not None:
        if orig_big or exp_big:
            # Split the payloads off copies loaded afresh (the loaded protos stay intact).
            same = canonical_bytes(load_full(orig), True) == canonical_bytes(load_full(exp), True)
        else:
            same = canonical_bytes(orig_model, False) == canonical_bytes(exp_model, False)
        if same:
            compare = "canonical"
    r["compare"] = compare

    # (a) checker on the exported model.
    ok = True
    if exp_model is None:
        checker_msg = f"load failed: {exp_error}"
    else:
        checker_msg = run_checker(exp, exp_model, exp_big)
    if checker_msg is None:
        checker = "checker=ok"
    else:
        orig_msg = run_checker(orig, orig_model, orig_big)
        if orig_msg is not None and compare in ("bytes", "canonical"):
            checker = "checker=original-invalid"
            r["checker_message"] = orig_msg
        else:
            checker = f"checker=fail({checker_msg})"
            ok = False
    r["checker"] = checker.split("=", 1)[1]
    if compare == "different" and not allow_different:
        ok = False

    # (c) onnxruntime.
    if orig_model is None:
        ort_ok, ort_text = True, f"ort-unsupported(original does not load: {orig_error})"
    else:
        try:
            ort_ok, ort_text = ort_compare(ortx, orig, exp, orig_model, r)
        except Exception as e:  # noqa: BLE001
            ort_ok, ort_text = False, f"ort=error({short(e)})"
    ok = ok and ort_ok
    r["ort"] = ort_text
    r["ok"] = ok
    r["line"] = f"{'OK' if ok else 'FAIL'} {orig} {compare} {checker} {ort_text}"
    return r


def read_pairs(path: str) -> list[tuple[str, str]]:
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 2 or not cols[0] or not cols[1]:
                raise SystemExit(f"roundtrip_check: {path}:{n}: expected '<original>\\t<exported>'")
            pairs.append((cols[0], cols[1]))
    return pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", required=True, help="tsv file: <original.onnx>\\t<exported.onnx> per line")
    ap.add_argument("--json", action="store_true", help="write a JSON summary to stdout instead")
    ap.add_argument(
        "--allow-different",
        action="store_true",
        help="a pair that is neither bytes- nor canonically equal passes if checker and ort pass",
    )
    ap.add_argument(
        "--no-downgrade",
        action="store_true",
        help="report models with an IR version or opset newer than onnxruntime supports as "
        "ort-unsupported instead of running both with those lowered",
    )
    args = ap.parse_args(argv)
    try:
        pairs = read_pairs(args.pairs)
    except OSError as e:
        print(f"roundtrip_check: {e}", file=sys.stderr)
        return 2

    start = time.monotonic()
    ortx = Ort(downgrade=not args.no_downgrade)
    results = []
    for orig, exp in pairs:
        try:
            r = check_pair(ortx, orig, exp, args.allow_different)
        except Exception as e:  # noqa: BLE001
            tb = traceback.format_exc(limit=3)
            r = {
                "original": orig,
                "exported": exp,
                "ok": False,
                "compare": "error",
                "checker": "error",
                "ort": "error",
                "line": f"FAIL {orig} error({short(e)})",
                "traceback": tb,
            }
        results.append(r)
        if not args.json:
            print(r["line"], flush=True)
    passed = sum(1 for r in results if r["ok"])
    failed = len(results) - passed
    summary = f"{passed} passed, {failed} failed"
    if args.json:
        for r in results:
            r.pop("line", None)
        out = {
            "failed": failed,
            "passed": passed,
            "results": results,
            "seconds": round(time.monotonic() - start, 3),
            "total": len(results),
            "versions": {
                "numpy": np.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": ortx.ort.__version__,
            },
        }
        json.dump(out, sys.stdout, sort_keys=True, indent=1)
        sys.stdout.write("\n")
        print(summary, file=sys.stderr)
    else:
        print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
