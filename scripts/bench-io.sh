#!/usr/bin/env bash
# Model I/O benchmark: prunec's ONNX import/export (PruneIR) against Python's onnx.load/onnx.save,
# measured in the same run, and printed as one table of medians with the ratios python/swift.
#
#   bash scripts/bench-io.sh            # example models + a generated ~200 MB model
#   BENCH_IO_LARGE=0 bash scripts/bench-io.sh          # example models only
#   BENCH_IO_MODELS="a.onnx:dir" bash scripts/bench-io.sh   # other models (files or folders)
#
# Swift: the ordo-one/benchmark suite Benchmarks/Benchmarks/ModelIO (a separate package at
# Benchmarks/, built in release by the benchmark plugin into Benchmarks/.build), exported as JMH
# JSON. Python: scripts/bench_io.py with the pinned onnx in .venv (scripts/setup-venv.sh).
# Everything it makes goes under .cache/bench/ (git-ignored): the large model, written copies,
# results/python.json, results/Current_run.jmh.json and results/table.json.
# Machines are shared: read the ratios, not the absolute times.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
start=$(date +%s)
phase_start=$start
phase() {
  local now
  now=$(date +%s)
  echo "bench-io: $1 ($((now - phase_start)) s)" >&2
  phase_start=$now
}

cache="$root/.cache/bench"
results="$cache/results"
mkdir -p "$cache/out" "$results"
rm -f "$results/Current_run.jmh.json" "$results/python.json" "$results/table.json"

# The benchmark package links PruneIR, which links OpenBLAS and libonnx (see `make deps`).
# ordo-one/benchmark 1.38.1 on Swift 6.3 uses its own malloc interposer, not jemalloc.
bash scripts/setup-venv.sh >&2
python="$root/.venv/bin/python"

# The models.
large_name="large-24x2048x1024"
if [[ -n "${BENCH_IO_MODELS:-}" ]]; then
  models_spec="$BENCH_IO_MODELS"
else
  models_spec="$root/examples/models"
  if [[ "${BENCH_IO_LARGE:-1}" != 0 ]]; then
    if [[ ! -f "$cache/$large_name.onnx" ]]; then
      "$python" scripts/bench_io.py generate "$cache/$large_name.onnx" --layers 24 --rows 2048 --cols 1024
    fi
    models_spec="$models_spec:$cache/$large_name.onnx"
  fi
fi
models=()
IFS=':' read -r -a specs <<< "$models_spec"
for spec in "${specs[@]}"; do
  [[ "$spec" = /* ]] || spec="$root/$spec"
  if [[ -d "$spec" ]]; then
    for f in "$spec"/*.onnx; do [[ -f "$f" ]] && models+=("$f"); done
  elif [[ -f "$spec" ]]; then
    models+=("$spec")
  else
    echo "bench-io: no such model or folder: $spec" >&2
    exit 64
  fi
done
(( ${#models[@]} > 0 )) || { echo "bench-io: no models" >&2; exit 64; }
models_list="$(IFS=':'; echo "${models[*]}")"
phase "setup (${#models[@]} models)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

# Build first (release, as the plugin does), so build time is not mixed into the runs below and
# a compile error shows plainly.
swift build --package-path Benchmarks -c release --product ModelIO >&2
phase "swift release build"

# Python reference, same files, same output folder.
"$python" scripts/bench_io.py time "${models[@]}" --runs "${BENCH_IO_PY_RUNS:-30}" \
  --out-dir "$cache/out" --json "$results/python.json"
phase "python onnx timings"

# Swift, through the ordo-one benchmark plugin (release build, JMH export).
PRUNEC_BENCH_MODELS="$models_list" PRUNEC_BENCH_OUT="$cache/out" \
  swift package --package-path Benchmarks \
  --allow-writing-to-directory "$results" --allow-writing-to-directory "$cache/out" \
  benchmark --target ModelIO --format jmh --path "$results" --no-progress >&2
phase "swift benchmarks"

"$python" scripts/bench_io.py report --python "$results/python.json" \
  --swift "$results/Current_run.jmh.json" --json "$results/table.json"
echo "Load average before / after the runs: $load_before / $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') on $(nproc) cores (others' work on a shared machine skews absolute times)."
rm -f "$cache/out"/*.onnx "$cache/out"/.*.tmp-* 2>/dev/null || true
echo "bench-io: done in $(( $(date +%s) - start )) s; raw results in ${results#"$root"/}/" >&2
