"""Neural networks as pure functions of a parameter pytree: the MLP, its
initialisers and activations, losses and the accuracy metric.

    model = MLP([784, 256, 10], activation="relu", init="he", seed=0)
    params = model.init()                  # [{"W": (784, 256), "b": (256,)}, ...]
    logits = model.apply(params, x)        # x @ W + b, then the activation
    logits = model.apply(params, x, key=gpuprop.random.key(0), dropout=0.5)   # training
    loss = softmax_cross_entropy(logits, labels)

Parameters are drawn on the host with NumPy's Generator and then placed on
the active device, so one seed gives the same network on every backend.
A layer computes z = x @ W + b for a batch of row vectors x (the note's
z = W x + b for column vectors, with W stored transposed) and x' = h(z);
the last layer applies no activation (it gives logits or predictions).
"""
import numpy as np

from . import numpy as gnp
from . import random, serialization
from .core import Tracer
from .devices import asarray
from .optim import sum_of_squares
from .tree import tree_structure


# ---- activations ------------------------------------------------------------
def gelu(x):
    """GELU in its tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    (JAX's default approximate=True; within 1e-3 of the erf form)."""
    inner = gnp.multiply(np.sqrt(2.0 / np.pi), gnp.add(x, gnp.multiply(0.044715, x * x * x)))
    return gnp.multiply(gnp.multiply(0.5, x), gnp.add(1.0, gnp.tanh(inner)))


def identity(x):
    return x


ACTIVATIONS = {"relu": gnp.relu, "tanh": gnp.tanh, "sigmoid": gnp.sigmoid,
               "gelu": gelu, "softplus": gnp.softplus, "identity": identity}


def get_activation(activation):
    """An activation by name (see ACTIVATIONS), or a callable as it is."""
    if callable(activation):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"gpuprop.nn: unknown activation {activation!r}; choose one of "
                         f"{', '.join(sorted(ACTIVATIONS))}, or pass a function")
    return ACTIVATIONS[activation]


# ---- initialisers -----------------------------------------------------------
# name -> (distribution, variance numerator, fan): the weights have variance
# scale / fan, fan being fan_in or the mean of fan_in and fan_out.
_INITS = {
    "he_normal": ("normal", 2.0, "in"), "he_uniform": ("uniform", 2.0, "in"),
    "xavier_normal": ("normal", 1.0, "avg"), "xavier_uniform": ("uniform", 1.0, "avg"),
    "lecun_normal": ("normal", 1.0, "in"), "lecun_uniform": ("uniform", 1.0, "in"),
}
_ALIASES = {"he": "he_normal", "kaiming": "he_normal", "kaiming_normal": "he_normal",
            "kaiming_uniform": "he_uniform", "xavier": "xavier_normal",
            "glorot": "xavier_normal", "glorot_normal": "xavier_normal",
            "glorot_uniform": "xavier_uniform", "lecun": "lecun_normal"}
INITIALIZERS = tuple(sorted(_INITS) + sorted(_ALIASES))


def init_weight(rng, fan_in, fan_out, init="he", dtype=np.float32):
    """A host (NumPy) weight matrix of shape (fan_in, fan_out) drawn from
    `rng` (a numpy.random.Generator): normal with std sqrt(scale / fan), or
    uniform on +-sqrt(3 scale / fan), which has the same variance; scale is
    2 for he/kaiming, 1 for xavier/glorot (fan = (fan_in + fan_out) / 2) and
    lecun (fan = fan_in).  Bare names (he, xavier, glorot, lecun) are normal."""
    name = _ALIASES.get(init, init)
    if name not in _INITS:
        raise ValueError(f"gpuprop.nn: unknown init {init!r}; choose one of "
                         f"{', '.join(INITIALIZERS)}")
    dist, scale, fan = _INITS[name]
    var = scale / (fan_in if fan == "in" else (fan_in + fan_out) / 2.0)
    if dist == "normal":
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(var)
    else:
        limit = np.sqrt(3.0 * var)
        w = rng.uniform(-limit, limit, (fan_in, fan_out))
    return w.astype(dtype)


