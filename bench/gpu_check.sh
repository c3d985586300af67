#!/usr/bin/env bash
# GPU check for a CUDA machine with no network (CuPy, PyTorch and JAX
# preinstalled there; every peer is optional).  From the repository root:
#
#     PYTHONPATH=. bash bench/gpu_check.sh        # writes to ${OUT:-bench/results}
#
# Phases, each under `timeout` so the whole script ends within 8 minutes
# (at worst about 90 + 140 + 65 + 175 = 470 s):
#   1. environment: nvidia-smi, CuPy / PyTorch / JAX versions and devices  -> env.txt
#   2. the test suite on the GPU: GPUPROP_BACKEND=cupy pytest -q tests      -> tests.txt
#      then the NCCL smoke check of bench/distributed.py (reported, not counted) -> nccl_smoke.txt
#   3. the GPU benchmarks: python -m bench --gpu (CUDA events)              -> bench_gpu.txt
#      and bench's own <date>_<gpu>_gpu.json / .md
# The short table of the benchmarks is printed last.
#
# Exit status: 0 when every phase passed; otherwise the sum of
#   1  the tests failed (or timed out)
#   2  the benchmarks failed: a gradient mismatch, a crash, or a timeout
#   4  no usable GPU: CuPy missing or no CUDA device (phases 2 and 3 skipped)
set -u
set -o pipefail

OUT="${OUT:-bench/results}"
export PYTHONPATH="${PYTHONPATH:-.}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
status=0
say() { printf '[gpu_check] %s\n' "$*"; }

if [ ! -f bench/__main__.py ] || [ ! -d gpuprop ]; then
    say "run me from the repository root (bench/ and gpuprop/ must be here)"
    exit 4
fi

# ---- 1. environment -------------------------------------------------------------
say "phase 1/3: environment -> $OUT/env.txt"
{
    date -u +"%Y-%m-%d %H:%M UTC"
    git rev-parse --short HEAD 2>/dev/null || true
    timeout 15 nvidia-smi || echo "nvidia-smi: not available"
    for mod in cupy torch jax; do
        timeout 20 "$PY" - "$mod" <<'EOF' || echo "$mod: the check timed out or crashed"
import sys
name = sys.argv[1]
try:
    if name == "cupy":
        import cupy
        n = cupy.cuda.runtime.getDeviceCount()
        print(f"cupy {cupy.__version__}: {n} device(s), CUDA runtime "
              f"{cupy.cuda.runtime.runtimeGetVersion()}")
    elif name == "torch":
        import torch
        print(f"torch {torch.__version__}: cuda available {torch.cuda.is_available()}")
    else:
        import jax
        print(f"jax {jax.__version__}: default backend {jax.default_backend()}, {jax.devices()}")
except Exception as e:
    print(f"{name}: not usable ({type(e).__name__}: {e})")
EOF
    done
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if ! timeout 15 "$PY" -c "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)" \
        > /dev/null 2>&1; then
    say "no usable GPU: CuPy is missing or sees no CUDA device; skipping the tests and benchmarks"
    exit 4
fi

# ---- 2. tests on the GPU --------------------------------------------------------------
say "phase 2/3: GPUPROP_BACKEND=cupy pytest -q tests -> $OUT/tests.txt (limit 130 s)"
GPUPROP_BACKEND=cupy timeout -k 10 130 "$PY" -m pytest -q -p no:cacheprovider tests 2>&1 \
    | tee "$OUT/tests.txt"
rc=$?
if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && say "the tests timed out" || say "the tests failed (exit $rc)"
    status=$((status | 1))
fi
[ -f bench/distributed.py ] && { timeout -k 5 60 "$PY" bench/distributed.py --nccl-smoke 2>&1 | tee "$OUT/nccl_smoke.txt" || say "NCCL smoke: exit $? (see $OUT/nccl_smoke.txt)"; }

# ---- 3. benchmarks on the GPU --------------------------------------------------------
say "phase 3/3: python -m bench --gpu -> $OUT/bench_gpu.txt (limit 165 s)"
timeout -k 10 165 "$PY" -m bench --gpu --out "$OUT" --timeout 80 > "$OUT/bench_gpu.txt" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && say "the benchmarks timed out" || say "the benchmarks failed (exit $rc)"
    status=$((status | 2))
fi

echo
say "last lines of the benchmark output ($OUT/bench_gpu.txt):"
# the short table is what `bench --gpu` prints last
sed -n '/^GPU summary/,$p' "$OUT/bench_gpu.txt" | grep . || tail -n 40 "$OUT/bench_gpu.txt"
say "exit status $status (1 tests, 2 benchmarks, 4 no GPU; 0 = all passed)"
exit "$status"
