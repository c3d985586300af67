"""gnp.linalg against NumPy (values, dtypes, stacked matrices) and against
finite differences (check_grads, second order, float64) at random
well-conditioned matrices, under jit, and at the documented edge cases:
equal eigenvalues, one-triangle inputs, non-square SVD/QR, norms at 0."""
import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import dev, host

la = gnp.linalg


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def well(shape, seed=0):
    """Square matrices with eigenvalues near n: well conditioned."""
    return rand(shape, seed) + shape[-1] * np.eye(shape[-1])


def spd(shape, seed=0):
    a = rand(shape, seed)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


def close(got, want, tol=1e-10):
    np.testing.assert_allclose(host(got), want, rtol=tol, atol=tol)


def columns_signed(v):
    """Columns scaled by the sign of their largest entry: the eigenvector /
    singular vector sign is a convention of the LAPACK in use."""
    idx = np.abs(v).argmax(axis=-2)[..., None, :]
    return v * np.sign(np.take_along_axis(v, idx, axis=-2))


SQUARE = [(3, 3), (2, 4, 4), (0, 2, 2)]
RECT = [(5, 3), (3, 5), (4, 4), (2, 5, 3), (2, 3, 4)]


# ---- values -------------------------------------------------------------------
@pytest.mark.parametrize("shape", SQUARE, ids=str)
def test_square_functions_match_numpy(shape):
    a, s = well(shape), spd(shape)
    close(la.inv(dev(a)), np.linalg.inv(a))
    close(la.det(dev(a)), np.linalg.det(a))
    sign, logdet = la.slogdet(dev(a))
    close(sign, np.linalg.slogdet(a)[0])
    close(logdet, np.linalg.slogdet(a)[1])
    close(la.cholesky(dev(s)), np.linalg.cholesky(s))
    close(la.cholesky(dev(s), upper=True), np.linalg.cholesky(s, upper=True))
    close(la.eigvalsh(dev(s)), np.linalg.eigvalsh(s))
    for uplo in "LU":
        w, v = la.eigh(dev(s), UPLO=uplo)
        w0, v0 = np.linalg.eigh(s, UPLO=uplo)
        close(w, w0)
        close(columns_signed(host(v)), columns_signed(v0))
    for n in (0, 1, 3, -2):
        close(la.matrix_power(dev(a), n), np.linalg.matrix_power(a, n))
    close(la.cond(dev(a)), np.linalg.cond(a))
    for p in (1, -1, np.inf, "fro", "nuc", -2):
        close(la.cond(dev(a), p), np.linalg.cond(a, p))


def test_one_triangle_is_read():
    """eigh and cholesky read only the UPLO triangle, as NumPy."""
    s = spd((4, 4))
    junk = s + np.triu(rand((4, 4), 1), 1)    # the upper triangle changed
    close(la.eigvalsh(dev(junk)), np.linalg.eigvalsh(s))
    close(la.cholesky(dev(junk)), np.linalg.cholesky(s))
    close(la.eigvalsh(dev(junk.T), UPLO="U"), np.linalg.eigvalsh(s))


@pytest.mark.parametrize("shape", [(4, 4), (3, 4, 4)], ids=str)
def test_solve_matches_numpy(shape):
    a = well(shape)
    for b in (rand(4, 1), rand((4, 2), 1), rand((3, 4, 2), 1), rand((2, 1, 4, 3), 1)):
        if b.ndim > 2 and len(shape) == 3 and b.shape[0] == 2:
            want = np.linalg.solve(a[None], b)
        else:
            want = np.linalg.solve(a, b)
        close(la.solve(dev(a), dev(b)), want)


