"""Every test runs under each backend of the run: numpy and the strict test
backend by default; only cupy with GPUPROP_BACKEND=cupy (bench/gpu_check.sh)."""
import os

import numpy as np
import pytest

import gpuprop as gp
from strict_backend import strict_backend

gp.register_backend("strict", strict_backend)

BACKENDS = (["cupy"] if os.environ.get("GPUPROP_BACKEND", "").strip() == "cupy"
            else ["numpy", "strict"])


@pytest.fixture(params=BACKENDS, autouse=True)
def backend_name(request):
    with gp.use_backend(request.param):
        yield request.param


def dev(x, dtype=None):
    """Host data as an array of the active backend."""
    return gp.asarray(np.asarray(x, dtype=dtype))


def host(x):
    return gp.to_numpy(x)
