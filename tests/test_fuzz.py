"""Property-based fuzzing: hypothesis builds small random programs (DAGs of
elementwise ops, broadcasting binary ops and reductions over random
broadcast-compatible shapes, float64), runs each with gnp on the device and
with NumPy on the host, compares the values, and checks the derivatives with
check_grads to second order (which checks the first order on the way).

The programs come from support.fuzz_programs (shared with test_fuzz_jit.py);
ops whose domain is limited are guarded (log(x*x+1), sqrt(x*x+1), ...), so
every program is smooth and finite wherever its inputs are.

GPUPROP_FUZZ_EXAMPLES sets the number of programs per backend (default 30).
"""
import os

import numpy as np
from hypothesis import HealthCheck, given, settings

import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import REF, assert_same, dev, fuzz_programs, run_fuzz_program


@settings(max_examples=int(os.environ.get("GPUPROP_FUZZ_EXAMPLES", "30")), deadline=None,
          derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fuzz_programs())
def test_random_program(program):
    shapes, ops, outs, seed = program
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1.2, 1.2, s) for s in shapes]
    got = run_fuzz_program(gnp, ops, outs, *map(dev, xs))
    for g, w in zip(got, run_fuzz_program(REF, ops, outs, *xs)):
        assert_same(g, w, rtol=1e-6, atol=1e-10)
    check_grads(lambda *a: run_fuzz_program(gnp, ops, outs, *a), xs, order=2, rtol=1e-4, atol=1e-6)
