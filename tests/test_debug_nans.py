"""NaN debugging (gp.debug_nans() and GPUPROP_DEBUG_NANS=1): the first
primitive that turns NaN-free inputs into a NaN raises gp.NaNError (a
FloatingPointError) naming it and its input shapes: eagerly, in the forward
or the backward pass of grad, and under jit, where the message also shows
the IR equation (fusion and buffer reuse are off then, so the equation is
the primitive itself and its inputs are intact when checked).  A NaN that
was already in an input, and infinities, raise nothing; nor does anything
with debugging off.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from support import dev, host

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # nan on purpose


def naive(x):
    """The where pitfall: a NaN first appears in log's VJP (0 * inf)."""
    return gnp.sum(gnp.where(x > 0, gnp.log(x), 0.0))


def chain(x):
    """log of a negative inside an elementwise chain that jit would fuse and
    compute in place: log must still be the one named."""
    return gnp.sum(gnp.exp(gnp.log(x * 2.0 - 3.0) * 0.5) + 1.0)


def test_nan_error_is_a_floating_point_error():
    assert issubclass(gp.NaNError, FloatingPointError)


@pytest.mark.parametrize("dtype,tag", [(np.float32, "f32"), (np.float64, "f64")])
def test_eager_names_the_primitive_and_its_input_shapes(dtype, tag):
    x = dev([[1.0, -1.0, 2.0], [0.5, 3.0, 4.0]], dtype)
    with gp.debug_nans():
        with pytest.raises(gp.NaNError, match=rf"gnp\.sqrt\({tag}\[2,3\]\)"):
            gnp.sqrt(x)
        with pytest.raises(gp.NaNError, match=rf"gnp\.subtract\({tag}\[2,3\], {tag}\[3\]\)"):
            gnp.subtract(gnp.exp(x * 1e3), dev([np.inf] * 3, dtype))


def test_forward_pass_under_grad_names_the_primitive():
    with gp.debug_nans():
        with pytest.raises(gp.NaNError, match=r"gnp\.log\(f32\[4\]\)") as info:
            gp.grad(chain)(dev([2.0, 1.0, 3.0, 4.0], np.float32))
    assert "backward" not in str(info.value)


def test_backward_pass_names_the_vjp():
    x = dev([0.0, 1.0, 2.0], np.float32)
    with gp.debug_nans():
        with pytest.raises(gp.NaNError) as info:
            gp.grad(naive)(x)
    msg = str(info.value)
    assert "in the backward pass, in the VJP of log" in msg
    assert "gnp.divide(f32[3], f32[3])" in msg


def test_backward_pass_of_grad_of_grad():
    """d2/dx2 of x * sqrt(x) at 0: the outer backward pass hits 0 * inf."""
    f = lambda x: gnp.sum(x * gnp.sqrt(x))
    g2 = gp.grad(lambda x: gnp.sum(gp.grad(f)(x)))
    with gp.debug_nans(False):
        assert np.isnan(host(g2(dev([0.0, 1.0])))[0])
    with gp.debug_nans():
        with pytest.raises(gp.NaNError, match="in the backward pass, in the VJP of"):
            g2(dev([0.0, 1.0]))


@pytest.mark.parametrize("which", ["forward", "backward"])
def test_jit_names_the_equation(which):
    f = chain if which == "forward" else gp.grad(naive)
    x = dev([0.0, 1.0, 2.0], np.float32)
    program = str(gp.make_ir(f)(x)).split("\n")
    with gp.debug_nans():
        with pytest.raises(gp.NaNError) as info:
            gp.jit(f)(x)
    msg = str(info.value)
    name, call = ("log", "gnp.log(f32[3])") if which == "forward" else \
        ("divide", "gnp.divide(f32[3], f32[3])")
    assert msg.startswith(f"jit({f.__name__}): equation ")
    assert call in msg
    equation = msg.split("\n")[-1]
    assert f" = {name} " in equation and equation in program


def test_debug_mode_recompiles_a_jitted_function():
    """The compilation cache keys on the debugging flag: a program compiled
    without checks is not reused with them, nor the other way round."""
    f = gp.jit(chain)
    x = dev([2.0, 1.0, 3.0], np.float32)
    with gp.debug_nans(False):
        assert np.isnan(host(f(x)))
    with gp.debug_nans():
        with pytest.raises(gp.NaNError, match=r"gnp\.log\(f32\[3\]\)"):
            f(x)
    with gp.debug_nans(False):
        assert np.isnan(host(f(x)))
    assert f.traces == 2


