"""Each library's version of every workload, built from the same host arrays.

The model code is written once (`mlp_loss`, `chain`) against a small table of
operations (`Ops`), and every library fills in its own: gpuprop.numpy, jax.numpy,
autograd.numpy, torch.  The functional libraries (gpuprop, JAX, autograd) share
one implementation that differs only in its transforms; PyTorch has its own
(autograd on tensors, in-place SGD); the baseline is bench.handwritten.

An `Impl` turns host data into zero-argument callables the clocks can run:
  chain(x)                  -> value, gradient
  grad(params, x, y)        -> loss, grads
  train(params, x, y)       -> loss, new params   (one SGD step, a `Step`)
  jvp(params, v, x, y)      -> loss, its directional derivative along v (forward mode)
  hvp(params, v, x, y)      -> Hessian times v, as grad of grad
  hvp_fwdrev(params, v, x, y) -> Hessian times v, as jvp of grad (forward over reverse)
  perex(params, x, y)       -> every example's gradient of its own loss, each leaf
                               f32[batch, *param.shape] (vmap of grad)
  epoch(params, batches)    -> mean loss over the epoch, params (`limit` batches for warm-up)
"""
import functools
import inspect
import re
from types import SimpleNamespace as Ops

import numpy as np

from . import handwritten as hw
from .cases import LR, CHAIN_LENGTH


# ---- the model, written once -------------------------------------------------
def example_loss(ops, params, x, y):
    """The summed loss of x f32[batch, n_in] against y, or, what vmap maps,
    the loss of one example x f32[n_in], y f32[n_out]."""
    h = x
    for W, b in params[:-1]:
        h = ops.tanh(h @ W + b)
    W, b = params[-1]
    return -ops.sum(y * ops.log_softmax(h @ W + b))


def mlp_loss(ops, params, x, y):
    """The mean loss over the batch."""
    return example_loss(ops, params, x, y) / x.shape[0]


def chain(ops, x):
    for i in range(CHAIN_LENGTH):
        op = hw.CHAIN_OPS[i % 3]
        if op == "multiply":
            x = x * hw.CHAIN_MUL
        elif op == "add":
            x = x + hw.CHAIN_ADD
        else:
            x = ops.tanh(x)
    return ops.sum(x)


def vdot(ops, a, b):
    """The inner product of two params-shaped lists of (W, b)."""
    terms = [ops.sum(u * v) for la, lb in zip(a, b) for u, v in zip(la, lb)]
    return functools.reduce(lambda s, t: s + t, terms)


def sgd(params, grads):
    return [(W - LR * dW, b - LR * db) for (W, b), (dW, db) in zip(params, grads)]


def as_pairs(flat):
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def looped(tree_map, stack):
    """A vmap(f, in_axes) written as a Python loop: f called on each example
    (in_axes: 0 or None per argument), each output leaf stacked along axis 0."""
    def vmap(f, in_axes):
        def run(*args):
            n = next(a.shape[0] for a, ax in zip(args, in_axes) if ax == 0)
            outs = [f(*(a if ax is None else a[i] for a, ax in zip(args, in_axes)))
                    for i in range(n)]
            return tree_map(lambda *leaves: stack(leaves), *outs)
        return run
    return vmap


def tree_to_host(tree, leaf):
    if isinstance(tree, (list, tuple)):
        return [tree_to_host(t, leaf) for t in tree]
    return np.asarray(leaf(tree))


class Impl:
    """One variant of one library."""
    tracemalloc = True          # its arrays are reported to tracemalloc

    def __init__(self, variant, put, host, block=lambda out: None):
        self.variant = variant
        # host array -> library array, always from a private copy: an in-place
        # update or a donated buffer must never reach the shared host data
        self.put = lambda a: put(np.array(a))
        self._host = host                   # library array -> host array
        self.block = block                  # wait for asynchronous work

    def put_tree(self, tree):
        if isinstance(tree, (list, tuple)):
            return type(tree)(self.put_tree(t) for t in tree)
        return self.put(tree)

    def host(self, tree):
        return tree_to_host(tree, self._host)

    def epoch(self, params, batches):
        """The epoch loop, the same for every library: fresh params, then one
        step per batch; the loss is summed on the device."""
        data = [(self.put(x), self.put(y)) for x, y in batches]
        step = self.train(params, *data[0])     # built once: a jit compiles once

        def run(limit=None):
            step.reset()
            total = None
            for x, y in data[:limit]:
                loss = step.on(x, y)
                total = loss if total is None else total + loss
            # the params too: an asynchronous library (JAX) may still be updating them
            return total / len(data[:limit]), step.params()
        return run


