"""Every test runs under each backend of the run (support.BACKENDS): numpy and
the strict test backend by default; only cupy with GPUPROP_BACKEND=cupy
(bench/gpu_check.sh). Modules of jit tests also run under each CPU executor
(`pytestmark = pytest.mark.usefixtures("executor")`): the native one
(compile/native.py) and the NumPy one. Shared helpers live in tests/support.py."""
import pytest

import gpuprop as gp
from strict_backend import strict_backend
from support import BACKENDS

gp.register_backend("strict", strict_backend)


@pytest.fixture(params=BACKENDS, autouse=True)
def backend_name(request):
    with gp.use_backend(request.param):
        yield request.param


@pytest.fixture(params=["native", "numpy-executor"])
def executor(request, backend_name, monkeypatch):
    """The CPU executor jit compiles for: GPUPROP_NATIVE=0 keeps the NumPy one.
    Only NumPy arrays compile natively, so other backends run once."""
    if request.param == "native" and backend_name != "numpy":
        pytest.skip("the native executor runs NumPy arrays only")
    monkeypatch.setenv("GPUPROP_NATIVE", "1" if request.param == "native" else "0")
    return request.param
