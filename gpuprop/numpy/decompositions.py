"""gnp.linalg's decompositions and the functions built on them.

Seven primitives, each with its implementation (the backend's `xp.linalg`),
shape rule and VJP side by side: solve, slogdet, cholesky, qr, eigh, svd and
pinv.  Everything else (inv, det, norm, cond, lstsq, matrix_power,
matrix_rank, ...) is a composite of them and of gnp's functions.

A primitive has one output, so a decomposition with several (Q and R; the
eigenvalues and eigenvectors; U, s and Vh) returns them *packed*: each
flattened over the matrix axes and concatenated along one last axis; the
public function unpacks them with slices, whose VJP scatters the cotangents
back into one packed cotangent for the rule.

Derivatives (real matrices; M.G. Giles, "Collected matrix derivative
results for forward and reverse mode AD", 2008; I. Murray, "Differentiation
of the Cholesky decomposition", 2016; J. Townsend, "Differentiating the
singular value decomposition", 2016; Golub and Pereyra, 1973, for pinv):
rules are written with gnp's functions, so they are differentiable again.
eigh and cholesky read one triangle of their input (UPLO, as NumPy): their
gradient is the derivative of that function, so it lies in that triangle.
At equal eigenvalues (singular values) the eigenvector (singular vector)
terms divide by a zero gap: as in JAX, the result is infinite where the
cotangent couples the two vectors and 0 where it does not (JAX's symbolic
zero), so eigenvalue-only losses stay finite.
"""
from collections import namedtuple

import numpy as np

from ..core import Primitive, ShapedArray, bind
from ._base import batch_broadcasting
from ._rules import broadcast_shapes, dtype_of, ndim_of, normalize_axis, shape_of
from . import creation, elementwise as ew, reductions as red, shape as sh
from .products import matmul

EighResult = namedtuple("EighResult", "eigenvalues eigenvectors")
QRResult = namedtuple("QRResult", "Q R")
SlogdetResult = namedtuple("SlogdetResult", "sign logabsdet")
SVDResult = namedtuple("SVDResult", "U S Vh")
_NO_RTOL = object()     # pinv's rtol not given (NumPy tells it apart from None)


# ---- helpers ----------------------------------------------------------------
def _float(name, x, arg):
    """x with a floating dtype (integers and bools become float64, as NumPy)."""
    kind = np.dtype(dtype_of(x)).kind
    if kind == "c":
        raise TypeError(f"gnp.linalg.{name}: {arg} is complex ({dtype_of(x)}); only real "
                        f"matrices are supported")
    if kind not in "fiub":
        raise TypeError(f"gnp.linalg.{name}: {arg} has dtype {dtype_of(x)}, expected "
                        f"a real floating (or integer) array")
    return x if kind == "f" else ew.astype(x, np.float64)


def _matrices(name, a, square=True, arg="a"):
    """a checked as a (stack of) matrices and made floating."""
    s = shape_of(a)
    if len(s) < 2:
        raise ValueError(f"gnp.linalg.{name}: {arg} has shape {s}, expected a matrix "
                         f"or a stack of matrices (..., M, N)")
    if square and s[-1] != s[-2]:
        raise ValueError(f"gnp.linalg.{name}: {arg} has shape {s}, expected square "
                         f"matrices (..., M, M)")
    return _float(name, a, arg)


def _T(x):
    return sh.swapaxes(x, -1, -2)


def _eye_like(a):
    """The identity matrix of a's size and dtype, broadcast over a's stack."""
    n = shape_of(a)[-1]
    return sh.broadcast_to(creation.eye(n, dtype=dtype_of(a)), shape_of(a))


def _diag(v):
    """The diagonal matrices of the vectors v (..., n)."""
    return ew.multiply(sh.expand_dims(v, -1), creation.eye(shape_of(v)[-1], dtype=dtype_of(v)))


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _pack(xp, parts, batch):
    """The arrays `parts` (each batch + its own shape) as one array batch + (total,)."""
    return xp.concatenate([xp.reshape(p, batch + (_size(p.shape[len(batch):]),))
                           for p in parts], axis=-1)


def _packed_aval(a, batch, shapes, dtype=None):
    return ShapedArray(batch + (sum(_size(s) for s in shapes),), dtype or dtype_of(a))


