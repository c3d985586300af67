"""check_grads: compare reverse-mode derivatives with central finite
differences, in float64, to any order.

For random directions v (inputs) and u (outputs), the inner-product identity
<u, J v> = <J^T u, v> must hold, where J v comes from finite differences and
J^T u from gpuprop.vjp.  Order k > 1 applies the same check to the function
x -> J(x)^T u, whose derivative is computed by differentiating the backward
pass: reverse over reverse.
"""
import numpy as np

from . import backend
from .autodiff import vjp
from .core import shape_of
from .tree import tree_flatten, tree_unflatten


def _host(x):
    return np.asarray(backend.to_host(x), dtype=np.float64)


def _inner(a_leaves, b_leaves):
    return float(sum(np.sum(_host(a) * _host(b)) for a, b in zip(a_leaves, b_leaves)))


def _float_positions(leaves):
    return [i for i, x in enumerate(leaves)
            if np.dtype(x.dtype if hasattr(x, "dtype") else np.result_type(x)).kind == "f"]


def check_grads(f, args, order=2, eps=1e-4, atol=1e-5, rtol=1e-5, seed=0):
    """Check f's derivatives at `args` (a tuple) up to `order`.

    Floating leaves of args are converted to float64 on the active backend and
    differentiated; other leaves (integer index arrays, ...) are held fixed.
    Raises AssertionError naming the order and both values on a mismatch.
    """
    rng = np.random.default_rng(seed)
    leaves, tree = tree_flatten(tuple(args))
    pos = _float_positions(leaves)
    to_dev = backend.current().from_host
    leaves = [to_dev(_host(x)) if i in pos else x for i, x in enumerate(leaves)]

    def f_flat(*xs):
        full = list(leaves)
        for i, x in zip(pos, xs):
            full[i] = x
        return f(*tree_unflatten(tree, full))

    _check(f_flat, [leaves[i] for i in pos], order, eps, atol, rtol, rng, to_dev)


def _check(f, xs, order, eps, atol, rtol, rng, to_dev):
    out, vjp_fn = vjp(f, *xs)
    out_leaves, out_tree = tree_flatten(out)
    us = [to_dev(rng.standard_normal(shape_of(o))) for o in out_leaves]
    vs = [to_dev(rng.standard_normal(shape_of(x))) for x in xs]

    def shifted(sign):
        return tree_flatten(f(*[x + sign * eps * v for x, v in zip(xs, vs)]))[0]

    fd = (_inner(us, shifted(+1)) - _inner(us, shifted(-1))) / (2 * eps)
    ad = _inner(vjp_fn(tree_unflatten(out_tree, us)), vs)
    if not abs(fd - ad) <= atol + rtol * max(abs(fd), abs(ad)):
        raise AssertionError(
            f"check_grads: derivative of order {order_name(order)} disagrees with "
            f"finite differences: <u, J v> = {fd!r} by finite differences, "
            f"<J^T u, v> = {ad!r} by gpuprop (difference {abs(fd - ad):.3g})")
    if order > 1:
        def backward(*ys):
            return vjp(f, *ys)[1](tree_unflatten(out_tree, us))
        _check(backward, xs, order - 1, eps, atol, rtol, rng, to_dev)


def order_name(order):
    return {1: "1 (the innermost)"}.get(order, str(order))
