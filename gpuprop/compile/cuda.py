"""CUDA: each fused group becomes one generated cupy.ElementwiseKernel (a
sum with the group that feeds it, one cupy.ReductionKernel), compiled once by
CuPy and cached by its source (`FUSER`); and an already compiled program can
be captured once as a CUDA graph and replayed (`as_graph`).
"""
import types

from .fusion import Fuser, ReduceKernel, fusible, kernels


def build(kernels):
    """An object with one callable per kernel name: inputs -> list of outputs."""
    import cupy
    calls = types.SimpleNamespace()
    for k in kernels:
        if isinstance(k, ReduceKernel):
            rk = cupy.ReductionKernel(**k.cuda_params())
            axis, keepdims = k.reduction.params["axis"], k.reduction.params["keepdims"]

            def reduce_call(*ins, rk=rk, axis=axis, keepdims=keepdims):
                return [rk(*ins, axis=axis, keepdims=keepdims)]
            setattr(calls, k.name, reduce_call)
            continue
        in_params, out_params, body, name = k.cuda_params()
        ek = cupy.ElementwiseKernel(in_params, out_params, body, name)
        specs = [(k.shape, v.aval.dtype) for v in k.outputs]

        def call(*ins, ek=ek, specs=specs):
            outs = [cupy.empty(shape, dtype) for shape, dtype in specs]
            ek(*ins, *outs)     # inputs broadcast to the outputs' shape
            return outs
        setattr(calls, name, call)
    return calls


# every fusible equation fuses on the GPU; sums take their map
FUSER = Fuser(fusible=fusible, accepts=lambda kernel: True, build=build, fuse_reductions=True)


def as_graph(run):
    """`run` (compiled with keep=True: it frees nothing and also returns its
    intermediates) captured once as a CUDA graph and replayed on each call:
    the inputs are copied into fixed buffers, the graph is launched, and the
    outputs are copied out (the graph writes the same memory every time)."""
    import cupy
    state = {}

    def call(leaves):
        if "graph" not in state:
            state["stream"] = stream = cupy.cuda.Stream(non_blocking=True)
            with stream:
                state["inputs"] = [cupy.array(x, copy=True) for x in leaves]
                run(state["inputs"])         # compiles kernels, fills the memory pool
                stream.synchronize()
                stream.begin_capture()
                try:
                    outs, made = run(state["inputs"])
                finally:
                    state["graph"] = stream.end_capture()
                state["outs"], state["made"] = outs, made   # memory the graph uses
        stream = state["stream"]
        with stream:
            for buf, x in zip(state["inputs"], leaves):
                cupy.copyto(buf, x)
            state["graph"].launch(stream)
            result = [o.copy() if hasattr(o, "copy") else o for o in state["outs"]]
        stream.synchronize()
        return result

    call.source, call.kernels, call.launches = run.source, run.kernels, 1
    return call


def kernel_sources(prog, reductions=False):
    """The CUDA source of every fused kernel of a program (for tests and nvcc),
    once per kernel name: two equal groups give one kernel, as in the executor.
    With `reductions`, as the executor builds them (sums merged with their map)."""
    return list(dict.fromkeys(k.cuda_source() for _, k in kernels(prog, reductions=reductions)
                              if k is not None and k.outputs))