def _unpack(packed, shapes):
    """The arrays packed by `_pack`, given their own shapes."""
    batch, out, start = shape_of(packed)[:-1], [], 0
    for s in shapes:
        n = _size(s)
        out.append(sh.reshape(sh.getitem(packed, (Ellipsis, slice(start, start + n))),
                              batch + tuple(s)))
        start += n
    return out


def _phi(x, lower=True):
    """The lower (upper) triangle of x with its diagonal halved (Murray's Phi)."""
    n = shape_of(x)[-1]
    weights = np.tri(n, k=-1) + 0.5 * np.eye(n)
    weights = weights if lower else weights.T
    return ew.multiply(x, creation.asarray(weights.astype(dtype_of(x))))


def _one_triangle(m, lower):
    """The gradient of a function that reads one triangle of a symmetric
    input, from any `m` whose symmetric part is the symmetric gradient: the
    strict triangle of m + m^T, and the diagonal of m."""
    return _phi(ew.add(m, _T(m)), lower)


def _over_gaps(x, gaps):
    """x_ij / gaps_ij off the diagonal, 0 on it.  Where a gap is 0 (equal
    eigenvalues) the entry is +-inf if x_ij != 0 and 0 if x_ij == 0: JAX's
    result, where the zero comes from its symbolic zeros."""
    n = shape_of(x)[-1]
    off = creation.asarray(~np.eye(n, dtype=bool))
    zero_gap = ew.equal(gaps, 0)
    inverse = ew.divide(1.0, ew.where(zero_gap, 1.0, gaps))
    # the infinity is a constant: a product with it would give NaN derivatives
    infinite = ew.astype(ew.where(ew.equal(x, 0), 0.0, np.inf), dtype_of(x))
    factor = ew.where(zero_gap, infinite, inverse)
    return ew.multiply(x, ew.where(off, factor, 0.0))


# ---- solve ------------------------------------------------------------------
def _solve_impl(xp, a, b):
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return xp.linalg.solve(xp.broadcast_to(a, batch + a.shape[-2:]),
                           xp.broadcast_to(b, batch + b.shape[-2:]))


def _solve_aval(a, b):
    batch = broadcast_shapes("linalg.solve", ShapedArray(shape_of(a)[:-2], "f"),
                             ShapedArray(shape_of(b)[:-2], "f"))
    return ShapedArray(batch + shape_of(b)[-2:], np.result_type(dtype_of(a), dtype_of(b)))


def _solve_transposed(a, g):
    """a^-T g: the cotangent of b, before summing over broadcast stack axes."""
    return _solve(_T(a), g)


_solve_p = Primitive(
    "linalg.solve", _solve_impl, _solve_aval,
    vjp=(lambda g, x, a, b: red.sum_to_shape(
             ew.negative(matmul(_solve_transposed(a, g), _T(x))), shape_of(a)),
         lambda g, x, a, b: red.sum_to_shape(_solve_transposed(a, g), shape_of(b))),
    batch=batch_broadcasting)


def _solve(a, b):
    """a^-1 b for stacks of square a and matrices b (batch axes broadcast)."""
    return bind(_solve_p, (a, b), {})


def solve(a, b):
    """The solution x of a @ x = b.  As NumPy 2: b is one vector (M,) or a
    stack of matrices (..., M, K); the stack axes broadcast."""
    a = _matrices("solve", a)
    b = _float("solve", b, "b")
    dt = np.result_type(dtype_of(a), dtype_of(b))
    a, b = (x if dtype_of(x) == dt else ew.astype(x, dt) for x in (a, b))
    n, vector = shape_of(a)[-1], ndim_of(b) == 1
    B = sh.expand_dims(b, -1) if vector else b
    if ndim_of(B) < 2 or shape_of(B)[-2] != n:
        raise ValueError(f"gnp.linalg.solve: b has shape {shape_of(b)}, expected ({n},) or "
                         f"(..., {n}, K) for a of shape {shape_of(a)}")
    x = _solve(a, B)
    return sh.getitem(x, (Ellipsis, 0)) if vector else x


def inv(a):
    """The inverse of each square matrix: solve(a, I)."""
    a = _matrices("inv", a)
    return _solve(a, _eye_like(a))


# ---- slogdet, det -----------------------------------------------------------
def _slogdet_impl(xp, a):
    sign, logabsdet = xp.linalg.slogdet(a)
    return xp.stack([sign, logabsdet], axis=-1)


