"""vmap: every primitive's batching rule against a Python loop over the
examples (in_axes 0, 1, -1 and None in combinations), the API (in_axes and
out_axes as pytree prefixes, axis_size), composition with grad, jvp and jit
(jit(vmap) is one batched program), custom_vjp/custom_jvp functions, random
programs, and the errors."""
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop import scipy as gsp
from gpuprop.core import Primitive
from gpuprop.jit import make_ir
from gpuprop.numpy import _base, elementwise as ew
from support import dev, fuzz_programs, host, run_fuzz_program

N = 3       # examples per batch


def examples(shape, seed, dtype=np.float64, lo=-0.9, hi=0.9):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(lo, hi, (N,) + shape).astype(dtype)
    return rng.uniform(lo, hi, (N,) + shape).astype(dtype)


def batched(stack, axis):
    """The examples stacked along `axis` (None: the first example, unbatched)."""
    return stack[0] if axis is None else np.moveaxis(stack, 0, axis)


def assert_vmap_matches_loop(f, stacks, in_axes, rtol=1e-12):
    """vmap(f, in_axes) on the batch equals f on each example, stacked."""
    args = [dev(batched(s, a)) for s, a in zip(stacks, in_axes)]
    got = gp.vmap(f, in_axes=tuple(in_axes))(*args)
    per = [f(*[dev(s[i] if a is not None else s[0]) for s, a in zip(stacks, in_axes)])
           for i in range(N)]
    for g, *ws in zip(gp.tree_leaves(got), *[gp.tree_leaves(p) for p in per]):
        want = np.stack([host(w) for w in ws])
        g = host(g)
        assert g.shape == want.shape and g.dtype == want.dtype, (g.shape, want.shape)
        np.testing.assert_allclose(g, want, rtol=rtol, atol=1e-13, equal_nan=True)


def axes_choices(ranks):
    """in_axes combinations: all 0, all -1, all 1 where possible, and each
    argument unbatched once (the others at 0)."""
    choices = {tuple(0 for _ in ranks), tuple(-1 for _ in ranks)}
    choices.add(tuple(1 if r >= 1 else 0 for r in ranks))
    for k in range(len(ranks)):
        if len(ranks) > 1:
            choices.add(tuple(None if i == k else 0 for i in range(len(ranks))))
    return sorted(choices, key=str)


# ---- elementwise: every primitive, by arity ----------------------------------------------
PARAMS = {ew.astype_p: {"dtype": np.dtype(np.float32)}, ew.remat_barrier_p: {"token": 0}}


def _arity(prim):
    for k in (1, 2, 3):
        try:
            prim.abstract_eval(*[gp.ShapedArray((2,), np.float64)] * k, **PARAMS.get(prim, {}))
            return k
        except (TypeError, ValueError):
            continue
    return None


ELEMENTWISE = sorted((p for p in vars(ew).values()
                      if isinstance(p, Primitive) and p.batch is _base.batch_elementwise
                      and _arity(p)), key=lambda p: p.name)
EW_SHAPES = {1: [(2, 3)], 2: [(2, 3), (3,)], 3: [(2, 3), (3,), (2, 1)]}


@pytest.mark.parametrize("prim", ELEMENTWISE, ids=lambda p: p.name)
def test_elementwise_primitive(prim):
    k = _arity(prim)
    shapes = EW_SHAPES[k]
    stacks = [examples(s, seed=i, lo=0.1) for i, s in enumerate(shapes)]
    if prim is ew.where_p:
        stacks[0] = stacks[0] > 0.5
    params = PARAMS.get(prim, {})
    f = lambda *xs: gp.core.bind(prim, xs, params)      # noqa: E731
    with np.errstate(all="ignore"):
        for axes in axes_choices([len(s) for s in shapes]):
            assert_vmap_matches_loop(f, stacks, axes)


def test_elementwise_with_python_scalars_and_rank_differences():
    x, y = examples((3,), 1), examples((2, 4, 3), 2)
    for axes in [(0, 0), (0, None), (None, 0), (-1, 1)]:
        assert_vmap_matches_loop(lambda a, b: a * 2.0 + b, [x, y], axes)


