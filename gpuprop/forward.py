"""Forward mode: the JVP trace, and jvp, jacfwd, hessian, custom_jvp built on it.

A `JVPTracer` holds its primal value (an array, or a tracer of a lower level)
and its tangent (None: zero, so constants cost nothing).  Each primitive's
JVP rule maps the arguments' tangents to the output's; the rules bind
primitives, so an enclosing transform sees them: jvp(grad(f)) differentiates
the backward pass forwards, grad(jvp(f)) the tangent computation backwards.
"""
import numpy as np

from . import core
from .autodiff import jacrev, vjp
from .core import (PrimalTracer, ShapedArray, Trace, Tracer, bind, dtype_of, eval_primitive,
                   inexact, new_main, shape_of, size_of)
from .numpy import elementwise as ew
from .numpy._base import zeros_like
from .numpy.shape import reshape, stack
from .tree import tree_flatten, tree_map, tree_unflatten

# JAX's dtype of the tangent of an integer or boolean value: no data at all
float0 = np.dtype([("float0", np.void, 0)])


class JVPTracer(PrimalTracer):
    __slots__ = ("tangent",)

    def __init__(self, trace, primal, tangent):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent


class JVPTrace(Trace):
    name = "jvp"

    def pure(self, val):
        return JVPTracer(self, val, None)

    lift = pure

    def _split(self, args):
        primals, tangents = [], []
        for a in args:
            if type(a) is JVPTracer and a._trace.main is self.main:
                primals.append(a.primal)
                tangents.append(a.tangent)
            else:
                primals.append(a)
                tangents.append(None)
        return primals, tangents

    def process_primitive(self, prim, args, params):
        primals, tangents = self._split(args)
        out = (eval_primitive(prim, primals, params) if self.first_level
               else bind(prim, primals, params))
        if prim.multiple_results:
            if all(t is None for t in tangents) or not prim.differentiable:
                return out
            ts = prim.jvp(tangents, out, *primals, **params)
            return [JVPTracer(self, o, t) if t is not None and inexact(o) else o
                    for o, t in zip(out, ts)]
        if all(t is None for t in tangents) or not inexact(out) or (
                not prim.differentiable and prim.jvp is None):
            return out      # a constant here: zero tangent
        rule = prim.jvp or _transposed_vjp(prim)
        t = rule(tangents, out, *primals, **params)
        if t is None:
            return out
        if t.dtype != out.dtype:
            t = ew.to_dtype(t, out.dtype)   # a real output's tangent: the real part
        return JVPTracer(self, out, t)

    def process_custom_vjp(self, fun, fwd, bwd, tracers):
        raise TypeError(f"jvp: {getattr(fun, '__name__', 'a function')} is a custom_vjp "
                        f"function, which defines only a reverse-mode rule, so forward mode "
                        f"(jvp, jacfwd, hessian) cannot differentiate it (as in JAX); "
                        f"define it with custom_jvp instead, or use grad/vjp/jacrev")

    def process_custom_jvp(self, fun, rule, tracers):
        primals, tangents = self._split(tracers)
        if all(t is None for t in tangents):
            return fun(*primals)
        tangents = [t if t is not None else zeros_like(p) for p, t in zip(primals, tangents)]
        out, t = rule(primals, tangents)
        return JVPTracer(self, out, t) if inexact(out) else out

    concrete = staticmethod(core.concrete_primal)

    @staticmethod
    def number(tracer, why):
        """float(t) & co make a Python number, a constant to differentiation:
        refused where t carries a tangent."""
        if tracer.tangent is not None:
            raise TypeError(
                f"jvp: {why} of a traced value ({tracer.aval}) that depends on the "
                f"differentiated input would silently drop its tangent (a Python number "
                f"is a constant). Keep it an array: compute with gpuprop.numpy; for a "
                f"value meant as a constant, convert gpuprop.stop_gradient(t)")
        p = tracer.primal
        return p._number(why) if isinstance(p, Tracer) else p


def _transposed_vjp(prim):
    """The JVP of a primitive that declares only VJP rules: g -> J^T g is
    linear in g, so its own VJP (at any g), applied to the tangents, is J t.
    One reverse pass over the VJP rules: slower than a rule of its own."""
    def jvp_rule(tangents, out, *args, **params):
        which = [i for i, t in enumerate(tangents) if t is not None]

        def pullback(g):
            if prim.vjp is None:
                return [prim.vjp_variadic(i, g, out, *args, **params) for i in which]
            return [prim.vjp[i](g, out, *args, **params) for i in which]
        _, back = vjp(pullback, zeros_like(out))
        (t,) = back([tangents[i] for i in which])
        return t
    return jvp_rule


