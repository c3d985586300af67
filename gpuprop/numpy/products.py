"""Matrix products: matmul with NumPy's rules for 1-D operands and batch
broadcasting; dot, outer, tensordot, einsum and trace built on it (and on
transpose, reshape, sum), so their derivatives are those of the pieces."""
import numpy as np

from .. import backend
from ..core import Primitive, ShapedArray, bind, size_of
from ._base import batch_broadcasting, batch_first, example_rank
from ._rules import broadcast_shapes, dtype_of, ndim_of, shape_of
from . import elementwise as ew, reductions, shape as sh


def _matmul_aval(a, b):
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        raise ValueError(f"gnp.matmul: operands must have at least one dimension, "
                         f"got shapes {sa} and {sb}; use gnp.multiply for scalars")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ValueError(f"gnp.matmul: contracted dimensions differ: shapes {sa} and "
                         f"{sb} ({ka} != {kb}); the last axis of the first operand "
                         f"must match the {'only' if len(sb) == 1 else 'second-to-last'} "
                         f"axis of the second")
    batch = broadcast_shapes("matmul", ShapedArray(sa[:-2], "f"), ShapedArray(sb[:-2], "f"))
    shape = batch + (sa[-2:-1] if len(sa) > 1 else ()) + (sb[-1:] if len(sb) > 1 else ())
    return ShapedArray(shape, np.result_type(dtype_of(a), dtype_of(b)))


def _as_matrices(g, a, b):
    """Promote 1-D operands (and the cotangent) to matrices, as matmul does."""
    A = sh.expand_dims(a, 0) if ndim_of(a) == 1 else a
    B = sh.expand_dims(b, -1) if ndim_of(b) == 1 else b
    if ndim_of(b) == 1:     # b first: for vector @ vector, g is 0-d
        g = sh.expand_dims(g, -1)
    if ndim_of(a) == 1:
        g = sh.expand_dims(g, -2)
    return g, A, B


def _matmul_da(g, out, a, b):
    g, A, B = _as_matrices(g, a, b)
    dA = reductions.sum_to_shape(matmul(g, sh.swapaxes(B, -1, -2)), shape_of(A))
    return sh.reshape(dA, shape_of(a))


def _matmul_db(g, out, a, b):
    g, A, B = _as_matrices(g, a, b)
    dB = reductions.sum_to_shape(matmul(sh.swapaxes(A, -1, -2), g), shape_of(B))
    return sh.reshape(dB, shape_of(b))


def _matmul_jvp(tangents, out, a, b):
    ta, tb = tangents
    terms = ([matmul(ta, b)] if ta is not None else []) + ([matmul(a, tb)] if tb is not None else [])
    return terms[0] if len(terms) == 1 else ew.add(*terms)


def _batch_matmul(prim, vals, dims):
    """Both operands made stacks of matrices (a vector gets a unit axis, taken
    out of the result), then batched as any broadcasting primitive; two
    shortcuts: a batch of vectors times one matrix is one matrix product, and
    a product over a contracted axis of length 1 (an outer product, as in the
    weight gradient of one example) is a broadcast multiply."""
    a, b = batch_first(vals, dims)
    a_vec, b_vec = (ndim_of(v) - (d is not None) == 1 for v, d in zip((a, b), dims))
    if a_vec and dims[0] is not None and dims[1] is None and ndim_of(b) == 2:
        return matmul(a, b), 0                      # the examples are the rows
    if b_vec and dims[0] is None and dims[1] is not None and ndim_of(a) == 2:
        return matmul(b, sh.swapaxes(a, -1, -2)), 0
    if a_vec:
        a = sh.expand_dims(a, -2)
    if b_vec:
        b = sh.expand_dims(b, -1)
    dims = [None if d is None else 0 for d in dims]
    if shape_of(a)[-1] == 1:
        out = ew.multiply(*batch_first((a, b), dims, example_rank((a, b), dims)))
    else:
        out, _ = batch_broadcasting(prim, (a, b), dims)
    if b_vec:
        out = sh.squeeze(out, -1)
    if a_vec:       # its unit axis is the last one once b's is gone
        out = sh.squeeze(out, -1 if b_vec else -2)
    return out, 0


matmul_p = Primitive("matmul", lambda xp, a, b: xp.matmul(a, b), _matmul_aval,
                     vjp=(_matmul_da, _matmul_db), jvp=_matmul_jvp, batch=_batch_matmul,
                     backend_fn=True, takes_out=True)