@pytest.mark.parametrize("shape", RECT, ids=str)
def test_rectangular_functions_match_numpy(shape):
    a = rand(shape)
    for full in (False, True):
        u, s, vh = la.svd(dev(a), full_matrices=full)
        u0, s0, vh0 = np.linalg.svd(a, full_matrices=full)
        assert host(u).shape == u0.shape and host(vh).shape == vh0.shape
        close(s, s0)
        k = s0.shape[-1]
        close(columns_signed(host(u)[..., :k]), columns_signed(u0[..., :k]))
        close(columns_signed(np.swapaxes(host(vh)[..., :k, :], -1, -2)),
              columns_signed(np.swapaxes(vh0[..., :k, :], -1, -2)))
        close(host(u)[..., :k] * host(s)[..., None, :] @ host(vh)[..., :k, :], a)
    close(la.svd(dev(a), compute_uv=False), np.linalg.svd(a, compute_uv=False))
    close(la.svdvals(dev(a)), np.linalg.svdvals(a))
    for mode in ("reduced", "complete"):
        q, r = la.qr(dev(a), mode=mode)
        q0, r0 = np.linalg.qr(a, mode=mode)
        close(q, q0)
        close(r, r0)
    close(la.qr(dev(a), mode="r"), np.linalg.qr(a, mode="r"))
    close(la.pinv(dev(a)), np.linalg.pinv(a))
    close(la.matrix_rank(dev(a)), np.linalg.matrix_rank(a), 0)


def test_float32_stays_float32_and_integers_become_float64():
    a = well((3, 3)).astype(np.float32)
    for f in (la.inv, la.det, la.svdvals, la.pinv, la.eigvalsh, la.norm,
              lambda x: la.qr(x)[0], lambda x: la.eigh(x)[1], lambda x: la.svd(x)[0]):
        assert host(f(dev(a))).dtype == np.float32
    ints = np.array([[2, 1], [1, 3]])
    assert host(la.inv(dev(ints))).dtype == np.float64
    close(la.det(dev(ints)), 5.0)


def test_rank_deficient_values():
    a = rand((5, 2)) @ rand((2, 4), 1)     # rank 2
    close(la.pinv(dev(a)), np.linalg.pinv(a))
    assert int(host(la.matrix_rank(dev(a)))) == 2
    close(la.matrix_rank(dev(np.stack([a, a[:, :1] * np.ones(4)]))), [2, 1], 0)
    assert int(host(la.matrix_rank(dev(np.zeros(3))))) == 0
    assert int(host(la.matrix_rank(dev(a), tol=1e100))) == 0


@pytest.mark.parametrize("bshape", [(6,), (6, 2)], ids=str)
@pytest.mark.parametrize("ashape", [(6, 3), (3, 6)], ids=str)
def test_lstsq_matches_numpy(ashape, bshape):
    a, b = rand(ashape), rand(bshape[:0] + (ashape[0],) + bshape[1:], 1)
    x, res, rank, s = la.lstsq(dev(a), dev(b))
    x0, res0, rank0, s0 = np.linalg.lstsq(a, b)
    close(x, x0)
    close(res, res0)
    assert int(host(rank)) == rank0
    close(s, s0)


VECTOR_ORDS = [None, 1, 2, np.inf, -np.inf, 0, 3, 0.5]
MATRIX_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]


@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_matches_numpy(keepdims):
    x = rand((3, 4, 5))
    for ord in VECTOR_ORDS:
        for axis in (0, -1, 1):
            close(la.norm(dev(x), ord, axis, keepdims), np.linalg.norm(x, ord, axis, keepdims))
        close(la.norm(dev(x[0, 0]), ord, keepdims=keepdims),
              np.linalg.norm(x[0, 0], ord, keepdims=keepdims))
    for ord in MATRIX_ORDS:
        for axis in ((0, 1), (2, 0), (-1, -2)):
            close(la.norm(dev(x), ord, axis, keepdims), np.linalg.norm(x, ord, axis, keepdims))
        close(la.norm(dev(x[0]), ord, keepdims=keepdims),
              np.linalg.norm(x[0], ord, keepdims=keepdims))
    close(la.norm(dev(x), keepdims=keepdims), np.linalg.norm(x, keepdims=keepdims))


# ---- derivatives ----------------------------------------------------------------
def sym(a):
    return (a + gnp.swapaxes(a, -1, -2)) / 2