def check_tangent(name, where, p, t):
    """A tangent must match its primal: the same shape, and the same float
    dtype (float0 for an integer or boolean primal)."""
    pd, td = dtype_of(p), dtype_of(t)
    if shape_of(p) != shape_of(t):
        raise ValueError(f"{name}: {where} has shape {shape_of(p)} and dtype {pd}, its "
                         f"tangent has shape {shape_of(t)} and dtype {td}; a tangent has its "
                         f"primal's shape")
    want = pd if pd.kind in "fc" else float0
    if td != want:
        fix = ("zeros of dtype gpuprop.float0 (integer and boolean values have no tangent)"
               if want == float0 else f"a tangent of dtype {pd}")
        raise TypeError(f"{name}: {where} has dtype {pd} and shape {shape_of(p)}, its "
                        f"tangent has dtype {td} and shape {shape_of(t)}; pass {fix}")


def jvp(f, primals, tangents, has_aux=False, **kwargs):
    """(f(*primals), J tangents): the output and its directional derivative
    along `tangents`, in one forward pass.  primals and tangents are tuples
    of pytrees of one structure; a tangent has its primal's shape and dtype
    (gpuprop.float0 for integer and boolean primals).  With has_aux, f
    returns (output, aux) and jvp returns (output, tangent, aux).  Keyword
    arguments go to f, not differentiated."""
    name = f"jvp({getattr(f, '__name__', 'f')})"
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(f"{name}: primals and tangents must be tuples (one entry per "
                        f"argument of f), got {type(primals).__name__} and "
                        f"{type(tangents).__name__}")
    if len(primals) != len(tangents):
        raise ValueError(f"{name}: {len(primals)} primal(s) but {len(tangents)} tangent(s)")
    with new_main(JVPTrace) as main:
        trace, args = main.trace, []
        for i, (p, t) in enumerate(zip(primals, tangents)):
            pl, ptd = tree_flatten(p)
            tl, ttd = tree_flatten(t)
            if ptd != ttd:
                raise ValueError(f"{name}: primals[{i}] has structure {ptd}, its tangent "
                                 f"{ttd}")
            leaves = []
            for k, (x, dx) in enumerate(zip(pl, tl)):
                check_tangent(name, f"primals[{i}]" + (f" leaf {k}" if ptd.kind else ""), x, dx)
                x = _as_array(x)
                leaves.append(JVPTracer(trace, x, dx) if inexact(x) else x)
            args.append(tree_unflatten(ptd, leaves))
        result = f(*args, **kwargs)
        if has_aux:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TypeError(f"{name} with has_aux=True: the function must return "
                                f"a pair (output, aux), got {type(result).__name__}")
            result, aux = result
        out_leaves, out_tree = tree_flatten(result)
        pairs = [_primal_tangent(main, o) for o in out_leaves]
    out = tree_unflatten(out_tree, [p for p, _ in pairs])
    tangent = tree_unflatten(out_tree, [t for _, t in pairs])
    if has_aux:
        return out, tangent, tree_map(lambda x: _primal_tangent(main, x)[0], aux)
    return out, tangent


def _as_array(x):
    if type(x) in (float, complex) or isinstance(x, np.generic):
        from .numpy.creation import asarray
        return asarray(np.asarray(x))
    return x


def _primal_tangent(main, o):
    """An output's value and its tangent (zeros where it has none)."""
    if isinstance(o, JVPTracer) and o._trace.main is main:
        return o.primal, o.tangent
    o = _as_array(o)
    if not hasattr(o, "dtype"):        # a Python int or bool
        return o, np.zeros((), float0)
    return o, (zeros_like(o) if inexact(o) else np.zeros(shape_of(o), float0))


class custom_jvp:
    """A function with a forward-mode rule of its own, as in JAX:

        @custom_jvp
        def f(x, y): ...
        @f.defjvp
        def f_jvp(primals, tangents):
            x, y = primals; dx, dy = tangents
            return f(x, y), <the tangent of the output>

    The rule gets every tangent (zeros where an argument is not
    differentiated).  Reverse mode (grad, vjp) differentiates through the
    rule's tangent, which must be linear in the tangents (it is transposed).
    f returns one array."""

    def __init__(self, fun):
        self.fun, self.rule = fun, None
        self.__name__ = getattr(fun, "__name__", "custom_jvp")
        self.__doc__ = fun.__doc__

    def defjvp(self, rule):
        self.rule = rule
        return rule

    def __call__(self, *args):
        if self.rule is None:
            raise TypeError(f"custom_jvp {self.__name__}: define its rule with defjvp first")
        return core.call_at_top(args, self.fun, "process_custom_jvp", self.rule)