def matmul(a, b):
    return bind(matmul_p, (a, b), {})


def dot(a, b):
    """NumPy's dot: a product for scalars, matmul up to two dimensions, and
    beyond, the sum over a's last axis and b's second-to-last (not matmul's
    batching)."""
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return ew.multiply(a, b)
    if ndim_of(a) <= 2 and ndim_of(b) <= 2:
        return matmul(a, b)
    return tensordot(a, b, ([-1], [-2 if ndim_of(b) > 1 else 0]))


def inner(a, b):
    """The sum over the last axes of a and b (a product for scalars)."""
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return ew.multiply(a, b)
    return tensordot(a, b, ([-1], [-1]))


def vdot(a, b):
    """The dot product of the flattened arrays, conjugating a (as NumPy)."""
    return inner(sh.ravel(ew.conj(a)), sh.ravel(b))


def outer(a, b):
    return matmul(sh.reshape(a, (-1, 1)), sh.reshape(b, (1, -1)))


def kron(a, b):
    """The Kronecker product: each entry of a times b, the blocks laid out
    as a (operands of different ranks get leading axes of length 1)."""
    sa, sb = shape_of(a), shape_of(b)
    n = max(len(sa), len(sb))
    sa, sb = (1,) * (n - len(sa)) + sa, (1,) * (n - len(sb)) + sb
    a2 = sh.reshape(a, tuple(d for k in sa for d in (k, 1)))
    b2 = sh.reshape(b, tuple(d for k in sb for d in (1, k)))
    return sh.reshape(ew.multiply(a2, b2), tuple(p * q for p, q in zip(sa, sb)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The cross product of 3-vectors (or 2-vectors, whose product is the
    scalar z component) along the given axes, broadcast over the others."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = sh.moveaxis(a, axisa, -1), sh.moveaxis(b, axisb, -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(f"gnp.cross: the vectors must have 2 or 3 components, got shapes "
                         f"{shape_of(a)} and {shape_of(b)} along the chosen axes")
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    z = ew.subtract(ew.multiply(a0, b1), ew.multiply(a1, b0))
    if na == nb == 2:
        return z
    a2 = a[..., 2] if na == 3 else 0.0
    b2 = b[..., 2] if nb == 3 else 0.0
    x = ew.subtract(ew.multiply(a1, b2), ew.multiply(a2, b1))
    y = ew.subtract(ew.multiply(a2, b0), ew.multiply(a0, b2))
    shape = broadcast_shapes("cross", *(ShapedArray(shape_of(v), "f") for v in (x, y, z)))
    c = sh.stack([sh.broadcast_to(v, shape) for v in (x, y, z)], axis=-1)
    return sh.moveaxis(c, -1, axisc)


def _axes_list(name, axes, ndim, which):
    out = []
    for a in ([axes] if isinstance(axes, (int, np.integer)) else axes):
        if not -ndim <= int(a) < ndim:
            raise ValueError(f"gnp.{name}: axis {int(a)} is out of bounds for the "
                             f"{which} operand, of {ndim} dimension(s)")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"gnp.{name}: repeated axis in {axes} of the {which} operand")
    return out


def tensordot(a, b, axes=2):
    """Sum of products over `axes`: an int n (the last n axes of a with the
    first n of b) or a pair of axis sequences; as NumPy, one matmul of the
    operands transposed and reshaped to matrices."""
    sa, sb = shape_of(a), shape_of(b)
    if isinstance(axes, (int, np.integer)):
        if not 0 <= axes <= min(len(sa), len(sb)):
            raise ValueError(f"gnp.tensordot: axes={axes} for operands of shapes {sa} "
                             f"and {sb}; it must be between 0 and {min(len(sa), len(sb))}")
        ax_a, ax_b = list(range(len(sa) - axes, len(sa))), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = _axes_list("tensordot", ax_a, len(sa), "first")
        ax_b = _axes_list("tensordot", ax_b, len(sb), "second")
    if [sa[i] for i in ax_a] != [sb[j] for j in ax_b]:
        raise ValueError(f"gnp.tensordot: the summed axes {ax_a} of shape {sa} and "
                         f"{ax_b} of shape {sb} differ in length")
    free_a = [i for i in range(len(sa)) if i not in ax_a]
    free_b = [j for j in range(len(sb)) if j not in ax_b]
    k = size_of([sa[i] for i in ax_a])
    A = sh.reshape(sh.transpose(a, free_a + ax_a), (size_of([sa[i] for i in free_a]), k))
    B = sh.reshape(sh.transpose(b, ax_b + free_b), (k, size_of([sb[j] for j in free_b])))
    return sh.reshape(matmul(A, B), tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b))


