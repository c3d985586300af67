"""bench/: the smoke run prints a table with a ratio; gpu_check.sh parses."""
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def quick_chain_run():
    """One run for the whole session (the backend fixture repeats each test)."""
    out = tempfile.mkdtemp(prefix="bench-test-")
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        env.pop("GPUPROP_BACKEND", None)
        proc = subprocess.run(
            [sys.executable, "-m", "bench", "--quick", "--no-peers", "--only", "chain",
             "--out", out, "--no-readme", "--timeout", "60"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
        return proc.returncode, proc.stdout, proc.stderr, sorted(os.listdir(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_quick_chain_prints_ratios():
    rc, stdout, stderr, files = quick_chain_run()
    assert rc in (0, 1), stderr[-2000:]           # 1: a gpuprop variant failed its check
    assert "hand-written numpy" in stdout, stdout
    rows = [l for l in stdout.splitlines() if l.startswith("chain 100 ops")]
    assert rows, stdout
    assert re.search(r"\b1\.00x\b", stdout), stdout                 # the baseline's row
    assert re.search(r"gpuprop-eager\s.*\d+\.\d\dx", stdout), stdout  # a ratio for gpuprop
    assert any(f.endswith(".json") for f in files) and any(f.endswith(".md") for f in files)


def test_gpu_check_script_parses():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    script = os.path.join(ROOT, "bench", "gpu_check.sh")
    proc = subprocess.run([bash, "-n", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