def jacfwd(f, argnums=0, has_aux=False, holomorphic=False):
    """Forward-mode Jacobian: one jvp per input element; for each output leaf
    of shape S and input leaf of shape T, an array of shape S + T.  Complex
    inputs need holomorphic=True (complex inputs and outputs: the Jacobian of
    complex derivatives), as in JAX; real inputs may give complex outputs."""
    name = f"jacfwd({getattr(f, '__name__', 'f')})"

    def jac(*args):
        single = isinstance(argnums, int)
        nums = (argnums,) if single else tuple(argnums)
        for i in nums:
            if not -len(args) <= i < len(args):
                raise ValueError(f"{name}: argnums {argnums} out of range for "
                                 f"{len(args)} positional argument(s)")
        leaves, in_tree = tree_flatten(tuple(args[i] for i in nums))
        leaves = [_as_array(x) for x in leaves]
        for x in leaves:
            if not inexact(x):
                raise TypeError(f"{name}: the arguments in argnums {argnums} must be "
                                f"floating point, got dtype {dtype_of(x)}")
            if holomorphic and dtype_of(x).kind != "c":
                raise TypeError(f"{name} with holomorphic=True: an argument in argnums "
                                f"{argnums} has dtype {dtype_of(x)}; a holomorphic derivative "
                                f"needs complex inputs, as in JAX. Pass complex values "
                                f"(x + 0j), or drop holomorphic=True")
            if not holomorphic and dtype_of(x).kind == "c":
                raise TypeError(f"{name}: an argument in argnums {argnums} is complex "
                                f"({dtype_of(x)}); as in JAX, jacfwd needs real inputs. For a "
                                f"holomorphic function pass holomorphic=True; otherwise use "
                                f"gpuprop.jvp with tangents in the real and imaginary "
                                f"directions")

        def f_flat(*xs):
            full = list(args)
            for i, a in zip(nums, tree_unflatten(in_tree, list(xs))):
                full[i] = a
            return f(*full)

        columns = []        # per input leaf, per element: (out leaves' tangents)
        out = aux = None
        for k, x in enumerate(leaves):
            cols = []
            for j in range(size_of(shape_of(x))):
                basis = np.zeros(size_of(shape_of(x)), dtype_of(x))
                basis[j] = 1
                ts = [zeros_like(y) for y in leaves]
                ts[k] = reshape(_from_host(basis), shape_of(x))
                res = jvp(f_flat, tuple(leaves), tuple(ts), has_aux=has_aux)
                out, t = res[0], res[1]
                aux = res[2] if has_aux else None
                cols.append(tree_flatten(t)[0])
            columns.append(cols)
        if out is None:     # no input element: evaluate once for the shapes
            out = f_flat(*leaves)
            out, aux = out if has_aux else (out, None)
        out_leaves, out_tree = tree_flatten(out)
        if holomorphic:
            for o in out_leaves:
                if dtype_of(o).kind != "c":
                    raise TypeError(f"{name} with holomorphic=True: the function returns "
                                    f"{dtype_of(o)}; a holomorphic derivative needs complex "
                                    f"outputs, as in JAX. Drop holomorphic=True")

        def block(o_index, o, x, cols):
            shape = shape_of(o) + shape_of(x)
            if not cols:
                return zeros_like(ShapedArray(shape, dtype_of(o)))
            return reshape(stack([c[o_index] for c in cols], axis=-1), shape)

        per_out = []
        for oi, o in enumerate(out_leaves):
            blocks = [block(oi, o, x, cols) for x, cols in zip(leaves, columns)]
            per_arg = tree_unflatten(in_tree, blocks)
            per_out.append(per_arg[0] if single else per_arg)
        result = tree_unflatten(out_tree, per_out)
        return (result, aux) if has_aux else result

    return jac


def hessian(f, argnums=0, has_aux=False, holomorphic=False):
    """Second derivatives, forward over reverse (jacfwd of jacrev), as JAX:
    for a scalar f and an input leaf of shape T, an array of shape T + T;
    holomorphic=True for a complex f of complex inputs."""
    return jacfwd(jacrev(f, argnums, has_aux, holomorphic), argnums, has_aux, holomorphic)


def _from_host(x):
    from . import backend
    return backend.current().from_host(x)