GRADS = {
    "inv": (lambda a: la.inv(a), well),
    "det": (lambda a: la.det(a), well),
    "slogdet": (lambda a: la.slogdet(a)[1], well),
    "solve(a)": (lambda a: la.solve(a, a[..., :2] * 2.0 + 1.0), well),
    "cholesky": (lambda a: la.cholesky(a), spd),
    "cholesky(upper)": (lambda a: la.cholesky(a, upper=True), spd),
    "eigh": (lambda a: la.eigh(a), spd),
    "eigh(U)": (lambda a: la.eigh(a, UPLO="U"), spd),
    "eigh(sym)": (lambda a: la.eigh(sym(a)), spd),
    "eigvalsh": (lambda a: la.eigvalsh(a), spd),
    "matrix_power(3)": (lambda a: la.matrix_power(a, 3), well),
    "matrix_power(-2)": (lambda a: la.matrix_power(a, -2), well),
    "cond": (lambda a: la.cond(a), well),
    "cond(1)": (lambda a: la.cond(a, 1), well),
    "norm(2)": (lambda a: la.norm(a, 2, axis=(-2, -1)), well),
    "norm(nuc)": (lambda a: la.norm(a, "nuc", axis=(-1, -2), keepdims=True), well),
    "norm(fro)": (lambda a: la.norm(a, "fro", axis=(0, -1)), rand),
    "norm(inf)": (lambda a: la.norm(a, np.inf, axis=(-2, -1)), rand),
    "norm(vec)": (lambda a: la.norm(a, axis=-1), rand),
    "norm(vec 3)": (lambda a: la.norm(a, 3, axis=0, keepdims=True), rand),
    "norm(vec 1)": (lambda a: la.norm(a, 1, axis=1), rand),
}


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 3)], ids=str)
@pytest.mark.parametrize("name", GRADS)
def test_grads_square(name, shape):
    f, make = GRADS[name]
    check_grads(f, (make(shape),), order=2)


@pytest.mark.parametrize("name", ["inv", "det", "cholesky", "eigh", "eigvalsh", "cond",
                                  "norm(nuc)", "solve(a)"])
def test_grads_of_an_empty_stack(name):
    f, _ = GRADS[name]
    g = gp.grad(lambda a: gnp.sum(gp.tree_leaves(f(a))[-1]))(dev(np.zeros((0, 3, 3))))
    assert host(g).shape == (0, 3, 3)


def test_grad_solve_broadcast_b():
    a, b = well((2, 3, 3)), rand((3, 2), 1)
    check_grads(la.solve, (a, b), order=2)
    check_grads(la.solve, (a[0], rand(3, 2)), order=2)


RECT_GRADS = {
    "svd": lambda a: la.svd(a, full_matrices=False),
    "svdvals": la.svdvals,
    "qr": la.qr,
    "qr(r)": lambda a: la.qr(a, mode="r"),
    "pinv": la.pinv,
    "norm(2)": lambda a: la.norm(a, 2, axis=(-2, -1)),
}


@pytest.mark.parametrize("shape", RECT, ids=str)
@pytest.mark.parametrize("name", RECT_GRADS)
def test_grads_rectangular(name, shape):
    a = rand(shape) + 2 * np.eye(*shape[-2:])     # singular values well apart from 0
    check_grads(RECT_GRADS[name], (a,), order=2)


def test_grad_square_svd_with_full_matrices():
    check_grads(lambda a: la.svd(a), (rand((3, 3)),), order=2)


def test_grad_lstsq():
    a, b = rand((6, 3)), rand((6, 2), 1)
    check_grads(lambda a, b: la.lstsq(a, b)[:2], (a, b), order=2)
    check_grads(lambda a, b: la.lstsq(a, b)[0], (rand((3, 5)), rand(3, 1)), order=2)