def _slogdet_vjp(g, out, a):
    # d log|det a| = tr(a^-1 da); the sign is piecewise constant
    g_logdet = sh.getitem(g, (Ellipsis, slice(1, 2), None))
    return ew.multiply(g_logdet, _T(inv(a)))


_slogdet_p = Primitive("linalg.slogdet", _slogdet_impl,
                       lambda a: _packed_aval(a, shape_of(a)[:-2], [(), ()]),
                       vjp=(_slogdet_vjp,), batch=batch_broadcasting)


def slogdet(a):
    """(sign, log|det|) of each square matrix; log|det| is differentiable
    (its gradient is inv(a).T; at a singular matrix it does not exist)."""
    a = _matrices("slogdet", a)
    return SlogdetResult(*_unpack(bind(_slogdet_p, (a,), {}), [(), ()]))


def det(a):
    """The determinant, sign * exp(log|det|)."""
    sign, logabsdet = slogdet(a)
    return ew.multiply(sign, ew.exp(logabsdet))


# ---- cholesky ---------------------------------------------------------------
def _cholesky_vjp(g, L, a):
    # Murray (2016): the symmetric gradient is L^-T Phi(L^T g) L^-1
    y = _solve(_T(L), _phi(matmul(_T(L), g)))
    return _one_triangle(_T(_solve(_T(L), _T(y))), lower=True)


_cholesky_p = Primitive("linalg.cholesky", lambda xp, a: xp.linalg.cholesky(a),
                        lambda a: ShapedArray(shape_of(a), dtype_of(a)),
                        vjp=(_cholesky_vjp,), batch=batch_broadcasting)


def cholesky(a, /, *, upper=False):
    """The lower (upper=True: upper) Cholesky factor of each symmetric
    positive definite matrix, reading only that triangle of a (as NumPy)."""
    a = _matrices("cholesky", a)
    if upper:
        return _T(bind(_cholesky_p, (_T(a),), {}))
    return bind(_cholesky_p, (a,), {})


# ---- qr ---------------------------------------------------------------------
def _qr_shapes(shape, complete):
    m, n = shape[-2:]
    k = m if complete else min(m, n)
    return [(m, k), (k, n)]


def _qr_impl(xp, a, complete):
    q, r = xp.linalg.qr(a, mode="complete" if complete else "reduced")
    return _pack(xp, [q, r], a.shape[:-2])


def _qr_tall_vjp(q, r, gq, gr):
    """The VJP of a = q r for m >= n (r square and invertible), from the
    forward rule dq = q(omega - c) + da r^-1, dr = (c - omega) r with
    c = q^T da r^-1 and omega its lower triangle minus its transpose."""
    n = ew.subtract(matmul(gr, _T(r)), matmul(_T(q), gq))
    k = ew.subtract(n, sh.tril(ew.subtract(n, _T(n)), -1))
    return _T(_solve(r, _T(ew.add(gq, matmul(q, k)))))


def _qr_vjp(g, out, a, complete):
    m, n = shape_of(a)[-2:]
    if complete and m > n:
        raise NotImplementedError(
            f"gnp.linalg.qr: the derivative of mode='complete' for a of shape "
            f"{shape_of(a)} (more rows than columns) does not exist: the last "
            f"{m - n} columns of Q are not determined by a; use mode='reduced'")
    shapes = _qr_shapes(shape_of(a), complete)
    q, r = _unpack(out, shapes)
    gq, gr = _unpack(g, shapes)
    if m >= n:
        return _qr_tall_vjp(q, r, gq, gr)
    # a = [x | y] with x square: x = q r1 and r2 = q^T y
    y = sh.getitem(a, (Ellipsis, slice(m, None)))
    r1, gr1 = (sh.getitem(z, (Ellipsis, slice(0, m))) for z in (r, gr))
    gr2 = sh.getitem(gr, (Ellipsis, slice(m, None)))
    gx = _qr_tall_vjp(q, r1, ew.add(gq, matmul(y, _T(gr2))), gr1)
    return sh.concatenate([gx, matmul(q, gr2)], axis=-1)


_qr_p = Primitive("linalg.qr", _qr_impl,
                  lambda a, complete: _packed_aval(a, shape_of(a)[:-2],
                                                   _qr_shapes(shape_of(a), complete)),
                  vjp=(_qr_vjp,), batch=batch_broadcasting)


