import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import dev, host


def test_grad_tanh_sum():
    x = np.linspace(-1, 1, 5)
    g = gp.grad(lambda x: gnp.sum(gnp.tanh(x) ** 2))(dev(x))
    np.testing.assert_allclose(host(g), 2 * np.tanh(x) * (1 - np.tanh(x) ** 2))


def test_strict_refuses_numpy(backend_name):
    if backend_name != "strict":
        pytest.skip("strict backend only")
    with pytest.raises(TypeError):
        np.asarray(dev([1.0]))
    with pytest.raises(gp.BackendMismatchError, match="numpy.*strict"):
        gnp.exp(np.ones(3))
