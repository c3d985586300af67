"""The baseline: backpropagation written out by hand, as in a textbook.

Every function takes the array namespace `xp` first (numpy or cupy), so the
same code is the denominator of every CPU ratio and the hand-written CuPy
baseline of the GPU run.  Parameters are a list of (W, b) pairs, one per
layer; hidden layers are tanh, the last is linear, and the loss is the mean
softmax cross-entropy against one-hot labels `y`:

    h_0 = x,  h_i = tanh(h_{i-1} W_i + b_i),  logits = h_{L-1} W_L + b_L
    J = -(1/B) sum(y * log_softmax(logits))

The update is plain SGD done in place, W <- W - lr dW, as a textbook does.
"""

# The elementwise chain: op i is CHAIN_OPS[i % 3], with these constants.
CHAIN_OPS = ("multiply", "add", "tanh")
CHAIN_MUL = 1.05
CHAIN_ADD = -0.01


def forward(xp, params, x):
    """The inputs of every layer [h_0 = x, h_1, ...] and the logits."""
    hs = [x]
    for W, b in params[:-1]:
        hs.append(xp.tanh(hs[-1] @ W + b))
    W, b = params[-1]
    return hs, hs[-1] @ W + b


def softmax_xent(xp, logits, y):
    """(loss, softmax probabilities) of the mean cross-entropy."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = xp.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = -(y * (shifted - xp.log(s))).sum() / logits.shape[0]
    return loss, e / s


def loss_and_grads(xp, params, x, y):
    """(loss, [(dW, db), ...]): the chain rule, layer by layer, backwards."""
    hs, logits = forward(xp, params, x)
    loss, p = softmax_xent(xp, logits, y)
    d = (p - y) / x.shape[0]                     # dJ/dlogits
    grads = [None] * len(params)
    for i in reversed(range(len(params))):
        grads[i] = (hs[i].T @ d, d.sum(axis=0))
        if i:                                    # through W_i, then tanh'
            d = (d @ params[i][0].T) * (1 - hs[i] * hs[i])
    return loss, grads


def sgd_(params, grads, lr):
    """W <- W - lr dW, in place."""
    for (W, b), (dW, db) in zip(params, grads):
        W -= lr * dW
        b -= lr * db


def train_step(xp, params, x, y, lr):
    """One SGD step in place; returns the loss before it."""
    loss, grads = loss_and_grads(xp, params, x, y)
    sgd_(params, grads, lr)
    return loss


def hvp(xp, params, x, y, v):
    """Hessian of the loss times v (a list of (VW, Vb) like params), by
    Pearlmutter's R-operator: the forward and backward passes once more,
    each quantity q replaced by its directional derivative R{q} along v."""
    hs, logits = forward(xp, params, x)
    _, p = softmax_xent(xp, logits, y)
    n = len(params)
    rhs = [None]                                 # R{h_i}; R{x} = 0
    for i, ((W, _), (VW, Vb)) in enumerate(zip(params, v)):
        rz = hs[i] @ VW + Vb
        if i:
            rz = rz + rhs[i] @ W
        if i < n - 1:
            rhs.append((1 - hs[i + 1] * hs[i + 1]) * rz)
    rlogits = rz
    d = (p - y) / x.shape[0]
    rd = p * (rlogits - (p * rlogits).sum(axis=1, keepdims=True)) / x.shape[0]
    out = [None] * n
    for i in reversed(range(n)):
        rdW = hs[i].T @ rd
        if i:
            rdW = rdW + rhs[i].T @ d
        out[i] = (rdW, rd.sum(axis=0))
        if i:
            W, VW, h = params[i][0], v[i][0], hs[i]
            dh = d @ W.T
            rdh = rd @ W.T + d @ VW.T
            tp = 1 - h * h                       # tanh' at layer i
            d, rd = dh * tp, rdh * tp - 2 * dh * h * rhs[i]
    return out


def chain_value_and_grad(xp, x, n):
    """sum(f(x)) and its gradient for the chain of n elementwise ops."""
    ys = []
    for i in range(n):
        op = CHAIN_OPS[i % 3]
        if op == "multiply":
            x = x * CHAIN_MUL
        elif op == "add":
            x = x + CHAIN_ADD
        else:
            x = xp.tanh(x)
            ys.append(x)
    g = xp.ones_like(x)
    for i in reversed(range(n)):
        op = CHAIN_OPS[i % 3]
        if op == "multiply":
            g = g * CHAIN_MUL
        elif op == "tanh":
            y = ys.pop()
            g = g * (1 - y * y)
    return x.sum(), g


def matmul_shapes(sizes, batch):
    """The (m, k) @ (k, n) products of one training step of an MLP: three
    per layer (forward, dW, and dh except at the first layer)."""
    out = []
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        out.append(((batch, k), (k, n)))             # h W
        out.append(((k, batch), (batch, n)))         # h^T d
        if i:
            out.append(((batch, n), (n, k)))         # d W^T
    return out
