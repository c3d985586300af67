"""The IR: the reference interpreter (ir.eval_program), the checker of its
invariants (ir.check), and each optimisation pass (compile/passes.py)."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.compile import passes
from gpuprop.ir import Eqn, Program, ProgramError, Var, check, eval_program
from gpuprop.jit import make_ir
from support import dev, host


def mlp(w, b, x):
    return gnp.sum(gnp.tanh(x @ w + b) ** 2)


def args():
    rng = np.random.default_rng(0)
    return (dev(rng.standard_normal((3, 4))), dev(rng.standard_normal(4)),
            dev(rng.standard_normal((5, 3))))


def test_eval_program_matches_eager_values_and_gradients():
    a = args()
    prog = make_ir(gp.value_and_grad(mlp, (0, 1)))(*a)
    value, (gw, gb) = gp.value_and_grad(mlp, (0, 1))(*a)
    got = eval_program(prog, *a)
    for g, w in zip(got, [value, gw, gb]):
        np.testing.assert_allclose(host(g), host(w), rtol=1e-12)


def test_eval_program_is_differentiable_like_any_function():
    a = args()
    prog = make_ir(mlp)(*a)
    got = gp.grad(lambda w: eval_program(prog, w, a[1], a[2])[0])(a[0])
    np.testing.assert_allclose(host(got), host(gp.grad(mlp)(*a)), rtol=1e-12)


def test_eval_program_counts_its_arguments():
    prog = make_ir(mlp)(*args())
    with pytest.raises(TypeError, match=r"eval_program\(mlp\): 3 input\(s\) expected, got 2"):
        eval_program(prog, *args()[:2])


def test_check_accepts_staged_programs():
    a = args()
    for f in (mlp, gp.grad(mlp, (0, 1, 2)), gp.hessian(mlp)):
        check(make_ir(f)(*a))


def _broken(kind):
    """A valid program made to break one invariant."""
    prog = make_ir(lambda x: gnp.exp(gnp.sin(x)) * 2.0)(dev(np.ones(3)))
    e0, e1, e2 = prog.eqns
    if kind == "order":
        return Program(prog.invars, prog.consts, [e1, e0, e2], prog.outvars)
    if kind == "twice":
        return Program(prog.invars, prog.consts, [e0, Eqn(e1.prim, e1.inputs, {}, e0.out), e2],
                       prog.outvars)
    if kind == "aval":
        wrong = Var(gp.ShapedArray((4,), np.float64))
        return Program(prog.invars, prog.consts, [e0, e1, Eqn(e2.prim, e2.inputs, {}, wrong)],
                       [wrong])
    return Program(prog.invars, prog.consts, [e0, e1], prog.outvars)     # "undefined"


@pytest.mark.parametrize("kind,message", [
    ("order", "reads .* before it is defined"), ("twice", "assigned twice"),
    ("aval", r"has output f64\[4\], its shape rule gives f64\[3\]"),
    ("undefined", "output .* is never defined")])
def test_check_names_each_broken_invariant(kind, message):
    with pytest.raises(ProgramError, match=message):
        check(_broken(kind))


def _prims(prog):
    return [e.prim.name for e in prog.eqns]


def _unoptimized(f, *xs, monkeypatch):
    monkeypatch.setattr(passes, "PASSES", ())
    return make_ir(f)(*xs)


def test_simplify_composes_and_drops_identities(monkeypatch):
    x = dev(np.arange(24.0).reshape(2, 3, 4))
    f = lambda x: gnp.exp(gnp.transpose(gnp.transpose(x, (1, 0, 2)), (1, 0, 2))  # noqa: E731
                          .reshape(6, 4).reshape(2, 12).reshape(2, 3, 4) * gnp.ones((2, 3, 4)))
    raw = _unoptimized(f, x, monkeypatch=monkeypatch)
    assert _prims(raw).count("transpose") == 2 and _prims(raw).count("reshape") == 3
    simple = check(passes.simplify(check(raw)))
    assert _prims(passes.dce(simple)) == ["exp"]
    np.testing.assert_array_equal(host(eval_program(simple, x)[0]), host(f(x)))


def test_simplify_keeps_what_is_not_exact(monkeypatch):
    x = dev(np.array([-0.0, 1.0]))
    raw = _unoptimized(lambda x: x + gnp.zeros(2), x, monkeypatch=monkeypatch)
    assert _prims(passes.optimize(raw)) == ["add"]          # -0.0 + 0.0 is +0.0
    got = eval_program(passes.optimize(raw), x)[0]
    assert not np.signbit(host(got)[0])


def test_cse_merges_repeats_and_dce_drops_the_unused(monkeypatch):
    x = dev(np.linspace(-1, 1, 5))
    f = lambda x: (gnp.sin(x) * gnp.sin(x), gnp.cos(x))[0]     # noqa: E731
    raw = _unoptimized(f, x, monkeypatch=monkeypatch)
    assert sorted(_prims(raw)) == ["cos", "multiply", "sin", "sin"]
    merged = check(passes.cse(raw))
    assert sorted(_prims(merged)) == ["cos", "multiply", "sin"]
    assert sorted(_prims(check(passes.dce(merged)))) == ["multiply", "sin"]
    np.testing.assert_allclose(host(eval_program(passes.optimize(raw), x)[0]), np.sin(host(x)) ** 2)