def test_gradient_lies_in_the_triangle_read():
    """The gradient of a function of eigh/cholesky is its exact derivative:
    the other triangle is not read, so its gradient is 0."""
    s = dev(spd((3, 3)))
    for f, upper in [(lambda a: gnp.sum(la.eigvalsh(a) ** 2), False),
                     (lambda a: gnp.sum(la.eigh(a, UPLO="U")[1][0] ** 2), True),
                     (lambda a: gnp.sum(la.cholesky(a) ** 3), False)]:
        g = host(gp.grad(f)(s))
        other = np.tril(g, -1) if upper else np.triu(g, 1)
        assert np.all(other == 0) and np.any(g != 0)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")   # inf * 0 in matmul
def test_eigh_at_equal_eigenvalues():
    """As JAX: eigenvalue gradients are finite and exact; an eigenvector
    gradient that couples two equal eigenvalues is not finite."""
    q = np.linalg.qr(rand((3, 3)))[0]
    a = dev(q @ np.diag([1.0, 1.0, 2.0]) @ q.T)
    weights = dev([1.5, 1.5, 3.0])      # symmetric in the equal pair: differentiable
    want = q @ np.diag([1.5, 1.5, 3.0]) @ q.T
    want = np.tril(want + want.T) - np.diag(np.diag(want))   # read from one triangle
    for f in (lambda a: gnp.sum(la.eigvalsh(a) * weights),
              lambda a: gnp.sum(la.eigh(a)[0] * weights)):
        np.testing.assert_allclose(host(gp.grad(f)(a)), want, atol=1e-12)
    # eigenvalues that LAPACK gives exactly equal (rounding separates those of
    # q diag q^T: their gaps are tiny, and the eigenvector gradient huge)
    a = dev(np.diag([2.0, 1.0, 1.0]))
    c = dev([1.0, 2.0, 3.0])
    g = host(gp.grad(lambda a: gnp.sum(la.eigh(a)[1][:, 1] * c))(a))
    assert not np.all(np.isfinite(g))
    # the eigenvector of the simple eigenvalue does not couple the pair
    g = host(gp.grad(lambda a: gnp.sum(la.eigh(a)[1][:, 2] * c + la.eigh(a)[0]))(a))
    assert np.all(np.isfinite(g))


def test_svd_at_equal_singular_values():
    q1, q2 = np.linalg.qr(rand((4, 4)))[0], np.linalg.qr(rand((3, 3), 1))[0]
    a = dev(q1[:, :3] @ np.diag([2.0, 2.0, 1.0]) @ q2)
    g = host(gp.grad(lambda a: gnp.sum(la.svdvals(a)))(a))
    np.testing.assert_allclose(g, q1[:, :3] @ q2, atol=1e-12)
    assert np.all(np.isfinite(host(gp.grad(lambda a: gnp.sum(la.svd(a, False)[1] ** 2))(a))))
    assert np.all(np.isfinite(host(gp.grad(lambda a: gnp.sum(la.norm(a, "nuc")))(a))))


def test_pinv_gradient_at_equal_singular_values():
    """pinv's rule does not divide by singular value gaps."""
    check_grads(la.pinv, (np.linalg.qr(rand((4, 4)))[0],), order=2)
    check_grads(la.pinv, (np.eye(4, 3) * 2.0,), order=2)


def test_norm_gradient_at_zero_is_zero():
    for f in (lambda x: la.norm(x), lambda x: la.norm(x, axis=0),
              lambda x: la.norm(x, "fro"), lambda x: la.norm(x, 1)):
        g = host(gp.grad(lambda x: gnp.sum(f(x)))(dev(np.zeros((2, 3)))))
        assert np.all(g == 0)


def test_matrix_rank_is_a_constant():
    f = lambda a: gnp.sum(a) * la.matrix_rank(a)
    a = dev(rand((3, 4)))
    np.testing.assert_allclose(host(gp.grad(f)(a)), np.full((3, 4), 3.0))
    assert host(la.matrix_rank(a)).dtype.kind == "i"


def test_non_differentiable_cases_raise():
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        gp.grad(lambda a: gnp.sum(la.svd(a)[0]))(dev(rand((4, 3))))
    with pytest.raises(NotImplementedError, match="mode='reduced'"):
        gp.grad(lambda a: gnp.sum(la.qr(a, mode="complete")[0]))(dev(rand((4, 3))))
    check_grads(lambda a: la.qr(a, mode="complete"), (rand((3, 4)),), order=1)