@pytest.mark.parametrize("mode", ["eager", "grad", "jit", "jit_grad"])
def test_a_nan_already_in_the_input_does_not_raise(mode):
    f = lambda x, c: gnp.sum(gnp.sin(x) * c + gnp.log(x * x + 1.0))
    run = {"eager": f, "grad": gp.grad(f), "jit": gp.jit(f),
           "jit_grad": gp.jit(gp.grad(f))}[mode]
    x = dev([np.nan, 1.0, 2.0], np.float32)
    with gp.debug_nans():
        assert np.isnan(host(run(x, 2.0))).any()
        # a NaN Python scalar is an input too (under jit: a literal of the program)
        assert np.isnan(host(run(dev([0.5, 1.0], np.float32), float("nan")))).all()


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_infinities_do_not_raise(mode):
    t = (lambda f: f) if mode == "eager" else gp.jit
    f = gp.value_and_grad(lambda x: gnp.sum(gnp.log(x) + gnp.sqrt(x)))
    r = gp.value_and_grad(lambda x: gnp.sum(1.0 / x))
    with gp.debug_nans():
        v, g = t(f)(dev([0.0, 1.0]))
        rv, rg = t(r)(dev([0.0, 1.0]))
    assert host(v) == -np.inf and host(rv) == np.inf
    np.testing.assert_array_equal(host(g), [np.inf, 1.5])
    np.testing.assert_array_equal(host(rg), [-np.inf, -1.0])


@pytest.mark.parametrize("mode", ["eager", "grad", "jit", "jit_grad"])
def test_with_debugging_off_nothing_raises(mode):
    run = {"eager": chain, "grad": gp.grad(naive), "jit": gp.jit(chain),
           "jit_grad": gp.jit(gp.grad(naive))}[mode]
    with gp.debug_nans(False):
        assert np.isnan(host(run(dev([0.0, 1.0, 2.0])))).any()


def test_context_manager_restores_the_setting_after_an_error():
    with gp.debug_nans(False):
        with pytest.raises(gp.NaNError):
            with gp.debug_nans():
                gnp.log(dev([-1.0]))
        assert np.isnan(host(gnp.log(dev([-1.0]))))
        with gp.debug_nans():
            with gp.debug_nans(False):      # nested: switched off for a block
                assert np.isnan(host(gnp.log(dev([-1.0]))))
            with pytest.raises(gp.NaNError):
                gnp.log(dev([-1.0]))


def test_environment_variable_turns_debugging_on(backend_name):
    """GPUPROP_DEBUG_NANS=1, read at import: eager, backward and jit raise."""
    if backend_name != "numpy":
        pytest.skip("one subprocess is enough: the flag is not per backend")
    script = textwrap.dedent("""
        import warnings
        import numpy as np
        import gpuprop as gp, gpuprop.numpy as gnp
        warnings.simplefilter("ignore")
        x = np.array([0.0, 1.0, 2.0], np.float32)
        naive = lambda x: gnp.sum(gnp.where(x > 0, gnp.log(x), 0.0))
        for name, f in [("eager", lambda x: gnp.log(x - 1.0)), ("backward", gp.grad(naive)),
                        ("jit", gp.jit(gp.grad(naive)))]:
            try:
                f(x)
                print(name, "no error")
            except gp.NaNError as e:
                print(name, "NaNError", str(e).replace("\\n", " | "))
        """)
    env = dict(os.environ, GPUPROP_DEBUG_NANS="1", GPUPROP_BACKEND="numpy")
    root = os.path.join(os.path.dirname(__file__), "..")
    res = subprocess.run([sys.executable, "-c", script], env=env, cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = dict(line.split(" ", 1) for line in res.stdout.strip().split("\n"))
    assert lines["eager"].startswith("NaNError gnp.log(f32[3])"), lines
    assert "in the VJP of log" in lines["backward"], lines
    assert "= divide " in lines["jit"] and "gnp.divide(f32[3], f32[3])" in lines["jit"], lines
