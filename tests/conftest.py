"""Every test runs under each backend of the run (support.BACKENDS): numpy and
the strict test backend by default; only cupy with GPUPROP_BACKEND=cupy
(bench/gpu_check.sh). Shared helpers live in tests/support.py."""
import pytest

import gpuprop as gp
from strict_backend import strict_backend
from support import BACKENDS

gp.register_backend("strict", strict_backend)


@pytest.fixture(params=BACKENDS, autouse=True)
def backend_name(request):
    with gp.use_backend(request.param):
        yield request.param