def trace(x, offset=0, axis1=0, axis2=1):
    """Sum of the diagonal of the planes (axis1, axis2)."""
    return reductions.sum(sh.diagonal(x, offset, axis1, axis2), axis=-1)


# ---- einsum -----------------------------------------------------------------
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _interleaved(args):
    """einsum(x, [0, 1], y, [1, 2], [0, 2]) as (subscripts, operands)."""
    def letters(sub):
        return "".join("..." if s is Ellipsis else _LETTERS[int(s)] for s in sub)
    pairs = args[:len(args) - len(args) % 2]
    spec = ",".join(letters(sub) for sub in pairs[1::2])
    if len(args) % 2:           # the output's sublist
        spec += "->" + letters(args[-1])
    return spec, list(pairs[0::2])


def _expand_ellipsis(spec, operands):
    """Each '...' replaced by letters unused elsewhere, right-aligned across
    the operands as broadcasting aligns their axes."""
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    free = [c for c in _LETTERS if c not in spec]
    counts = [ndim_of(x) - len(t.replace("...", "")) if "..." in t else 0
              for x, t in zip(operands, ins)]
    for x, t, c in zip(operands, ins, counts):
        if c < 0:
            raise ValueError(f"gnp.einsum({spec!r}): subscripts {t!r} name more axes than "
                             f"the operand of shape {shape_of(x)} has")
    width = max(counts, default=0)
    dots = "".join(free[:width])
    ins = [t.replace("...", dots[width - c:]) for t, c in zip(ins, counts)]
    if arrow:
        out = out.replace("...", dots)
    else:       # implicit output: the broadcast axes first, then the labels seen once
        letters = "".join(t.replace("...", "") for t in lhs.split(","))
        out = dots + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return ",".join(ins) + "->" + out


def _parse_einsum(subscripts, operands):
    spec = subscripts.replace(" ", "")
    if "." in spec:
        if len(operands) != len(spec.partition("->")[0].split(",")):
            raise ValueError(f"gnp.einsum({subscripts!r}): {len(spec.split(','))} operand "
                             f"subscripts for {len(operands)} operands")
        spec = _expand_ellipsis(spec, operands)
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise ValueError(f"gnp.einsum({subscripts!r}): {len(ins)} operand subscripts for "
                         f"{len(operands)} operands")
    letters = "".join(ins)
    if not arrow:       # implicit output: the labels seen once, sorted
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    bad = [c for c in letters + out if not c.isalpha()]
    if bad or len(set(out)) != len(out) or not set(out) <= set(letters):
        raise ValueError(f"gnp.einsum({subscripts!r}): subscripts must be letters; the "
                         f"output's must be distinct and appear among the inputs'")
    sizes = {}
    for x, term in zip(operands, ins):
        if len(term) != ndim_of(x):
            raise ValueError(f"gnp.einsum({subscripts!r}): subscripts {term!r} for an "
                             f"operand of shape {shape_of(x)}")
        for c, d in zip(term, shape_of(x)):
            if sizes.get(c, 1) not in (1, d) and d != 1:
                raise ValueError(f"gnp.einsum({subscripts!r}): label {c!r} has sizes "
                                 f"{sizes[c]} and {d}")
            sizes[c] = d if sizes.get(c, 1) == 1 else sizes[c]
    return ins, out, sizes


def _einsum_prepare(x, term, sizes, name):
    """An operand with each repeated label taken along its diagonal and its
    size-1 axes broadcast to their label's size: one axis per label."""
    term = list(term)
    for c in dict.fromkeys(term):
        while term.count(c) > 1:
            i = term.index(c)
            j = term.index(c, i + 1)
            if shape_of(x)[i] != shape_of(x)[j]:
                raise ValueError(f"gnp.einsum({name!r}): repeated label {c!r} on axes "
                                 f"of sizes {shape_of(x)[i]} and {shape_of(x)[j]}")
            x = sh.diagonal(x, 0, i, j)
            term = [t for k, t in enumerate(term) if k not in (i, j)] + [c]
    return sh.broadcast_to(x, tuple(sizes[c] for c in term)), term