def qr(a, mode="reduced"):
    """Q, R with a = Q @ R for each matrix; mode 'reduced', 'complete' or 'r'
    (R alone).  Differentiable where R is invertible (full rank); 'complete'
    with more rows than columns is not (Q's extra columns are arbitrary)."""
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"gnp.linalg.qr: mode {mode!r} is not supported; use "
                         f"'reduced', 'complete' or 'r'")
    a = _matrices("qr", a, square=False)
    complete = mode == "complete"
    q, r = _unpack(bind(_qr_p, (a,), {"complete": complete}),
                   _qr_shapes(shape_of(a), complete))
    return r if mode == "r" else QRResult(q, r)


# ---- eigh, eigvalsh ---------------------------------------------------------
def _eigh_impl(xp, a, UPLO, vectors):
    if not vectors:
        return xp.linalg.eigvalsh(a, UPLO=UPLO)
    w, v = xp.linalg.eigh(a, UPLO=UPLO)
    return _pack(xp, [w, v], a.shape[:-2])


def _eigh_aval(a, UPLO, vectors):
    n = shape_of(a)[-1]
    if not vectors:
        return ShapedArray(shape_of(a)[:-1], dtype_of(a))
    return _packed_aval(a, shape_of(a)[:-2], [(n,), (n, n)])


def _eigh_vjp(g, out, a, UPLO, vectors):
    n = shape_of(a)[-1]
    if vectors:
        gw, gv = _unpack(g, [(n,), (n, n)])
        w, v = _unpack(out, [(n,), (n, n)])
        gaps = ew.subtract(sh.expand_dims(w, -2), sh.expand_dims(w, -1))  # w_j - w_i
        inner = ew.add(_diag(gw), _over_gaps(matmul(_T(v), gv), gaps))
    else:
        v = _eigh_vectors(a, UPLO)
        inner = _diag(g)
    return _one_triangle(matmul(matmul(v, inner), _T(v)), lower=UPLO == "L")


_eigh_p = Primitive("linalg.eigh", _eigh_impl, _eigh_aval, vjp=(_eigh_vjp,),
                    batch=batch_broadcasting)


def _eigh_vectors(a, UPLO):
    n = shape_of(a)[-1]
    return _unpack(bind(_eigh_p, (a,), {"UPLO": UPLO, "vectors": True}), [(n,), (n, n)])[1]


def _uplo(name, UPLO):
    if UPLO not in ("L", "U"):
        raise ValueError(f"gnp.linalg.{name}: UPLO must be 'L' or 'U', got {UPLO!r}")
    return UPLO


def eigh(a, UPLO="L"):
    """Eigenvalues (ascending) and eigenvectors (columns) of each symmetric
    matrix, reading only its lower (UPLO='L') or upper triangle."""
    a = _matrices("eigh", a)
    n = shape_of(a)[-1]
    packed = bind(_eigh_p, (a,), {"UPLO": _uplo("eigh", UPLO), "vectors": True})
    return EighResult(*_unpack(packed, [(n,), (n, n)]))


def eigvalsh(a, UPLO="L"):
    """The eigenvalues of eigh; their gradient is finite at equal eigenvalues."""
    a = _matrices("eigvalsh", a)
    return bind(_eigh_p, (a,), {"UPLO": _uplo("eigvalsh", UPLO), "vectors": False})


# ---- svd, svdvals -----------------------------------------------------------
def _svd_shapes(shape, full_matrices):
    m, n = shape[-2:]
    k = min(m, n)
    return [(m, m), (k,), (n, n)] if full_matrices else [(m, k), (k,), (k, n)]


def _svd_impl(xp, a, full_matrices, vectors):
    if not vectors:
        return xp.linalg.svd(a, compute_uv=False)
    return _pack(xp, xp.linalg.svd(a, full_matrices=full_matrices), a.shape[:-2])


def _svd_aval(a, full_matrices, vectors):
    m, n = shape_of(a)[-2:]
    if not vectors:
        return ShapedArray(shape_of(a)[:-2] + (min(m, n),), dtype_of(a))
    return _packed_aval(a, shape_of(a)[:-2], _svd_shapes(shape_of(a), full_matrices))


