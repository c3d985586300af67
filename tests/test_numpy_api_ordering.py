"""Issue 14's ordering and selection functions against NumPy and finite
differences (check_grads to order 2, float64) over axes, batches and size
0, and under jit: sort, argsort, partition, argpartition, median,
quantile/percentile (traced q too), the nan reductions, select, where with
one argument, nonzero, unique, linspace/logspace with traced endpoints."""
import warnings

import numpy as np
import pytest

import gpuprop as gp
import gpuprop.numpy as gnp
from gpuprop.testing import check_grads
from support import REF, assert_same, check, dev, distinct, host

X = distinct((3, 5))        # no ties: sort and quantiles are smooth here
NANS = X.copy()
NANS[0, 1] = NANS[2, 3] = np.nan

ORDERING = {
    "sort": lambda m, a: m.sort(a),
    "sort(axis=0)": lambda m, a: m.sort(a, axis=0),
    "sort(None)": lambda m, a: m.sort(a, axis=None),
    "median": lambda m, a: m.median(a),
    "median(axis=1)": lambda m, a: m.median(a, axis=1),
    "median(axis=0, keepdims)": lambda m, a: m.median(a, axis=0, keepdims=True),
    "quantile(q list)": lambda m, a: m.quantile(a, [0.1, 0.5, 0.9], axis=1),
    "quantile(axes)": lambda m, a: m.quantile(a, 0.3, axis=(0, 1)),
    "percentile": lambda m, a: m.percentile(a, [25.0, 80.0], axis=0),
    "select": lambda m, a: m.select([a > 1.0, a < -1.0], [a * 2.0, m.exp(a)], 0.5),
    "take_along_axis": lambda m, a: m.take_along_axis(a, m.argsort(a, axis=1)[:, ::-1], 1),
}


@pytest.mark.parametrize("name", ORDERING)
def test_ordering(name):
    check(ORDERING[name], X)
    assert_same(gp.jit(lambda a: ORDERING[name](gnp, a))(dev(X)), ORDERING[name](REF, X))


def test_argsort_argpartition_and_partition():
    assert_same(gnp.argsort(dev(X), axis=0), np.argsort(X, axis=0, kind="stable"))
    assert_same(gnp.argsort(dev(X), axis=None), np.argsort(X, axis=None, kind="stable"))
    for k in (0, 2, 4):
        part = host(gnp.partition(dev(X), k))
        np.testing.assert_array_equal(part[:, k], np.partition(X, k)[:, k])
        assert (part[:, :k] <= part[:, k:k + 1]).all() and (part[:, k + 1:] >= part[:, k:k + 1]).all()
        idx = host(gnp.argpartition(dev(X), k))
        np.testing.assert_array_equal(np.take_along_axis(X, idx, 1)[:, k], np.partition(X, k)[:, k])
    check(lambda m, a: m.partition(a, 2)[:, 2], X)


def test_size_zero():
    check(lambda m, a: m.sort(a, axis=0), np.zeros((0, 3)), order=0)
    check(lambda m, a: m.median(a, axis=1), np.zeros((0, 3)), order=0)
    check(lambda m, a: m.nansum(a, axis=0), np.zeros((0, 3)), order=0)


def test_sort_gradient_at_ties_goes_to_one_entry_each():
    g = gp.grad(lambda a: gnp.sum(gnp.sort(a) * dev([1.0, 2.0, 3.0])))(dev([2.0, 1.0, 2.0]))
    np.testing.assert_array_equal(host(g), [2.0, 1.0, 3.0])    # stable: first 2.0 first
    g = gp.grad(lambda a: gnp.median(a))(dev([3.0, 1.0, 3.0, 0.0]))
    np.testing.assert_allclose(host(g), [0.5, 0.5, 0.0, 0.0])


def test_quantile_with_a_traced_q():
    check_grads(lambda a, q: gnp.quantile(a, q, axis=1), (X, np.array([0.33, 0.71])), order=2)
    got = gp.jit(lambda a, q: gnp.quantile(a, q))(dev(X), dev([0.2, 0.95]))
    assert_same(got, np.quantile(X, [0.2, 0.95]))


def test_quantile_of_nan_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_same(gnp.median(dev(NANS), axis=1), np.median(NANS, axis=1))