class Step:
    """A train step as a callable: `step()` on the case's batch returns the
    loss and the new params (everything the step computed, so that waiting
    for its result waits for all its work); `step.on(x, y)` on another batch
    returns the loss; `step.params()` reads the current parameters,
    `step.reset()` puts the initial ones back."""

    def __init__(self, on, params, reset, x, y):
        self.on, self.params, self.reset, self.x, self.y = on, params, reset, x, y

    def __call__(self):
        return self.on(self.x, self.y), self.params()


# ---- the baseline: hand-written backprop on numpy or cupy --------------------
class Handwritten(Impl):
    def __init__(self, variant, xp, put, host, block=lambda out: None):
        super().__init__(variant, put, host, block)
        self.xp = xp

    def chain(self, x):
        x = self.put(x)
        return lambda: hw.chain_value_and_grad(self.xp, x, CHAIN_LENGTH)

    def grad(self, params, x, y):
        p, x, y = self.put_tree(params), self.put(x), self.put(y)
        return lambda: hw.loss_and_grads(self.xp, p, x, y)

    def train(self, params, x, y):
        state = [self.put_tree(params)]
        return Step(lambda x, y: hw.train_step(self.xp, state[0], x, y, LR),
                    lambda: state[0], lambda: state.__setitem__(0, self.put_tree(params)),
                    self.put(x), self.put(y))

    def jvp(self, params, v, x, y):
        p, v, x, y = self.put_tree(params), self.put_tree(v), self.put(x), self.put(y)
        return lambda: hw.jvp(self.xp, p, x, y, v)

    def hvp(self, params, v, x, y):
        p, v, x, y = self.put_tree(params), self.put_tree(v), self.put(x), self.put(y)
        return lambda: hw.hvp(self.xp, p, x, y, v)

    hvp_fwdrev = hvp        # the R-operator is forward mode over the backward pass already

    def perex(self, params, x, y):
        p, x, y = self.put_tree(params), self.put(x), self.put(y)
        return lambda: hw.per_example_grads(self.xp, p, x, y)


