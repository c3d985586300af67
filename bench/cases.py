"""What is measured: the workloads, their cases (sizes), the variants that run
them, and the goals for gpuprop (ratio to hand-written NumPy, lower is better)."""
import os
from dataclasses import dataclass, field

SIZES = {"small": ((64, 32, 32, 10), 32),
         "medium": ((784, 256, 256, 10), 128),
         "large": ((1024, 2048, 2048, 10), 512)}
LR = 0.05
CHAIN_LENGTH = 100
CHAIN_SHAPE = (4,)
FASHION_BATCH = 128
QUICK_EPOCH_SAMPLES = 2048      # --quick: 16 batches of the epoch

WORKLOADS = {
    "chain": "chain of 100 elementwise ops (multiply, add, tanh) on f32[4]: value and gradient",
    "train": "MLP train step: forward, softmax cross-entropy, backward, SGD update",
    "grad": "MLP loss and gradients (no update)",
    "jvp": "directional derivative of the MLP's loss along a tangent of all its parameters",
    "hvp": "Hessian-vector product of the small MLP's loss: grad of grad, and jvp of grad",
    "perex": "per-example gradients of the MLP, vmap(grad(loss of one example))",
    "memory": "peak memory of one training step, each library in its own process",
    "epoch": "one Fashion-MNIST epoch, 784-256-256-10, batch 128 (CPU time)",
}

# variant -> (library it needs, description); the first is the denominator
VARIANTS = {
    "numpy": ("numpy", "hand-written NumPy backprop (the CPU baseline)"),
    "gpuprop-eager": ("gpuprop", "gpuprop value_and_grad, SGD by tree_map"),
    "gpuprop-jit": ("gpuprop", "gp.jit of the whole step"),
    "gpuprop-loop": ("gpuprop", "gp.grad in a Python loop over the examples (perex only)"),
    "torch": ("torch", "PyTorch eager: torch.autograd.grad, in-place SGD"),
    "jax-jit": ("jax", "jax.jit of the whole step"),
    "jax-eager": ("jax", "JAX without jit"),
    "autograd": ("autograd", "HIPS autograd"),
}
VARIANTS_GPU = {
    "cupy": ("numpy", "hand-written CuPy backprop (the GPU baseline)"),
    "gpuprop-eager": VARIANTS["gpuprop-eager"],
    "gpuprop-jit": VARIANTS["gpuprop-jit"],
    "gpuprop-jit-graph": ("gpuprop", "gp.jit with CUDA graphs (when gpuprop offers it)"),
    "torch": ("torch", "PyTorch CUDA eager"),
    "jax-jit": ("jax", "jax.jit on the GPU (matmul precision 'highest')"),
}
ALL_VARIANTS = {**VARIANTS, **VARIANTS_GPU}
REFERENCE_ROWS = {"matmuls-only": "the step's matrix products alone, on the baseline's namespace"}
BASELINE = {"cpu": "numpy", "cuda": "cupy"}
PEER_LIBS = ("torch", "jax", "autograd")
FORWARD_MODE_LIBS = ("numpy", "gpuprop", "jax")     # what a forward-mode case runs
VMAP_LIBS = FORWARD_MODE_LIBS                       # and a per-example case: those with vmap
OPT_IN_VARIANTS = ("gpuprop-loop",)     # run only in the cases that name them


@dataclass(frozen=True)
class Case:
    key: str                 # stable id, e.g. "train/medium"
    workload: str
    label: str               # what the table shows
    sizes: tuple = ()
    batch: int = 0
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def runs(self, variant):
        """Whether this case runs the variant: forward-mode and per-example cases
        only those of their libraries; an OPT_IN_VARIANTS one only where the
        case names it in extra["variants"]."""
        lib = ALL_VARIANTS[variant][0]
        return lib in self.extra.get("libs", (lib,)) and (
            variant not in OPT_IN_VARIANTS or variant in self.extra.get("variants", ()))


def mlp_label(size):
    sizes, batch = SIZES[size]
    return f"{'-'.join(map(str, sizes))} b{batch}"


def cases(workloads, quick):
    """The cases of the chosen workloads; --quick keeps the small sizes."""
    mlp_sizes = ["small"] if quick else ["small", "medium", "large"]
    mem_size = "small" if quick else "large"
    out = []
    for w in workloads:
        if w == "chain":
            out.append(Case("chain", w, f"chain {CHAIN_LENGTH} ops fwd+bwd f32{list(CHAIN_SHAPE)}"))
        elif w in ("train", "grad"):
            out += [Case(f"{w}/{s}", w, f"{w} {mlp_label(s)}", *SIZES[s]) for s in mlp_sizes]
        elif w == "jvp":
            size = "small" if quick else "medium"
            out.append(Case(f"jvp/{size}", w, f"jvp {mlp_label(size)}", *SIZES[size],
                            extra={"libs": FORWARD_MODE_LIBS}))
        elif w == "hvp":
            out.append(Case("hvp/small", w, f"hvp grad(grad) {mlp_label('small')}",
                            *SIZES["small"]))
            out.append(Case("hvp-fwdrev/small", w, f"hvp jvp(grad) {mlp_label('small')}",
                            *SIZES["small"],
                            extra={"libs": FORWARD_MODE_LIBS, "forward_over_reverse": True}))
        elif w == "perex":
            sizes = mlp_sizes[:2]       # the Python loop beside vmap at the larger one
            out += [Case(f"perex/{s}", w, f"perex {mlp_label(s)}", *SIZES[s],
                         extra={"libs": VMAP_LIBS,
                                "variants": ("gpuprop-loop",) if s == sizes[-1] else ()})
                    for s in sizes]
        elif w == "memory":
            out.append(Case(f"memory/{mem_size}", w, f"peak mem {mlp_label(mem_size)}",
                            *SIZES[mem_size]))
        elif w == "epoch":
            out.append(Case("epoch", w, f"epoch {fashion_source()} {mlp_label('medium')}",
                            *SIZES["medium"],
                            extra={"limit": QUICK_EPOCH_SAMPLES if quick else None}))
    return out


def fashion_source():
    from .data import FASHION_DIR
    return "fashion-mnist" if os.path.isdir(FASHION_DIR) else "synthetic"


# (case key, variant) -> the largest ratio to hand-written NumPy that meets the goal
GOALS = {
    ("chain", "gpuprop-eager"): 2.5,
    ("chain", "gpuprop-jit"): 0.5,
    ("train/medium", "gpuprop-eager"): 1.1,
    ("train/medium", "gpuprop-jit"): 0.95,
    ("train/small", "gpuprop-jit"): 0.8,
    ("train/large", "gpuprop-jit"): 1.0,
    ("jvp/medium", "gpuprop-eager"): 1.3,
    ("jvp/medium", "gpuprop-jit"): 1.0,
    ("hvp/small", "gpuprop-jit"): 0.75,
    ("hvp-fwdrev/small", "gpuprop-jit"): 0.7,
    ("perex/small", "gpuprop-jit"): 1.1,
    ("perex/medium", "gpuprop-jit"): 1.1,
    ("memory/large", "gpuprop-eager"): 1.2,
    ("memory/large", "gpuprop-jit"): 1.2,
    ("epoch", "gpuprop-eager"): 1.1,
    ("epoch", "gpuprop-jit"): 1.1,
}
# (case key, variant) -> (other variant, the least ratio of variant's median to
# the other's that meets the goal): how much faster the other must be
SPEEDUP_GOALS = {
    ("perex/medium", "gpuprop-loop"): ("gpuprop-eager", 10.0),
}