# ---- every other primitive: a function per case, its example shapes ----------------
IDX2 = np.array([[1, 0], [2, 2]])
CASES = {
    "reshape": (lambda x: gnp.reshape(x, (3, 2)), [(2, 3)]),
    "broadcast_to": (lambda x: gnp.broadcast_to(x, (4, 2, 3)), [(2, 3)]),
    "transpose": (lambda x: gnp.transpose(x, (2, 0, 1)), [(2, 3, 4)]),
    "sum": (lambda x: gnp.sum(x, axis=(0, 2), keepdims=True) + gnp.sum(x), [(2, 3, 4)]),
    "prod": (lambda x: gnp.prod(x, axis=1) * gnp.prod(x), [(2, 3)]),
    "max": (lambda x: gnp.max(x, axis=0) - gnp.max(x, keepdims=True), [(2, 3)]),
    "min": (lambda x: gnp.min(x, axis=-1), [(2, 3)]),
    "argmax": (lambda x: (gnp.argmax(x), gnp.argmax(x, axis=1, keepdims=True)), [(2, 3)]),
    "argmin": (lambda x: gnp.argmin(x, axis=0), [(2, 3)]),
    "cumsum": (lambda x: gnp.cumsum(x, axis=1), [(2, 3)]),
    "argsort": (lambda x: (gnp.argsort(x, axis=0), gnp.sort(x, axis=None)), [(3, 2)]),
    "argsort-axes": (lambda x: (gnp.argsort(x), gnp.argsort(x, axis=0), gnp.argsort(x, None)),
                [(2, 3)]),
    "getitem-basic": (lambda x: x[1:, None, ::-1, 0], [(3, 4, 2)]),
    "getitem-array": (lambda x: x[dev(IDX2), 1:], [(3, 4)]),
    # gnp.getitem: x may be a plain (unbatched) NumPy array, which a traced
    # index cannot index with []
    "getitem-batched-index": (lambda x, i: gnp.getitem(x, i), [(4, 3), ((2,), np.int64, 0, 4)]),
    "getitem-inner-index": (lambda x, i: gnp.getitem(x, (slice(None), i, 1)),
                            [(2, 4, 3), ((2, 2), np.int64, 0, 4)]),
    "getitem-split-index": (lambda x, i: gnp.getitem(x, (i, slice(None), i)),
                            [(3, 2, 3), ((2,), np.int64, 0, 3)]),
    "getitem-ellipsis": (lambda x, i: gnp.getitem(x, (None, Ellipsis, i)),
                         [(2, 4), ((3,), np.int64, 0, 4)]),
    "scatter_add": (lambda x, i: gp.grad(lambda y: gnp.sum(gnp.getitem(y, (slice(None), i)) ** 2))(x),
                    [(2, 4), ((3,), np.int64, 0, 4)]),
    "scatter_add-basic": (lambda x: gp.grad(lambda y: gnp.sum(y[1:, 0] ** 2))(x), [(3, 2)]),
    "concatenate": (lambda x, y: gnp.concatenate([x, y, x], axis=1), [(2, 3), (2, 1)]),
    "pad": (lambda x: gnp.pad(x, ((1, 0), (2, 1)), constant_values=0.5), [(2, 3)]),
    "matmul": (lambda a, b: a @ b, [(2, 3), (3, 4)]),
    "matmul-stack": (lambda a, b: a @ b, [(2, 2, 3), (3, 1)]),
    "matmul-vector-left": (lambda a, b: a @ b, [(3,), (2, 3, 4)]),
    "matmul-vector-right": (lambda a, b: a @ b, [(2, 3), (3,)]),
    "matmul-vectors": (lambda a, b: a @ b, [(3,), (3,)]),
    "matmul-vector-matrix": (lambda a, b: a @ b, [(3,), (3, 4)]),
    "matmul-outer": (lambda a, b: a @ b, [(3, 1), (1, 4)]),
    "solve": (lambda a, b: gnp.linalg.solve(a + 3 * gnp.eye(3), b), [(3, 3), (3, 2)]),
    "slogdet": (lambda a: gnp.linalg.slogdet(a + 3 * gnp.eye(3)), [(2, 3, 3)]),
    "cholesky": (lambda a: gnp.linalg.cholesky(a @ gnp.swapaxes(a, -1, -2) + gnp.eye(3)),
                 [(3, 3)]),
    "qr": (lambda a: gnp.linalg.qr(a), [(4, 3)]),
    "eigh": (lambda a: gnp.linalg.eigh(a + gnp.swapaxes(a, -1, -2))[0], [(3, 3)]),
    "svd": (lambda a: gnp.linalg.svd(a, compute_uv=False), [(4, 3)]),
    "pinv": (lambda a: gnp.linalg.pinv(a), [(4, 3)]),
    "fftn": (lambda x: gnp.fft.fft2(x) + gnp.fft.ifft(x, axis=0, norm="ortho"), [(3, 4)]),
    "rfftn": (lambda x: gnp.fft.rfftn(x, axes=(1, 0)), [(3, 4)]),
    "irfftn": (lambda x: gnp.fft.irfftn(gnp.fft.rfft(x, axis=0), s=(4, 3), axes=(1, 0)),
               [(3, 4)]),
}


