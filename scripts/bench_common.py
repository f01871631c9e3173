"""Helpers the benchmark scripts share: running prunec and writing the JSON result."""
import json
import os
import subprocess
import time


def run_timed(cmd):
    """Runs `cmd`; returns (CompletedProcess, wall seconds). A non-zero exit raises with its stderr."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return p, time.perf_counter() - t0


def write_json(path, obj):
    """Writes `obj` to `path` (creating its folder), indented for reading."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
