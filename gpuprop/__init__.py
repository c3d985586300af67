"""gpuprop: JAX-style automatic differentiation on NumPy (CPU) or CuPy (CUDA).

    import gpuprop as gp, gpuprop.numpy as gnp
    df = gp.grad(lambda x: gnp.sum(gnp.tanh(x) ** 2))
"""
from .backend import (get_backend, set_backend, use_backend, register_backend,
                      backend_names, Backend, BackendMismatchError)
from .core import (UnexpectedTracerError, ShapedArray, NaNError, debug_nans,
                   TracerControlFlowError)
from .tree import (tree_flatten, tree_unflatten, tree_map, tree_leaves,
                   tree_structure, register_pytree_node, register_pytree_node_class)
from .autodiff import (grad, value_and_grad, vjp, jacobian, jacrev, custom_vjp, checkpoint,
                       remat)
from .forward import jvp, jacfwd, hessian, custom_jvp, float0
from .batching import vmap
from .devices import asarray, to_numpy, device_put
from .jit import jit, make_ir, linearize
from .numpy import stop_gradient
from .serialization import save, load
from .flatten_util import ravel_pytree
from . import numpy, nn, optim, data, scipy, lax, random
from . import distributed

__version__ = "0.1.0"
