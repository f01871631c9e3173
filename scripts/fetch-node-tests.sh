#!/usr/bin/env bash
# Provides the official ONNX backend node tests of the onnx version pinned in
# scripts/oracle/requirements.txt in .cache/onnx-node-tests/node/: one folder per
# test with model.onnx and test_data_set_*/{input,output}_*.pb.
#
# onnx no longer ships the generated node-test data in its wheel or sdist (1.23.2
# has neither), but the wheel ships the test-case definitions
# (onnx/backend/test/case/node/*.py). So the data are generated here from them,
# exactly as onnx's own `backend-test-tools generate-data` writes them, with the
# pinned onnx of .venv (made by scripts/setup-venv.sh if it is missing) and numpy
# seeded with 0 (the output is deterministic). Takes ~20 s; idempotent (stamp
# file). Nothing here is committed (.cache/ is git-ignored).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/scripts/oracle/requirements.txt"
dest="$root/.cache/onnx-node-tests"
stamp="$dest/.stamp"
generator_version=1

version="$(sed -n 's/^[[:space:]]*onnx[[:space:]]*==[[:space:]]*\([^[:space:]#;]*\).*/\1/p' "$req" | sed -n 1p)"
if [[ -z "$version" ]]; then
  echo "fetch-node-tests: no 'onnx==VERSION' pin in $req" >&2
  exit 1
fi
want="onnx==$version generator=$generator_version"

count() { find "$dest/node" -mindepth 1 -maxdepth 1 -type d | wc -l; }

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d "$dest/node" ]]; then
  echo "fetch-node-tests: $(count) node tests of onnx $version in .cache/onnx-node-tests/node (cached)"
  exit 0
fi

"$root/scripts/setup-venv.sh" >&2
py="$root/.venv/bin/python"

tmp="$root/.cache/onnx-node-tests.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
"$py" -W ignore - "$version" "$tmp" <<'PY'
import argparse, os, sys
import numpy as np
import onnx

want, out = sys.argv[1], sys.argv[2]
if onnx.__version__ != want:
    raise SystemExit(f"fetch-node-tests: .venv has onnx {onnx.__version__}, the pin is {want}")

import onnx.backend.test.case.model as model_test
import onnx.backend.test.case.node as node_test
from onnx.backend.test import cmd_tools

# cmd_tools.generate_data writes <out>/<case.kind>/<case.name>/ for the cases that
# model_test.collect_testcases() returns; feed it the node cases instead.
np.random.seed(0)
model_test.collect_testcases = lambda: node_test.collect_testcases()
cmd_tools.generate_data(argparse.Namespace(output=out))
node = os.path.join(out, "node")
if not os.path.isdir(node) or not os.listdir(node):
    raise SystemExit("fetch-node-tests: no node tests were generated")
PY
rm -rf "$dest"
mkdir -p "$dest"
mv "$tmp/node" "$dest/node"
echo "$want" > "$stamp"
echo "fetch-node-tests: $(count) node tests of onnx $version in .cache/onnx-node-tests/node"
