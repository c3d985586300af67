"""check_grads: compare forward- and reverse-mode derivatives with central
finite differences, in float64 (complex128 for complex values), to any order.

For random directions v (inputs) and u (outputs): forward mode's J v (jvp)
and the finite differences' J v must agree along u, and reverse mode must
satisfy the transpose identity <u, J v> = <J^T u, v> (vjp).  Order k > 1
checks, at order k - 1, the derivative maps themselves as functions of all
their inputs: (x, u) -> J(x)^T u in both modes (forward over reverse and
reverse over reverse; the cotangent is an input too, so a backward rule whose
own derivative in the cotangent is wrong is caught), and (x, v) -> J(x) v
(forward over forward, reverse over forward).

Complex values follow JAX's convention: directions v and u are complex for
complex leaves (so finite differences step in the real and imaginary
directions at once), and the pairing is re(sum(a * b)), under which a VJP
is the transpose of the JVP: re<u, J v> = re<J^T u, v>.
"""
import numpy as np

from . import backend
from .autodiff import vjp
from .core import shape_of
from .forward import jvp
from .tree import tree_flatten, tree_unflatten

MODES = ("fwd", "rev")


def _dtype(x):
    return np.dtype(x.dtype if hasattr(x, "dtype") else np.result_type(x))


def _host(x):
    """x on the host in float64, or complex128 if it is complex."""
    return np.asarray(backend.to_host(x),
                      dtype=np.complex128 if _dtype(x).kind == "c" else np.float64)


def _inner(a_leaves, b_leaves):
    """The real part of the sum of the elementwise products over the inexact
    leaves (integer outputs have no derivative: their tangents are float0)."""
    return float(sum(np.sum(_host(a) * _host(b)).real for a, b in zip(a_leaves, b_leaves)
                     if _is_float(a) and _is_float(b)))


def _is_float(x):
    return _dtype(x).kind in "fc"


def _direction(rng, like):
    """A random direction of `like`'s shape, complex if `like` is."""
    shape = shape_of(like)
    v = rng.standard_normal(shape)
    return v + 1j * rng.standard_normal(shape) if _dtype(like).kind == "c" else v


def _float_positions(leaves):
    return [i for i, x in enumerate(leaves) if _is_float(x)]


def check_grads(f, args, order=2, modes=MODES, eps=1e-4, atol=1e-5, rtol=1e-5, seed=0):
    """Check f's derivatives at `args` (a tuple) up to `order`, in `modes`
    ("fwd", "rev" or both).

    Floating leaves of args are converted to float64 (complex ones to
    complex128) on the active backend and differentiated; other leaves (integer index arrays, ...) are held fixed.
    Raises AssertionError naming the order, the mode and both values on a
    mismatch."""
    modes = tuple(modes)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"check_grads: modes must be a non-empty subset of {MODES}, got {modes}")
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

    _check(f_flat, [leaves[i] for i in pos], order, modes, eps, atol, rtol, rng, to_dev)


def _check(f, xs, order, modes, eps, atol, rtol, rng, to_dev):
    out = f(*xs)
    out_leaves, out_tree = tree_flatten(out)
    us = [to_dev(_direction(rng, o)) for o in out_leaves]
    vs = [to_dev(_direction(rng, x)) for x in xs]

    def shifted(sign):
        return tree_flatten(f(*[x + sign * eps * v for x, v in zip(xs, vs)]))[0]

    def agree(what, a, b):
        if not abs(a - b) <= atol + rtol * max(abs(a), abs(b)):
            raise AssertionError(
                f"check_grads: derivative of order {order_name(order)}: {what}: {a!r} and "
                f"{b!r} disagree (difference {abs(a - b):.3g})")

    fd = (_inner(us, shifted(+1)) - _inner(us, shifted(-1))) / (2 * eps)
    if "fwd" in modes:
        fwd = _inner(us, tree_flatten(jvp(f, tuple(xs), tuple(vs))[1])[0])
        agree("<u, J v> by finite differences and by forward mode (jvp)", fd, fwd)
    if "rev" in modes:
        rev = _inner(vjp(f, *xs)[1](tree_unflatten(out_tree, us)), vs)
        agree("<u, J v> by finite differences and <J^T u, v> by reverse mode (vjp)", fd, rev)
    if len(modes) == 2:     # the transpose identity between the modes: rounding only
        agree("<u, J v> by forward mode and <J^T u, v> by reverse mode", fwd, rev)
    if order > 1:
        n = len(xs)
        if "rev" in modes:
            def pullback(*xs_us):
                return vjp(f, *xs_us[:n])[1](tree_unflatten(out_tree, list(xs_us[n:])))
            _check(pullback, list(xs) + us, order - 1, modes, eps, atol, rtol, rng, to_dev)
        if "fwd" in modes:
            def pushforward(*xs_vs):
                return jvp(f, tuple(xs_vs[:n]), tuple(xs_vs[n:]))[1]
            _check(pushforward, list(xs) + vs, order - 1, modes, eps, atol, rtol, rng, to_dev)


def order_name(order):
    return {1: "1 (the innermost)"}.get(order, str(order))