def _einsum_reduce(x, term, keep):
    """Sum the axes whose labels are not in `keep`."""
    gone = tuple(i for i, c in enumerate(term) if c not in keep)
    if gone:
        x = reductions.sum(x, axis=gone)
    return x, [c for c in term if c in keep]


def _einsum_pair(x, tx, y, ty, keep, sizes):
    """The two operands contracted to the labels `keep` (batch, x's own, y's
    own) with one batched matmul."""
    x, tx = _einsum_reduce(x, tx, set(keep) | set(ty))
    y, ty = _einsum_reduce(y, ty, set(keep) | set(tx))
    batch = [c for c in tx if c in ty and c in keep]
    summed = [c for c in tx if c in ty and c not in keep]
    own_x, own_y = [c for c in tx if c not in ty], [c for c in ty if c not in tx]

    def as_3d(z, tz, middle, last):
        order = [tz.index(c) for c in batch + middle + last]
        dims = [size_of([sizes[c] for c in part]) for part in (batch, middle, last)]
        return sh.reshape(sh.transpose(z, order), tuple(dims))
    z = matmul(as_3d(x, tx, own_x, summed), as_3d(y, ty, summed, own_y))
    labels = batch + own_x + own_y
    return sh.reshape(z, tuple(sizes[c] for c in labels)), labels


def einsum(subscripts, *operands, optimize=False):
    """Einstein summation with NumPy's subscripts ('ij,jk->ik', '...ij,...jk',
    'i,i->', 'ij->ji', 'ii->i', implicit output) or its interleaved form
    einsum(x, [0, 1], y, [1, 2], [0, 2]): operands are contracted left to
    right, each pair by one batched matmul (`optimize` is accepted and
    ignored).  Size-1 axes broadcast, as in NumPy."""
    if not isinstance(subscripts, str):
        subscripts, operands = _interleaved((subscripts,) + operands)
    if not operands:
        raise ValueError("gnp.einsum: needs at least one operand")
    ins, out, sizes = _parse_einsum(subscripts, operands)
    prepared = [_einsum_prepare(x, t, sizes, subscripts) for x, t in zip(operands, ins)]
    x, tx = prepared[0]
    for k, (y, ty) in enumerate(prepared[1:], start=2):
        later = set(out).union(*[t for _, t in prepared[k:]])
        keep = [c for c in dict.fromkeys(tx + ty) if c in later]
        x, tx = _einsum_pair(x, tx, y, ty, keep, sizes)
    x, tx = _einsum_reduce(x, tx, set(out))
    x = sh.transpose(x, [tx.index(c) for c in out])
    dtype = np.result_type(*[dtype_of(v) for v in operands])
    return x if dtype_of(x) == dtype else ew.astype(x, dtype)


# ---- convolution ------------------------------------------------------------
def convolve(a, v, mode="full"):
    """The discrete 1-D convolution of a and v, NumPy's modes 'full', 'same'
    and 'valid': one matmul of the longer operand's sliding windows (a gather)
    with the other reversed, so both get gradients."""
    if ndim_of(a) != 1 or ndim_of(v) != 1 or not shape_of(a)[0] or not shape_of(v)[0]:
        raise ValueError(f"gnp.convolve: needs two non-empty 1-D arrays, got shapes "
                         f"{shape_of(a)} and {shape_of(v)}")
    if shape_of(v)[0] > shape_of(a)[0]:
        a, v = v, a
    n, m = shape_of(a)[0], shape_of(v)[0]
    starts = {"full": range(-(m - 1), n), "same": range(-(m // 2), n - m // 2),
              "valid": range(0, n - m + 1)}.get(mode)
    if starts is None:
        raise ValueError(f"gnp.convolve: mode must be 'full', 'same' or 'valid', got {mode!r}")
    padded = sh.pad(a, (m - 1, m - 1))
    index = np.asarray(list(starts))[:, None] + (m - 1) + np.arange(m)[None, :]
    windows = sh.getitem(padded, backend.asarray(index))
    return matmul(windows, sh.flip(v))


def correlate(a, v, mode="valid"):
    """NumPy's correlate of real 1-D arrays: sum_n a[n + k] v[n], i.e. the
    convolution with v reversed (default mode 'valid', as NumPy)."""
    if ndim_of(v) == 1 and ndim_of(a) == 1 and shape_of(v)[0] > shape_of(a)[0]:
        return sh.flip(convolve(v, sh.flip(a), mode))
    return convolve(a, sh.flip(v) if ndim_of(v) == 1 else v, mode)