def _stacks(specs):
    out = []
    for k, s in enumerate(specs):
        if isinstance(s[0], tuple):       # (shape, dtype, lo, hi)
            shape, dtype, lo, hi = s
            out.append(examples(shape, 10 + k, dtype, lo, hi))
        else:
            out.append(examples(s, 10 + k))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_primitive(name):
    f, specs = CASES[name]
    stacks = _stacks(specs)
    for axes in axes_choices([s.ndim - 1 for s in stacks]):
        assert_vmap_matches_loop(f, stacks, axes, rtol=1e-10)


@pytest.mark.parametrize("name", ["erf", "erfc", "gammaln", "digamma", "log_ndtr"])
def test_special_functions(name):
    pytest.importorskip("scipy")
    assert_vmap_matches_loop(getattr(gsp.special, name), [examples((2, 3), 3, lo=0.2)], [1])


def test_every_primitive_has_a_batching_rule_and_a_case():
    import gpuprop.numpy as pkg
    from gpuprop.scipy import special
    prims = {p for m in (vars(pkg).values()) if hasattr(m, "__dict__") and
             getattr(m, "__name__", "").startswith("gpuprop.numpy")
             for p in vars(m).values() if isinstance(p, Primitive)}
    prims |= {p for p in vars(special).values() if isinstance(p, Primitive)}
    assert all(p.batch is not None for p in prims), [p for p in prims if p.batch is None]
    covered = set()
    for f, specs in CASES.values():
        prog = make_ir(f)(*[dev(s[0]) for s in _stacks(specs)])
        covered |= {e.prim for e in prog.eqns}
    rest = {p for p in prims if p.batch not in (_base.batch_elementwise,)} - covered
    assert not rest, f"primitives without a vmap case here: {sorted(p.name for p in rest)}"


# ---- the API ---------------------------------------------------------------------------
def test_in_axes_and_out_axes_as_pytree_prefixes():
    p = {"w": dev(np.arange(6.0).reshape(2, 3)), "b": dev(np.arange(4.0).reshape(4, 1) + 0.5)}
    x = dev(np.arange(12.0).reshape(4, 3))

    def f(p, x):
        return {"y": x @ p["w"].T + p["b"][0], "c": p["w"].sum()}
    out = gp.vmap(f, in_axes=({"w": None, "b": 0}, 0), out_axes={"y": 1, "c": 0})(p, x)
    assert host(out["y"]).shape == (2, 4)
    np.testing.assert_allclose(host(out["y"]).T, host(x) @ host(p["w"]).T + host(p["b"]))
    np.testing.assert_allclose(host(out["c"]), np.full(4, 15.0))   # unbatched: broadcast
    assert host(gp.vmap(lambda x: x.sum(), in_axes=[0])(x)).shape == (4,)


def test_axis_size_without_mapped_arguments():
    out = gp.vmap(lambda: gnp.ones(2), in_axes=(), axis_size=5)()
    assert host(out).shape == (5, 2)
    with pytest.raises(ValueError, match="pass axis_size"):
        gp.vmap(lambda x: x, in_axes=None)(dev(np.ones(3)))


def test_nested_vmap_is_an_outer_product():
    a, b = dev(np.arange(3.0)), dev(np.arange(4.0))
    out = gp.vmap(gp.vmap(lambda x, y: x * y, (None, 0)), (0, None))(a, b)
    np.testing.assert_allclose(host(out), np.outer(np.arange(3.0), np.arange(4.0)))


# ---- composition --------------------------------------------------------------------
def loss(w, x, t):
    return gnp.sum((gnp.tanh(x @ w) - t) ** 2)


def mlp_data(n=5):
    rng = np.random.default_rng(4)
    return (dev(rng.standard_normal((3, 2))), dev(rng.standard_normal((n, 3))),
            dev(rng.standard_normal((n, 2))))


def per_example_loop(fn, w, x, t):
    return np.stack([host(fn(w, x[i], t[i])) for i in range(x.shape[0])])


def test_vmap_of_grad_gives_per_example_gradients():
    w, x, t = mlp_data()
    got = gp.vmap(gp.grad(loss), in_axes=(None, 0, 0))(w, x, t)
    np.testing.assert_allclose(host(got), per_example_loop(gp.grad(loss), w, x, t), rtol=1e-12)


def test_grad_of_vmap_and_jvp_of_vmap():
    w, x, t = mlp_data()
    total = lambda w: gnp.sum(gp.vmap(loss, (None, 0, 0))(w, x, t))    # noqa: E731
    np.testing.assert_allclose(host(gp.grad(total)(w)), host(gp.grad(loss)(w, x, t)),
                               rtol=1e-12)
    v = dev(np.ones((3, 2)))
    np.testing.assert_allclose(host(gp.jvp(total, (w,), (v,))[1]),
                               host(gp.jvp(lambda w: loss(w, x, t), (w,), (v,))[1]), rtol=1e-12)