# ---- dropout ----------------------------------------------------------------
def check_rate(name, rate):
    """`rate` if it is a dropout rate, 0 <= rate < 1; else a ValueError naming `name`."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) \
            or not 0 <= rate < 1:
        raise ValueError(f"{name} must be a dropout rate with 0 <= rate < 1 (the fraction "
                         f"of units zeroed), got {rate!r}")
    return float(rate)


def dropout(key, rate, x):
    """Inverted dropout: each entry of x zeroed with probability `rate`,
    the others scaled by 1 / (1 - rate) (so the expectation is x); the mask
    comes from `key` (gpuprop.random), so the same key drops the same units
    on every backend and under jit.  rate 0 returns x."""
    rate = check_rate("nn.dropout: rate", rate)
    if rate == 0:
        return x
    keep = random.bernoulli(key, 1.0 - rate, gnp.shape(x))
    return gnp.where(keep, gnp.divide(x, 1.0 - rate), 0.0)


# ---- the MLP ----------------------------------------------------------------
def mlp_forward(params, x, activation="relu", key=None, dropout_rate=0.0):
    """The MLP's output for inputs x of shape (batch, in): each layer
    x @ W + b, the activation between layers, none after the last.  With a
    key, dropout at `dropout_rate` after each hidden activation (a key per
    layer, folded in from `key`)."""
    h_fn = get_activation(activation)
    if not params:
        raise ValueError("mlp_forward: params is empty; build them with MLP(sizes).init()")
    w0 = params[0]["W"]
    if len(x.shape) < 1 or x.shape[-1] != w0.shape[0]:
        raise ValueError(f"mlp_forward: inputs of shape {tuple(x.shape)} do not fit the "
                         f"first layer, whose W has shape {tuple(w0.shape)}: the last axis "
                         f"of x must have {w0.shape[0]} features (reshape x, e.g. "
                         f"x.reshape(len(x), -1), or change the MLP's sizes[0])")
    rate = check_rate("mlp_forward: dropout", dropout_rate)
    for i, layer in enumerate(params):
        x = gnp.add(gnp.matmul(x, layer["W"]), layer["b"])
        if i < len(params) - 1:
            x = h_fn(x)
            if key is not None and rate:
                x = dropout(random.fold_in(key, i), rate, x)
    return x


class MLP:
    """A multilayer perceptron over `sizes` = [inputs, hidden..., outputs].

    init(seed=None) -> params (a list of {"W", "b"} per layer, on the active
    device); apply(params, x) -> outputs, a pure function (calling the model
    is the same); predict(params, x) -> class indices.  `activation` is a
    name from ACTIVATIONS or a function; `init` a name from INITIALIZERS;
    biases start at zero.

        model.save("model.npz", params, metrics={...})
        model, params = MLP.load("model.npz")
    """

    def __init__(self, sizes, activation="relu", init="he", seed=0, dtype=np.float32):
        sizes = list(sizes)
        if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
            raise ValueError(f"MLP: sizes must be at least two positive integers "
                             f"[inputs, ..., outputs], got {sizes}")
        if np.dtype(dtype).kind != "f":
            raise TypeError(f"MLP: dtype must be a floating type (float32 or float64), "
                            f"got {np.dtype(dtype)}")
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self._h = get_activation(activation)
        init_weight(np.random.default_rng(0), 1, 1, init)   # refuse a bad name now
        self.init_name = init
        self.seed = seed
        self.dtype = np.dtype(dtype)

    def init(self, seed=None):
        """Fresh parameters on the active device; the same seed gives the
        same numbers on every backend."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        return [{"W": asarray(init_weight(rng, m, n, self.init_name, self.dtype)),
                 "b": asarray(np.zeros(n, self.dtype))}
                for m, n in zip(self.sizes[:-1], self.sizes[1:])]

    def apply(self, params, x, key=None, dropout=0.0):
        """The outputs; with a key (gpuprop.random) and dropout > 0, inverted
        dropout after each hidden activation (training); without, none."""
        return mlp_forward(params, x, self._h, key, dropout)

    __call__ = apply

    def predict(self, params, x):
        """The class of each row of x (host or device): the largest output."""
        return gnp.argmax(self.apply(params, asarray(x, self.dtype)), axis=-1)

    def config(self):
        """The constructor's arguments as a JSON-able dict."""
        if not isinstance(self.activation, str):
            raise TypeError(f"MLP.config: the activation {self.activation!r} is a function; "
                            f"only a model with a named activation (one of "
                            f"{', '.join(sorted(ACTIVATIONS))}) can be saved")
        return {"sizes": self.sizes, "activation": self.activation, "init": self.init_name,
                "seed": self.seed, "dtype": self.dtype.name}

    def save(self, path, params, **metadata):
        """Write params, this model's config and `metadata` (JSON-able:
        metrics, the optimizer's name...) atomically to `path` (gp.save)."""
        serialization.save(path, params, {"model": self.config(), **metadata})

    @classmethod
    def load(cls, path):
        """(model, params) from a file written by save; the parameters must
        have the shapes the stored config implies."""
        meta = serialization.load_metadata(path)
        if not isinstance(meta, dict) or "model" not in meta:
            raise serialization.FileFormatError(
                f"MLP.load: {path} holds no MLP config (it was written by gp.save, not "
                f"MLP.save); read its arrays with gp.load")
        model = cls(**meta["model"])
        params = serialization.load(path)
        want = [((m, n), (n,)) for m, n in zip(model.sizes[:-1], model.sizes[1:])]
        try:
            got = [(tuple(layer["W"].shape), tuple(layer["b"].shape)) for layer in params]
        except (KeyError, TypeError):       # not a list of {"W", "b"}
            got = str(tree_structure(params))
        if got != want:
            raise serialization.FileFormatError(
                f"MLP.load: {path} holds parameters {got}, but its config {model!r} "
                f"implies layers (W, b) of shapes {want}; the file is damaged")
        return model, params

    def __repr__(self):
        return (f"MLP({self.sizes}, activation={self.activation!r}, "
                f"init={self.init_name!r}, seed={self.seed})")