# ---- jit --------------------------------------------------------------------------
JIT_CASES = {
    "eigh": (lambda a: la.eigh(a), spd((2, 3, 3))),
    "svd": (lambda a: la.svd(a, full_matrices=False), rand((2, 4, 3))),
    "qr": (lambda a: la.qr(a), rand((3, 4))),
    "solve": (lambda a: la.solve(a, a[..., :2]), well((2, 3, 3))),
    "cholesky": (lambda a: la.cholesky(a), spd((3, 3))),
    "slogdet": (lambda a: la.slogdet(a), well((3, 3))),
    "pinv": (lambda a: la.pinv(a), rand((4, 3))),
    "lstsq": (lambda a: la.lstsq(a, a[:, 0]), rand((4, 3))),
    "matrix_rank": (lambda a: la.matrix_rank(a), rand((2, 4, 3))),
    "norm": (lambda a: la.norm(a, "nuc", axis=(0, 1)), rand((3, 4, 2))),
    "cond": (lambda a: la.cond(a), well((3, 3))),
}


@pytest.mark.parametrize("name", JIT_CASES)
def test_jit(name):
    f, x = JIT_CASES[name]
    got, want = gp.jit(f)(dev(x)), f(dev(x))
    for g, w in zip(gp.tree_leaves(got), gp.tree_leaves(want)):
        close(g, host(w), 1e-9)


@pytest.mark.parametrize("name", ["eigh", "svd", "qr", "solve", "cholesky", "pinv", "cond"])
def test_jit_of_grad_and_grad_of_jit(name):
    f, x = JIT_CASES[name]
    loss = lambda a: sum(gnp.sum(gnp.sin(leaf)) for leaf in gp.tree_leaves(f(a)))
    want = host(gp.grad(loss)(dev(x)))
    close(gp.jit(gp.grad(loss))(dev(x)), want, 1e-9)
    close(gp.grad(gp.jit(loss))(dev(x)), want, 1e-9)


# ---- errors ------------------------------------------------------------------------
def test_errors_name_the_function_and_shapes():
    with pytest.raises(ValueError, match=r"gnp.linalg.solve: a has shape \(3, 4\), expected square"):
        la.solve(dev(rand((3, 4))), dev(rand(3)))
    with pytest.raises(ValueError, match=r"gnp.linalg.solve: b has shape \(4,\), expected \(3,\)"):
        la.solve(dev(well((3, 3))), dev(rand(4)))
    with pytest.raises(ValueError, match=r"gnp.linalg.inv: a has shape \(3,\), expected a matrix"):
        la.inv(dev(rand(3)))
    with pytest.raises(ValueError, match="UPLO must be 'L' or 'U'"):
        la.eigh(dev(spd((3, 3))), UPLO="X")
    with pytest.raises(ValueError, match="mode 'raw' is not supported"):
        la.qr(dev(rand((3, 3))), mode="raw")
    with pytest.raises(ValueError, match="invalid norm order 'nuc' for vectors"):
        la.norm(dev(rand(3)), "nuc")
    with pytest.raises(ValueError, match="invalid norm order 3 for matrices"):
        la.norm(dev(rand((3, 3))), 3)
    with pytest.raises(TypeError, match="matrix_power: the exponent must be an integer"):
        la.matrix_power(dev(well((3, 3))), 1.5)
    with pytest.raises(np.linalg.LinAlgError):
        la.cholesky(dev(-np.eye(3)))


def test_linalg_namespace_holds_numpy_names():
    wanted = {"norm", "det", "slogdet", "inv", "solve", "cholesky", "qr", "eigh", "svd",
              "pinv", "lstsq", "matrix_power", "eigvalsh", "svdvals", "cond", "matrix_rank",
              "matmul", "tensordot", "outer", "trace"}
    assert wanted <= set(dir(la)) and wanted <= set(dir(np.linalg))