def test_jit_of_vmap_is_one_batched_program_and_vmap_of_jit_inlines():
    w, x, t = mlp_data(n=7)
    jf = gp.jit(gp.vmap(gp.grad(loss), in_axes=(None, 0, 0)))
    want = per_example_loop(gp.grad(loss), w, x, t)
    np.testing.assert_allclose(host(jf(w, x, t)), want, rtol=1e-12)
    small = len(jf.lower(*mlp_data(n=2)).program.eqns)
    assert len(jf.lower(w, x, t).program.eqns) == small      # no loop over the examples
    np.testing.assert_allclose(host(gp.vmap(gp.jit(gp.grad(loss)), (None, 0, 0))(w, x, t)),
                               want, rtol=1e-12)


def test_custom_vjp_and_custom_jvp_functions_keep_their_rules_under_vmap():
    clip_grad = gp.custom_vjp(lambda x: x)
    clip_grad.defvjp(lambda x: (x, None), lambda _, g: (gnp.clip(g, -1.0, 1.0),))
    x = dev(np.array([[1.0, 2.0], [3.0, -4.0]]))
    g = gp.vmap(gp.grad(lambda x: gnp.sum(clip_grad(x) * 5.0)))(x)
    np.testing.assert_array_equal(host(g), np.ones((2, 2)))

    @gp.custom_jvp
    def f(x):
        return gnp.sin(x)

    @f.defjvp
    def _(primals, tangents):
        return f(primals[0]), 2.0 * tangents[0]
    _, t = gp.jvp(gp.vmap(f), (x,), (dev(np.ones((2, 2))),))
    np.testing.assert_array_equal(host(t), np.full((2, 2), 2.0))
    np.testing.assert_array_equal(host(gp.vmap(gp.grad(lambda y: gnp.sum(f(y))))(x)),
                                  np.full((2, 2), 2.0))


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fuzz_programs())
def test_random_programs_under_vmap_jit_and_grad(program):
    shapes, ops, outs, seed = program
    rng = np.random.default_rng(seed)
    stacks = [rng.uniform(-1.2, 1.2, (N,) + s) for s in shapes]
    f = lambda *a: run_fuzz_program(gnp, ops, outs, *a)                # noqa: E731
    total = lambda *a: sum(gnp.sum(o) for o in f(*a))                 # noqa: E731
    axes = [0] * len(shapes)
    assert_vmap_matches_loop(f, stacks, axes, rtol=1e-10)
    args = [dev(s) for s in stacks]
    jitted = gp.jit(gp.vmap(f))(*args)
    eager = gp.vmap(f)(*args)
    for a, b in zip(jitted, eager):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-10, atol=1e-12)
    argnums = tuple(range(len(args)))
    g = gp.grad(lambda *a: gnp.sum(sum(gnp.sum(o) for o in gp.vmap(f)(*a))), argnums)(*args)
    for k, gk in enumerate(g):
        want = np.stack([host(gp.grad(total, argnums)(*[dev(s[i]) for s in stacks])[k])
                         for i in range(N)])
        np.testing.assert_allclose(host(gk), want, rtol=1e-10, atol=1e-12)


# ---- errors ------------------------------------------------------------------------------
def test_errors_name_the_function_and_the_arguments():
    f = lambda x, y: x + y      # noqa: E731
    with pytest.raises(ValueError, match=r"vmap\(<lambda>\): the mapped axes have different "
                                         r"sizes \(argument leaf 0: 3, argument leaf 1: 4\)"):
        gp.vmap(f)(dev(np.ones(3)), dev(np.ones(4)))
    with pytest.raises(ValueError, match=r"in_axes = \(0, 0, 0\) does not match"):
        gp.vmap(f, in_axes=(0, 0, 0))(dev(np.ones(3)), dev(np.ones(3)))
    with pytest.raises(ValueError, match=r"in_axes 2 is out of range for argument leaf 0, "
                                         r"which has 2 dimension"):
        gp.vmap(f, in_axes=2)(dev(np.ones((3, 2))), dev(np.ones((3, 2))))
    with pytest.raises(gp.TracerControlFlowError, match="gnp.where"):
        gp.vmap(lambda x: x if x > 0 else -x)(dev(np.ones(3)))
    with pytest.raises(ValueError, match="out_axes is None for an output that depends"):
        gp.vmap(lambda x: x * 2, out_axes=None)(dev(np.ones(3)))


def test_axis_choices_cover_negative_and_unbatched():
    assert (None, 0) in axes_choices([1, 1]) and (-1, -1) in axes_choices([1, 1])
    assert list(itertools.chain(*axes_choices([0]))) == [-1, 0]