def _svd_vjp(g, out, a, full_matrices, vectors):
    m, n = shape_of(a)[-2:]
    if not vectors:
        u, _, vh = _svd_reduced(a)
        return matmul(ew.multiply(u, sh.expand_dims(g, -2)), vh)
    if full_matrices and m != n:
        raise NotImplementedError(
            f"gnp.linalg.svd: the derivative with full_matrices=True for a of shape "
            f"{shape_of(a)} (not square) does not exist: the extra singular vectors "
            f"are not determined by a; use full_matrices=False")
    shapes = _svd_shapes(shape_of(a), full_matrices)
    u, s, vh = _unpack(out, shapes)
    gu, gs, gvh = _unpack(g, shapes)
    v, gv = _T(vh), _T(gvh)
    # Townsend (2016), with F_ij = 1 / (s_j^2 - s_i^2)
    s2 = ew.multiply(s, s)
    gaps = ew.subtract(sh.expand_dims(s2, -2), sh.expand_dims(s2, -1))
    ut_gu, vt_gv = matmul(_T(u), gu), matmul(_T(v), gv)
    j = _over_gaps(ew.subtract(ut_gu, _T(ut_gu)), gaps)
    k = _over_gaps(ew.subtract(vt_gv, _T(vt_gv)), gaps)
    row_s = sh.expand_dims(s, -2)       # x * row_s: x @ diag(s)
    inner = ew.add(ew.add(ew.multiply(j, row_s), _diag(gs)),
                   ew.multiply(sh.expand_dims(s, -1), k))
    ga = matmul(matmul(u, inner), vh)
    if m > n:       # (I - u u^T) gu s^-1 v^T
        gu_s = ew.divide(gu, row_s)
        ga = ew.add(ga, matmul(ew.subtract(gu_s, matmul(u, matmul(_T(u), gu_s))), vh))
    if n > m:       # u s^-1 gv^T (I - v v^T)
        gv_s = ew.divide(gv, row_s)
        ga = ew.add(ga, _T(matmul(ew.subtract(gv_s, matmul(v, matmul(vh, gv_s))), _T(u))))
    return ga


_svd_p = Primitive("linalg.svd", _svd_impl, _svd_aval, vjp=(_svd_vjp,),
                   batch=batch_broadcasting)


def _svd_reduced(a):
    return _unpack(bind(_svd_p, (a,), {"full_matrices": False, "vectors": True}),
                   _svd_shapes(shape_of(a), False))


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """U, S, Vh with a = U @ diag(S) @ Vh, S descending (S alone without
    compute_uv).  `hermitian` is accepted for NumPy's signature; the general
    decomposition is computed.  Derivatives: S everywhere (finite at equal
    singular values); U, Vh where the singular values are distinct and
    nonzero, with full_matrices=False unless a is square."""
    a = _matrices("svd", a, square=False)
    if not compute_uv:
        return bind(_svd_p, (a,), {"full_matrices": False, "vectors": False})
    packed = bind(_svd_p, (a,), {"full_matrices": bool(full_matrices), "vectors": True})
    return SVDResult(*_unpack(packed, _svd_shapes(shape_of(a), full_matrices)))


def svdvals(x, /):
    """The singular values of each matrix, descending."""
    return svd(x, compute_uv=False)


# ---- pinv, lstsq ------------------------------------------------------------
def _pinv_impl(xp, a, rcond):
    m, n = a.shape[-2:]
    if m == 0 or n == 0:
        return xp.zeros(a.shape[:-2] + (n, m), a.dtype)
    u, s, vt = xp.linalg.svd(a, full_matrices=False)
    large = s > rcond * xp.max(s, axis=-1, keepdims=True)
    s_inv = xp.where(large, 1 / xp.where(large, s, 1), 0)
    return xp.matmul(xp.swapaxes(vt, -1, -2), s_inv[..., None] * xp.swapaxes(u, -1, -2))


def _pinv_vjp(g, p, a, rcond):
    # Golub and Pereyra (1973), for a of locally constant rank:
    # dp = -p da p + p p^T da^T (I - a p) + (I - p a) da^T p^T p
    pt = _T(p)
    gt_ppt = matmul(_T(g), matmul(p, pt))
    ptp_gt = matmul(matmul(pt, p), _T(g))
    return ew.add(ew.subtract(ew.subtract(gt_ppt, matmul(a, matmul(p, gt_ppt))),
                              matmul(matmul(pt, g), pt)),
                  ew.subtract(ptp_gt, matmul(matmul(ptp_gt, p), a)))