NAN_REDUCTIONS = ["nansum", "nanprod", "nanmean", "nanvar", "nanstd", "nanmax", "nanmin"]


@pytest.mark.parametrize("name", NAN_REDUCTIONS)
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_nan_reductions(name, axis):
    fn = lambda m, a: getattr(m, name)(a, axis=axis)
    assert_same(fn(gnp, dev(NANS)), fn(np, NANS))
    check_grads(lambda a: fn(gnp, a), (NANS,), order=2)
    assert_same(gp.jit(lambda a: fn(gnp, a))(dev(NANS)), fn(np, NANS))


def test_nan_extrema_of_all_nan_and_nanargmax():
    a = np.array([[np.nan, np.nan], [1.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_same(gnp.nanmax(dev(a), axis=1), np.nanmax(a, axis=1))
        assert_same(gnp.nanmean(dev(a), axis=1), np.nanmean(a, axis=1))
    assert_same(gnp.nanargmax(dev(NANS), axis=1), np.nanargmax(NANS, axis=1))
    assert_same(gnp.nanargmin(dev(NANS)), np.nanargmin(NANS))


def test_nonzero_where_and_unique():
    for got, want in zip(gnp.nonzero(dev(X > 0)), np.nonzero(X > 0)):
        assert_same(got, want)
    for got, want in zip(gnp.where(dev(X > 0)), np.where(X > 0)):
        assert_same(got, want)
    a = np.array([3.0, 1.0, 3.0, 2.0, 1.0])
    for got, want in zip(gnp.unique(dev(a), return_index=True, return_inverse=True,
                                    return_counts=True),
                         np.unique(a, return_index=True, return_inverse=True, return_counts=True)):
        assert_same(got, want)
    rows = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0]])
    assert_same(gnp.unique(dev(rows), axis=0), np.unique(rows, axis=0))
    # each unique value's gradient goes to its first occurrence
    g = gp.grad(lambda t: gnp.sum(gnp.unique(t) * dev([1.0, 2.0, 3.0])))(dev(a))
    np.testing.assert_array_equal(host(g), [3.0, 1.0, 0.0, 2.0, 0.0])
    # under grad the values are known
    g = gp.grad(lambda t: gnp.sum(t[gnp.nonzero(t > 1.5)]))(dev(a))
    np.testing.assert_array_equal(host(g), [1.0, 0.0, 1.0, 1.0, 0.0])


def test_nonzero_and_unique_are_not_jittable():
    with pytest.raises(gp.TracerControlFlowError, match="gnp.nonzero.*static"):
        gp.jit(lambda a: gnp.nonzero(a))(dev(X))
    with pytest.raises(gp.TracerControlFlowError, match="gnp.unique"):
        gp.jit(lambda a: gnp.unique(a))(dev(X))


@pytest.mark.parametrize("kwargs", [{}, {"endpoint": False}, {"num": 1}, {"num": 0}])
def test_linspace_and_logspace_with_traced_endpoints(kwargs):
    num = kwargs.pop("num", 5)
    check_grads(lambda a, b: gnp.linspace(a, b, num, **kwargs), (0.5, 2.0), order=2)
    check_grads(lambda a, b: gnp.logspace(a, b, num, base=2.0, **kwargs), (0.5, 2.0), order=2)
    start, stop = np.array([0.5, 1.0]), np.array([2.0, -3.0])
    for axis in (0, 1):
        got = gp.jit(lambda a, b: gnp.linspace(a, b, num, axis=axis, **kwargs))(dev(start), dev(stop))
        assert_same(got, np.linspace(start, stop, num, axis=axis, **kwargs), atol=1e-15)
        check_grads(lambda a, b: gnp.linspace(a, b, num, axis=axis, **kwargs), (start, stop))
    got = gp.jit(lambda a: gnp.logspace(a, 1.0, num, **kwargs))(dev(0.5))
    assert_same(got, np.logspace(0.5, 1.0, num, **kwargs))


def test_linspace_retstep():
    (vals, step), (want, wstep) = (gp.jit(lambda a: gnp.linspace(a, 3.0, 4, retstep=True))(dev(1.0)),
                                   np.linspace(1.0, 3.0, 4, retstep=True))
    assert_same(vals, want)
    np.testing.assert_allclose(host(step), wstep)