# ---- losses -----------------------------------------------------------------
def _same_shape(name, pred, target):
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{name}: predictions of shape {tuple(pred.shape)} and targets "
                         f"of shape {tuple(target.shape)} differ; they must match exactly "
                         f"(no broadcasting), e.g. reshape targets with y.reshape(-1, 1)")


def mse(pred, target):
    """Mean squared error, averaged over every element."""
    _same_shape("mse", pred, target)
    d = gnp.subtract(pred, target)
    return gnp.mean(gnp.multiply(d, d))


def _is_int(x):
    return np.dtype(x.dtype).kind in "iu"


def _label_mask(labels, num_classes):
    return gnp.equal(gnp.expand_dims(labels, -1), gnp.arange(num_classes))


def one_hot(labels, num_classes, dtype=np.float32):
    """Integer labels of shape S as a (S + (num_classes,)) array of 0/1."""
    return gnp.astype(_label_mask(labels, num_classes), dtype)


def _check_label_range(labels, num_classes):
    """Labels outside [0, num_classes) would select no class and add 0 to the
    loss: refused when their values are known (eagerly, not under jit)."""
    if isinstance(labels, Tracer) or not labels.size:
        return
    lo, hi = int(gnp.min(labels)), int(gnp.max(labels))
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {num_classes}) "
                         f"for logits of {num_classes} classes, got labels from {lo} to "
                         f"{hi}; check the dataset's labels or the size of the last layer")


def softmax_cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[label].  `labels` are
    integers of shape logits.shape[:-1], or one-hot (or soft) targets of the
    shape of logits.  Stable for logits of any size (log_softmax)."""
    logp = gnp.log_softmax(logits, axis=-1)
    if _is_int(labels):
        if tuple(labels.shape) != tuple(logits.shape[:-1]):
            raise ValueError(f"softmax_cross_entropy: integer labels of shape "
                             f"{tuple(labels.shape)} for logits of shape "
                             f"{tuple(logits.shape)}; the labels' shape must be the "
                             f"logits' without the class axis, {tuple(logits.shape[:-1])}")
        _check_label_range(labels, logits.shape[-1])
        # where, not one_hot * logp: safe for logits of -inf
        picked = gnp.where(_label_mask(labels, logits.shape[-1]), logp, 0.0)
    else:
        _same_shape("softmax_cross_entropy", logits, labels)
        picked = gnp.where(gnp.equal(labels, 0), 0.0, gnp.multiply(labels, logp))
    return gnp.negative(gnp.mean(gnp.sum(picked, axis=-1)))


def binary_cross_entropy_with_logits(logits, targets):
    """Mean of -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)), computed as
    softplus(x) - x t, which is stable for any x.  Targets in [0, 1]."""
    _same_shape("binary_cross_entropy_with_logits", logits, targets)
    targets = gnp.astype(targets, logits.dtype)
    return gnp.mean(gnp.subtract(gnp.softplus(logits), gnp.multiply(logits, targets)))


def l2_penalty(params):
    """0.5 * the sum of squares of every leaf of `params` (its gradient is
    the parameters themselves).  For weights only, pass them:
    l2_penalty([layer["W"] for layer in params])."""
    return gnp.multiply(0.5, sum_of_squares(params))


LOSSES = {"cross_entropy": softmax_cross_entropy, "mse": mse,
          "binary_cross_entropy": binary_cross_entropy_with_logits}


def correct(logits, labels):
    """Per row, whether the largest logit is at the label (a bool array);
    labels are integers of shape logits.shape[:-1], or one-hot targets."""
    pred = gnp.argmax(logits, axis=-1)
    if not _is_int(labels):
        _same_shape("accuracy", logits, labels)
        labels = gnp.argmax(labels, axis=-1)
    elif tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"accuracy: labels of shape {tuple(labels.shape)} for logits of "
                         f"shape {tuple(logits.shape)}; expected {tuple(logits.shape[:-1])}")
    return gnp.equal(pred, labels)


def accuracy(logits, labels):
    """The fraction of rows whose largest logit is at the label, as float32."""
    return gnp.mean(gnp.astype(correct(logits, labels), np.float32))