# ---- gpuprop, JAX, autograd: one functional implementation --------------------
class Functional(Impl):
    """Pure functions of a params pytree, differentiated by the library's
    value_and_grad / grad / jvp (None where it has no forward mode) / vmap
    (None where it has none); `jit` (None for none) stages whole functions."""

    def __init__(self, variant, ops, value_and_grad, grad, put, host, block=lambda out: None,
                 jit=None, jit_kwargs=None, jvp=None, vmap=None):
        super().__init__(variant, put, host, block)
        self.ops, self.value_and_grad, self.grad_, self.jvp_ = ops, value_and_grad, grad, jvp
        self.vmap_ = vmap
        self._jit, self.jit_kwargs = jit, jit_kwargs or {}

    def jit(self, f, **kw):
        return f if self._jit is None else self._jit(f, **self.jit_kwargs, **kw)

    def loss(self, params, x, y):
        return mlp_loss(self.ops, params, x, y)

    def chain(self, x):
        f = self.jit(self.value_and_grad(functools.partial(chain, self.ops)))
        x = self.put(x)
        return lambda: f(x)

    def grad(self, params, x, y):
        f = self.jit(self.value_and_grad(self.loss))
        p, x, y = self.put_tree(params), self.put(x), self.put(y)
        return lambda: f(p, x, y)

    def train(self, params, x, y):
        vg = self.value_and_grad(self.loss)

        def step(params, x, y):
            loss, grads = vg(params, x, y)
            return sgd(params, grads), loss
        # the old params are dead after the step: a jit may reuse their buffers
        f = self.jit(step, donate_argnums=(0,))
        state = [self.put_tree(params)]

        def on(x, y):
            state[0], loss = f(state[0], x, y)
            return loss
        return Step(on, lambda: state[0], lambda: state.__setitem__(0, self.put_tree(params)),
                    self.put(x), self.put(y))

    def _along(self, fn, params, v, x, y):
        """fn(params, v, x, y), jitted, on the case's data."""
        f = self.jit(fn)
        p, v, x, y = self.put_tree(params), self.put_tree(v), self.put(x), self.put(y)
        return lambda: f(p, v, x, y)

    def jvp(self, params, v, x, y):
        def jvp(params, v, x, y):
            return self.jvp_(lambda p: self.loss(p, x, y), (params,), (v,))
        return self._along(jvp, params, v, x, y)

    def hvp(self, params, v, x, y):
        g = self.grad_(self.loss)
        ops = self.ops

        def hvp(params, v, x, y):
            return self.grad_(lambda p: vdot(ops, g(p, x, y), v))(params)
        return self._along(hvp, params, v, x, y)

    def hvp_fwdrev(self, params, v, x, y):
        g = self.grad_(self.loss)

        def hvp(params, v, x, y):
            return self.jvp_(lambda p: g(p, x, y), (params,), (v,))[1]
        return self._along(hvp, params, v, x, y)

    def perex(self, params, x, y):
        g = self.grad_(functools.partial(example_loss, self.ops))
        f = self.jit(self.vmap_(g, in_axes=(None, 0, 0)))
        p, x, y = self.put_tree(params), self.put(x), self.put(y)
        return lambda: f(p, x, y)


def gpuprop_graph_option(gp):
    """The keyword of gp.jit that turns on CUDA graphs, if it has one."""
    try:
        names = inspect.signature(gp.jit).parameters
    except (TypeError, ValueError):
        return None
    for name in ("cuda_graph", "use_cuda_graph", "cuda_graphs", "graph"):
        if name in names:
            return name
    return None


def gpuprop_impls(device):
    import gpuprop as gp
    import gpuprop.numpy as gnp
    ops = Ops(tanh=gnp.tanh, sum=gnp.sum, log_softmax=gnp.log_softmax)
    block = _cupy_block if device == "cuda" else (lambda out: None)
    common = dict(ops=ops, value_and_grad=gp.value_and_grad, grad=gp.grad, jvp=gp.jvp,
                  vmap=gp.vmap, put=gp.asarray, host=gp.to_numpy, block=block)
    graph = gpuprop_graph_option(gp) if device == "cuda" else None
    impls = {"gpuprop-eager": Functional("gpuprop-eager", **common),
             "gpuprop-jit": Functional("gpuprop-jit", jit=gp.jit,
                                       jit_kwargs={graph: False} if graph else None, **common)}
    if device == "cpu":     # vmap replaced by a Python loop over the examples
        impls["gpuprop-loop"] = Functional(
            "gpuprop-loop", **dict(common, vmap=looped(gp.tree_map, gnp.stack)))
    if graph:
        impls["gpuprop-jit-graph"] = Functional("gpuprop-jit-graph", jit=gp.jit,
                                                jit_kwargs={graph: True}, **common)
    return impls, {"gpuprop": gp.__version__, "cuda_graph_option": graph}


def _cupy_block(out):
    import cupy
    cupy.cuda.get_current_stream().synchronize()


def jax_impls(device):
    import jax
    import jax.numpy as jnp
    if device == "cuda":
        if jax.default_backend() != "gpu":
            raise ImportError(f"JAX has no GPU backend here (default backend "
                              f"{jax.default_backend()!r}): install jax[cuda12]")
        jax.config.update("jax_default_matmul_precision", "highest")  # float32, no TF32
    ops = Ops(tanh=jnp.tanh, sum=jnp.sum, log_softmax=jax.nn.log_softmax)
    common = dict(ops=ops, value_and_grad=jax.value_and_grad, grad=jax.grad, jvp=jax.jvp,
                  vmap=jax.vmap, put=jax.device_put, host=np.asarray, block=jax.block_until_ready)
    impls = {"jax-jit": Functional("jax-jit", jit=jax.jit, **common)}
    if device == "cpu":
        impls["jax-eager"] = Functional("jax-eager", **common)
    for impl in impls.values():
        impl.tracemalloc = False
    return impls, {"jax": jax.__version__, "jax_backend": jax.default_backend(),
                   "jax_devices": [str(d) for d in jax.devices()]}