_pinv_p = Primitive("linalg.pinv", _pinv_impl,
                    lambda a, rcond: ShapedArray(shape_of(a)[:-2] + shape_of(a)[-2:][::-1],
                                                 dtype_of(a)),
                    vjp=(_pinv_vjp,), batch=batch_broadcasting)


def pinv(a, rcond=None, hermitian=False, *, rtol=_NO_RTOL):
    """The Moore-Penrose pseudo-inverse: singular values at most
    rcond * (the largest) count as 0.  rcond and rtol (one number) as in
    NumPy: 1e-15 by default, max(M, N) * eps with rtol=None.  `hermitian` is
    accepted for NumPy's signature.  The gradient is that of a matrix of
    constant rank (Golub and Pereyra)."""
    a = _matrices("pinv", a, square=False)
    if rcond is not None and rtol is not _NO_RTOL:
        raise ValueError("gnp.linalg.pinv: pass rcond or rtol, not both")
    if rcond is None:
        rcond = (1e-15 if rtol is _NO_RTOL else
                 max(shape_of(a)[-2:]) * float(np.finfo(dtype_of(a)).eps) if rtol is None
                 else rtol)
    return bind(_pinv_p, (a,), {"rcond": float(rcond)})


def lstsq(a, b, rcond=None):
    """(x, residuals, rank, s) for the least-squares problem a @ x = b, a of
    shape (M, N), b (M,) or (M, K): x = pinv(a, rcond) @ b, with NumPy's
    default rcond eps * max(M, N).  Unlike NumPy, the residuals (for M > N)
    are given whatever the rank and the rank is a 0-d integer array: under
    jit the rank is not known when the shapes are."""
    a = _matrices("lstsq", a, square=False)
    b = _float("lstsq", b, "b")
    if ndim_of(a) != 2 or ndim_of(b) not in (1, 2) or shape_of(b)[0] != shape_of(a)[0]:
        raise ValueError(f"gnp.linalg.lstsq: a has shape {shape_of(a)} and b {shape_of(b)}, "
                         f"expected a of shape (M, N) and b of shape (M,) or (M, K) with "
                         f"the same M")
    m, n = shape_of(a)
    if rcond is None:
        rcond = float(np.finfo(dtype_of(a)).eps) * max(m, n)
    x = matmul(pinv(a, rcond), b)
    if m > n:
        r = ew.subtract(b, matmul(a, x))
        resids = red.sum(ew.multiply(r, r), axis=0, keepdims=ndim_of(b) == 1)
    else:
        resids = creation.zeros((0,), np.result_type(dtype_of(a), dtype_of(b)))
    return x, resids, matrix_rank(a, rtol=rcond), svdvals(a)


# ---- built on the decompositions --------------------------------------------
def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """The number of singular values above tol (default: the largest times
    rtol, whose default is max(M, N) * eps), as NumPy.  An integer, so not
    differentiable: its input is taken as a constant."""
    if tol is not None and rtol is not None:
        raise ValueError("gnp.linalg.matrix_rank: pass tol or rtol, not both")
    A = ew.stop_gradient(_float("matrix_rank", A, "A"))
    if ndim_of(A) < 2:
        return ew.astype(ew.greater(red.sum(ew.not_equal(A, 0)), 0), np.intp)
    s = svdvals(A)
    if shape_of(s)[-1] == 0:
        return creation.zeros(shape_of(s)[:-1], np.intp)
    if tol is None:
        if rtol is None:
            rtol = max(shape_of(A)[-2:]) * float(np.finfo(dtype_of(s)).eps)
        tol = ew.multiply(red.max(s, axis=-1, keepdims=True), rtol)
    elif ndim_of(tol):
        tol = sh.expand_dims(tol, -1)
    return ew.astype(red.sum(ew.greater(s, tol), axis=-1), np.intp)


def matrix_power(a, n):
    """a @ a @ ... (n times) for each square matrix, by repeated squaring;
    n = 0 gives the identity, n < 0 powers of inv(a)."""
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"gnp.linalg.matrix_power: a has shape {s}, expected square "
                         f"matrices (..., M, M)")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"gnp.linalg.matrix_power: the exponent must be an integer, got {n!r}")
    n = int(n)
    if n == 0:
        return _eye_like(a)
    if n < 0:
        a, n = inv(a), -n
    result = None
    while n:
        if n & 1:
            result = a if result is None else matmul(result, a)
        n >>= 1
        if n:
            a = matmul(a, a)
    return result


