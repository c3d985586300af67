"""Executors for staged programs: passes (passes.py), generated straight-line
code with a memory plan (executor.py), and fusion of elementwise groups
(fusion.py) into C++ kernels on the CPU (cpu.py) or CuPy kernels and CUDA
graphs on a GPU (cuda.py); on NumPy, whole programs compiled to native code
(native.py).  `compile_program` is the one entry point; which fuser a backend
gets is decided here, in `fuser_for`, and nowhere else."""
import os

import numpy as np

from .. import backend, core
from . import executor


def fuser_for(be):
    """The fusion.Fuser for backend `be`: its own, else its device's default
    (C++ kernels on the CPU when a compiler is present, CuPy kernels on
    CUDA); None when GPUPROP_FUSION=0 or NaN debugging checks each equation."""
    if os.environ.get("GPUPROP_FUSION", "").strip() == "0" or core.debug.nans:
        return None
    if be.fuser is not None:
        return be.fuser
    if be.device == "cuda":
        from . import cuda
        return cuda.FUSER
    from . import cpu
    return cpu.FUSER if cpu.compiler() else None


def native_for(be):
    """Whether programs on `be` compile whole to native code (native.py): on
    NumPy with the default CPU fuser, unless GPUPROP_NATIVE=0 (which keeps
    the NumPy executor with C++ kernels)."""
    if be.xp is not np or os.environ.get("GPUPROP_NATIVE", "").strip() == "0":
        return False
    from . import cpu
    return fuser_for(be) is cpu.FUSER


def graph_capture_for(be):
    """How `be` replays a compiled program as one graph (None: it cannot)."""
    if be.device == "cuda":
        from . import cuda
        return cuda.as_graph
    return None


def compile_program(prog, donate=(), cuda_graph=False):
    """A function (list of input arrays) -> list of outputs, for the active
    backend.  With `cuda_graph` on a CUDA backend, the compiled program is
    captured as a CUDA graph (elsewhere the flag changes nothing)."""
    be = backend.current()
    capture = graph_capture_for(be) if cuda_graph else None
    if capture is None and native_for(be):
        from . import native
        run = native.generate(prog, donate=donate)
        if run is not None:
            return run
    run = executor.generate(prog, be.xp, donate=donate, fuser=fuser_for(be),
                            keep=capture is not None)
    return capture(run) if capture is not None else run