def autograd_impls(device):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp
    ops = Ops(tanh=anp.tanh, sum=anp.sum,
              log_softmax=lambda z: z - logsumexp(z, axis=-1, keepdims=True))
    impl = Functional("autograd", ops, autograd.value_and_grad, autograd.grad,
                      put=np.asarray, host=np.asarray)
    version = getattr(autograd, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version
        version = dist_version("autograd")
    return {"autograd": impl}, {"autograd": version}


# ---- PyTorch -------------------------------------------------------------------
class Torch(Impl):
    tracemalloc = False

    def __init__(self, torch, device):
        self.torch, self.device = torch, device
        block = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        super().__init__("torch", lambda a: torch.tensor(a, device=device),
                         lambda t: t.detach().cpu().numpy(), lambda out: block())
        self.ops = Ops(tanh=torch.tanh, sum=torch.sum,
                       log_softmax=lambda z: torch.log_softmax(z, dim=-1))

    def leaves(self, params):
        return [self.put(a).requires_grad_() for layer in params for a in layer]

    def chain(self, x):
        x = self.put(x).requires_grad_()

        def run():
            value = chain(self.ops, x)
            return value, self.torch.autograd.grad(value, x)[0]
        return run

    def _loss_grads(self, flat, x, y, create_graph=False):
        loss = mlp_loss(self.ops, as_pairs(flat), x, y)
        return loss, self.torch.autograd.grad(loss, flat, create_graph=create_graph)

    def grad(self, params, x, y):
        flat, x, y = self.leaves(params), self.put(x), self.put(y)

        def run():
            loss, g = self._loss_grads(flat, x, y)
            return loss, as_pairs(g)
        return run

    def train(self, params, x, y):
        flat = self.leaves(params)

        def on(x, y):
            loss, grads = self._loss_grads(flat, x, y)
            with self.torch.no_grad():
                for p, g in zip(flat, grads):
                    p.sub_(g, alpha=LR)
            return loss.detach()
        def reset():
            flat[:] = self.leaves(params)
        return Step(on, lambda: as_pairs(flat), reset, self.put(x), self.put(y))

    def hvp(self, params, v, x, y):
        flat, x, y = self.leaves(params), self.put(x), self.put(y)
        v = [self.put(a) for layer in v for a in layer]

        def run():
            _, g = self._loss_grads(flat, x, y, create_graph=True)
            dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
            return as_pairs(self.torch.autograd.grad(dot, flat))
        return run


def torch_impls(device, threads):
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        raise ImportError("PyTorch here has no CUDA (torch.cuda.is_available() is False)")
    if device == "cpu":
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    pool = re.search(r"mkl_get_max_threads\(\) : (\d+)", torch.__config__.parallel_info())
    return {"torch": Torch(torch, device)}, {
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_blas": f"{blas.group(1) if blas else '?'} inside torch "
                      f"({pool.group(1) if pool else '?'} thr)"}


def numpy_impls(device):
    if device == "cuda":
        import cupy
        return {"cupy": Handwritten("cupy", cupy, cupy.asarray, cupy.asnumpy, _cupy_block)}, {
            "cupy": cupy.__version__, "numpy": np.__version__}
    return {"numpy": Handwritten("numpy", np, np.asarray, np.asarray)}, {"numpy": np.__version__}


def load(lib, device, threads):
    """({variant: Impl}, {versions and settings}); ImportError when the
    library (or its device support) is missing."""
    if lib == "numpy":
        return numpy_impls(device)
    if lib == "gpuprop":
        return gpuprop_impls(device)
    if lib == "jax":
        return jax_impls(device)
    if lib == "autograd":
        return autograd_impls(device)
    if lib == "torch":
        return torch_impls(device, threads)
    raise ValueError(f"unknown library {lib!r}")
