"""The products of gpuprop.numpy against NumPy (values and dtypes) and against
finite differences (check_grads, to second order) in float64: matmul (and
@) with batching and broadcasting, dot, outer, tensordot, einsum (traces,
transposes, several operands), diagonal and trace; their dtypes, empty
operands and error messages.
"""
import numpy as np
import pytest

import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import assert_same, check, dev, uniform


# ---- matmul, dot, outer ----------------------------------------------------------
MATMUL_SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
                 ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 2)),
                 ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((4,), (2, 4, 5)),
                 ((2, 3, 4), (4,)), ((0, 4), (4, 5)), ((3, 0), (0, 5))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul(sa, sb):
    check(lambda m, a, b: m.matmul(a, b), uniform(sa, seed=1), uniform(sb, seed=2))
    check(lambda m, a, b: a @ b, uniform(sa, seed=1), uniform(sb, seed=2), order=1)


@pytest.mark.parametrize("name,sa,sb", [("dot", (3, 4), (4,)), ("dot", (), (3,)),
                                        ("dot", (4,), (4,)), ("outer", (3,), (4,))], ids=str)
def test_dot_outer(name, sa, sb):
    check(lambda m, a, b: getattr(m, name)(a, b), uniform(sa, seed=1), uniform(sb, seed=2))


# ---- tensordot and einsum --------------------------------------------------------
TENSORDOT = [((3, 4), (4, 5), 1), ((2, 3, 4), (3, 4, 5), 2), ((3,), (4,), 0),
             ((2, 3, 4), (4, 3, 5), ([1, 2], [1, 0])), ((2, 3), (3, 2), ([0, 1], [1, 0])),
             ((3, 4), (2, 3), (0, 1)), ((0, 3), (3, 2), 1)]


@pytest.mark.parametrize("sa,sb,axes", TENSORDOT, ids=str)
def test_tensordot(sa, sb, axes):
    check(lambda m, a, b: m.tensordot(a, b, axes), uniform(sa, seed=1), uniform(sb, seed=2))


EINSUM = [("ij,jk->ik", (3, 4), (4, 5)), ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
          ("i,i->", (4,), (4,)), ("i,j->ij", (3,), (4,)), ("ij,ij->i", (3, 4), (3, 4)),
          ("bij,jk->bki", (2, 3, 4), (4, 5)), ("ij,jk", (3, 4), (4, 2)),
          ("ijk,kj->ik", (2, 3, 4), (4, 3)), ("ij,kl->", (2, 3), (4, 1)),
          ("ii,ij->j", (3, 3), (3, 2)), ("ij,jk->ik", (2, 1), (3, 4)),
          ("ij->ji", (3, 4)), ("ii->i", (3, 3)), ("ii", (3, 3)), ("ij->", (3, 4)),
          ("iji->j", (3, 2, 3)), ("ij,jk,kl->il", (2, 3), (3, 4), (4, 2))]


@pytest.mark.parametrize("case", EINSUM, ids=lambda c: c[0])
def test_einsum(case):
    spec, *shapes = case
    check(lambda m, *xs: m.einsum(spec, *xs), *(uniform(s, seed=k) for k, s in enumerate(shapes)))


def test_einsum_dtypes():
    a, b = uniform((2, 3)).astype(np.float32), uniform((3, 4))
    assert_same(gnp.einsum("ij,jk->ik", dev(a), dev(a.T.copy())),
                np.einsum("ij,jk->ik", a, a.T), rtol=1e-6)
    assert_same(gnp.einsum("ij,jk->ik", dev(a), dev(b)), np.einsum("ij,jk->ik", a, b))
    n = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert_same(gnp.einsum("ij->i", dev(n)), np.einsum("ij->i", n))


# ---- diagonal and trace ----------------------------------------------------------
@pytest.mark.parametrize("shape,offset,axes", [((3, 4), 0, (0, 1)), ((3, 4), 1, (0, 1)),
                                               ((3, 4), -2, (0, 1)), ((3, 4), 5, (0, 1)),
                                               ((4, 3), -1, (1, 0)), ((2, 3, 4), 1, (1, 2)),
                                               ((2, 3, 4), 0, (2, 0))], ids=str)
def test_diagonal_and_trace(shape, offset, axes):
    check(lambda m, x: m.diagonal(x, offset, *axes), uniform(shape))
    check(lambda m, x: m.trace(x, offset, *axes), uniform(shape))


def test_trace_of_integers_and_methods():
    n = np.arange(9, dtype=np.int32).reshape(3, 3)
    assert_same(gnp.trace(dev(n)), np.trace(n))
    x = uniform((3, 3))
    f = lambda x: x.trace() + x.diagonal().prod() + x.cumsum().sum() + x.take(1) + x.round().sum()
    check_grads(f, (x,))


# ---- errors ----------------------------------------------------------------------
def test_product_errors_name_the_function():
    x = dev(uniform((6, 4)))
    with pytest.raises(ValueError, match="gnp.tensordot"):
        gnp.tensordot(x, x, 1)
    with pytest.raises(ValueError, match="gnp.einsum.*sizes 4 and 6"):
        gnp.einsum("ij,jk->ik", x, x)
    with pytest.raises(ValueError, match=r"gnp.einsum.*'\.\.\.ijk' name more axes"):
        gnp.einsum("...ijk->...", x)
    with pytest.raises(ValueError, match="gnp.diagonal"):
        gnp.diagonal(dev(uniform((3,))))
