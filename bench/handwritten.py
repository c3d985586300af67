"""The baseline: backpropagation written out by hand, as in a textbook.

Every function takes the array namespace `xp` first (numpy or cupy), so the
same code is the denominator of every CPU ratio and the hand-written CuPy
baseline of the GPU run.  Parameters are a list of (W, b) pairs, one per
layer; hidden layers are tanh, the last is linear, and the loss is the mean
softmax cross-entropy against one-hot labels `y`:

    h_0 = x,  h_i = tanh(h_{i-1} W_i + b_i),  logits = h_{L-1} W_L + b_L
    J = -(1/B) sum(y * log_softmax(logits))

The update is plain SGD done in place, W <- W - lr dW, as a textbook does.
Forward mode is written out the same way: each quantity's tangent along a
direction v (shaped like params) is computed beside it (`jvp`), and the
R-operator runs it over the backward pass too (`hvp`).  Per-example gradients
(`per_example_grads`) are the same backward pass with each layer's gradient
kept per example (outer products) instead of summed over the batch.
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


def backward(params, hs, d, layer_grads):
    """[(dW, db), ...]: the chain rule, layer by layer, backwards from d, the
    gradient at the logits; layer_grads(h, d) gives a layer's (dW, db) from
    its input h and the gradient d at its output."""
    grads = [None] * len(params)
    for i in reversed(range(len(params))):
        grads[i] = layer_grads(hs[i], d)
        if i:                                    # through W_i, then tanh'
            d = (d @ params[i][0].T) * (1 - hs[i] * hs[i])
    return grads


def loss_and_grads(xp, params, x, y):
    """(loss, [(dW, db), ...]) of the mean loss over the batch."""
    hs, logits = forward(xp, params, x)
    loss, p = softmax_xent(xp, logits, y)
    d = (p - y) / x.shape[0]                     # dJ/dlogits
    return loss, backward(params, hs, d, lambda h, d: (h.T @ d, d.sum(axis=0)))


def per_example_grads(xp, params, x, y):
    """[(dW, db), ...], each f32[batch, *shape]: the gradient of every
    example's own loss -sum(y_b * log_softmax(logits_b)), from one batched
    forward and backward pass.  Example b's delta at a layer is row b of d,
    so its dW is the outer product h_b d_b^T and its db is d_b."""
    hs, logits = forward(xp, params, x)
    _, p = softmax_xent(xp, logits, y)
    return backward(params, hs, p - y,
                    lambda h, d: (xp.einsum("bi,bj->bij", h, d), d))


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


def forward_and_tangents(xp, params, x, v):
    """The forward pass and, beside it, the tangent of every quantity along v
    (a list of (VW, Vb) like params; x has none): the inputs of every layer
    [h_0 = x, h_1, ...], their tangents [None, dh_1, ...], the logits and
    theirs.  Layer by layer: z = h W + b, dz = h VW + Vb + dh W (no dh at the
    first layer), h' = tanh(z), dh' = (1 - h'^2) dz."""
    hs, dhs = [x], [None]
    for i, ((W, b), (VW, Vb)) in enumerate(zip(params, v)):
        z = hs[-1] @ W + b
        dz = hs[-1] @ VW + Vb
        if i:
            dz = dz + dhs[-1] @ W
        if i == len(params) - 1:
            return hs, dhs, z, dz
        hs.append(xp.tanh(z))
        dhs.append((1 - hs[-1] * hs[-1]) * dz)


def jvp(xp, params, x, y, v):
    """(loss, its directional derivative along v): forward mode by hand.  The
    tangent of -(1/B) sum(y * (logits - logsumexp(logits))) is
    -(1/B) sum(y * (dlogits - sum_k p_k dlogits_k)), p the softmax."""
    _, _, logits, dlogits = forward_and_tangents(xp, params, x, v)
    loss, p = softmax_xent(xp, logits, y)
    dlse = (p * dlogits).sum(axis=1, keepdims=True)
    return loss, -(y * (dlogits - dlse)).sum() / x.shape[0]


def hvp(xp, params, x, y, v):
    """Hessian of the loss times v (a list of (VW, Vb) like params), by
    Pearlmutter's R-operator: the forward and backward passes once more,
    each quantity q replaced by its directional derivative R{q} along v
    (forward mode over the backward pass)."""
    hs, rhs, logits, rlogits = forward_and_tangents(xp, params, x, v)
    _, p = softmax_xent(xp, logits, y)
    n = len(params)
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