def _safe_sqrt(x):
    """sqrt(x), with derivative 0 (not NaN) at x = 0: norms are subdifferentiable at 0."""
    zero = ew.equal(x, 0)
    return ew.where(zero, 0.0, ew.sqrt(ew.where(zero, 1.0, x)))


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return _safe_sqrt(red.sum(ew.multiply(x, x), axis=axis, keepdims=keepdims))
    if isinstance(ord, str):
        raise ValueError(f"gnp.linalg.norm: invalid norm order {ord!r} for vectors")
    if ord == np.inf:
        return red.max(ew.abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return red.min(ew.abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        return ew.astype(red.sum(ew.not_equal(x, 0), axis=axis, keepdims=keepdims), dtype_of(x))
    if ord == 1:
        return red.sum(ew.abs(x), axis=axis, keepdims=keepdims)
    total = red.sum(ew.power(ew.abs(x), float(ord)), axis=axis, keepdims=keepdims)
    return ew.power(total, 1.0 / float(ord))


def _matrix_norm(x, ord, axes, keepdims):
    row, col = axes
    if ord in (None, "fro", "f"):
        out = _safe_sqrt(red.sum(ew.multiply(x, x), axis=axes))
    elif ord in (2, -2, "nuc"):
        s = svdvals(sh.transpose(x, [i for i in range(ndim_of(x)) if i not in axes] + [row, col]))
        reduce = {2: red.max, -2: red.min, "nuc": red.sum}[ord]
        out = reduce(s, axis=-1)
    elif ord in (1, -1, np.inf, -np.inf):
        summed, kept = (row, col) if ord in (1, -1) else (col, row)
        sums = red.sum(ew.abs(x), axis=summed)
        reduce = red.max if ord > 0 else red.min
        out = reduce(sums, axis=kept - (kept > summed))
    else:
        raise ValueError(f"gnp.linalg.norm: invalid norm order {ord!r} for matrices; use "
                         f"None, 'fro', 'nuc', 1, -1, 2, -2, inf or -inf")
    if keepdims:
        out = sh.expand_dims(out, tuple(sorted(axes)))
    return out


def norm(x, ord=None, axis=None, keepdims=False):
    """NumPy's vector norm (axis an int, or x 1-D) or matrix norm (axis a
    pair, or x 2-D): ord None/2 (Euclidean / Frobenius), 1, -1, inf, -inf,
    'fro', 'nuc', 2/-2 (largest/smallest singular value), other numbers for
    vectors.  The Euclidean and Frobenius norms have gradient 0 at 0."""
    x = _float("norm", x, "x")
    n = ndim_of(x)
    if axis is None:
        if ord is None:
            out = _safe_sqrt(red.sum(ew.multiply(x, x)))
            return sh.reshape(out, (1,) * n) if keepdims else out
        if n not in (1, 2):
            raise ValueError(f"gnp.linalg.norm: x has shape {shape_of(x)}; with ord={ord!r} "
                             f"and axis=None it must be 1-D or 2-D (pass axis)")
        axis = tuple(range(n))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if len(axes) not in (1, 2):
        raise ValueError(f"gnp.linalg.norm: axis {axis!r} names {len(axes)} axes; it must "
                         f"name one (vector norm) or two (matrix norm)")
    norm_axes = normalize_axis("linalg.norm", axes, n)
    if len(norm_axes) == 1:
        return _vector_norm(x, ord, norm_axes, keepdims)
    return _matrix_norm(x, ord, tuple(int(a) % n for a in axes), keepdims)


def cond(x, p=None):
    """The condition number of each matrix: s_max / s_min for p None, 2
    (s_min / s_max for -2), else norm(x, p) * norm(inv(x), p)."""
    x = _matrices("cond", x, square=p not in (None, 2, -2))
    if p in (None, 2, -2):
        s = svdvals(x)
        big, small = sh.getitem(s, (Ellipsis, 0)), sh.getitem(s, (Ellipsis, -1))
        return ew.divide(small, big) if p == -2 else ew.divide(big, small)
    return ew.multiply(norm(x, p, axis=(-2, -1)), norm(inv(x), p, axis=(-2, -1)))
