"""Lesson 7: backpropagation through time, unrolled by hand and as one fused node.

Run:  python examples/07_bptt.py               (read alongside numbanet/engine/recurrent.py)

A SimpleRNN with x (N, T, D), kernel W (D, U), recurrent kernel R (U, U), bias b (U,):

    h_0 = 0,    h_t = tanh(x_t @ W + h_{t-1} @ R + b)      t = 1..T

Written with the elementary ops of lesson 1 this is a chain of T steps of six
graph nodes each (slice, two products, two sums, tanh); backward() walks it from h_T back to h_1, and the gradient reaching
h_t is everything that h_t influenced: its own output and every later step,

    dL/dh_t = gy_t + dL/da_{t+1} @ R^T,    dL/da_t = dL/dh_t * (1 - h_t^2).

``nb.layers.SimpleRNN`` runs the same recurrence as ONE node whose backward is
that loop (``reference/recurrent.py``). Both must give the same numbers. The
unrolled graph shows what the fused node hides: with ``retain_grad()`` each
dL/dh_t can be read, and with a loss on the last step only it shrinks step by
step going back in time (the vanishing gradient).

Then an LSTM: its gates computed by hand in NumPy (Keras's gate order i, f, c, o)
against ``nb.layers.LSTM``, step by step.
"""
import numpy as np

import numbanet as nb

F = nb.functional
EPS = np.finfo(np.float64).eps
LIBM_ULP = 4          # np.tanh and np.exp are within 4 ulp


def check(name, got, want, bound):
    """Assert |got - want| <= bound elementwise; print the largest error and its share of the bound."""
    err = np.abs(np.asarray(got) - np.asarray(want))
    assert err.shape == np.shape(bound) and np.all(err <= bound), f"{name}: |error| {err.max():.3e} too large"
    print(f"    {name:<18} max |error| {err.max():.1e}, {np.max(err / bound):.2g} x its bound")


def bptt_bounds(x, W, R, b, G):
    """Error bounds for comparing two float64 computations of the SimpleRNN and its BPTT.

    The computations are chains of sums and products, with tanh (1-Lipschitz, |tanh a| <= |a|).
    Run the same recurrences on absolute values (tanh dropped, 1 - h^2 replaced by 1 + M^2):
    every rounding error of either computation is at most m eps times that value, m the
    longest chain of roundings (the running-error argument of Higham, Accuracy and
    Stability, section 3.1). Returns {name: bound array}.
    x (N, T, D), W (D, U), R (U, U), b (U,), G = dL/dH (N, T, U).
    """
    N, T, D = x.shape
    U = W.shape[1]
    aW, aR, ab, ax = np.abs(W), np.abs(R), np.abs(b), np.abs(x)
    M = np.zeros((N, T + 1, U))                               # M[:, t] >= |h_t|, M[:, 0] for h_0 = 0
    for t in range(T):
        M[:, t + 1] = ax[:, t] @ aW + M[:, t] @ aR + ab
    Bda = np.zeros((N, T, U))
    carry = np.zeros((N, U))
    for t in reversed(range(T)):
        Bdh = np.abs(G[:, t]) + carry
        Bda[:, t] = Bdh * (1 + M[:, t + 1] ** 2)
        carry = Bda[:, t] @ aR.T
    m = T * (D + U + 2 + LIBM_ULP) + T * (U + 4) + T * N       # forward steps, backward steps, final sums
    scale = 2 * m * EPS                                        # 2: two computations, each within m eps
    return {"H": scale * M[:, 1:],
            "gW": scale * np.einsum("ntd,ntu->du", ax, Bda),
            "gR": scale * np.einsum("ntv,ntu->vu", M[:, :-1], Bda),
            "gb": scale * Bda.sum(axis=(0, 1)),
            "gx": scale * Bda @ aW.T}


rng = np.random.default_rng(7)
N, T, D, U = 2, 6, 3, 4
x = rng.normal(size=(N, T, D))
rnn = nb.layers.SimpleRNN(U, return_sequences=True, dtype="float64")
rnn(x)                                             # builds kernel (D, U), recurrent_kernel (U, U), bias (U,)
rnn.set_weights([rng.normal(size=(D, U)) / np.sqrt(D), rng.normal(size=(U, U)) / np.sqrt(U),
                 rng.normal(size=U) * 0.1])
W, R, b = rnn.get_weights()
G = rng.normal(size=(N, T, U))                     # dL/dH: the loss is L = sum(G * H)
bounds = bptt_bounds(x, W, R, b, G)

# ---------------------------------------------------------------- unrolled: one op at a time
xt, Wt, Rt, bt = (nb.Tensor(a, requires_grad=True) for a in (x, W, R, b))
h = nb.Tensor(np.zeros((N, U)))
hs = []
for t in range(T):
    h = (xt[:, t] @ Wt + h @ Rt + bt).tanh()       # (N, D) @ (D, U) + (N, U) @ (U, U) + (U,)
    h.retain_grad()                                # keep dL/dh_t after backward()
    hs.append(h)
H = F.stack(hs, axis=1)                            # T x (N, U) -> (N, T, U)
(H * nb.Tensor(G)).sum().backward()
nodes = len(H.graph().splitlines())
print(f"unrolled: {T} steps, {nodes} graph nodes from x to H {H.shape} (6 a step, then the stack); L = sum(G * H)")

# ---------------------------------------------------------------- fused: one node, in both tiers
for tier in ("reference", "fast"):
    with nb.kernels(tier):
        x_fused = nb.Tensor(x, requires_grad=True)
        H_fused = rnn(x_fused)
        H_fused.backward(G)
        print(f"  {tier} tier: SimpleRNN is {len(H_fused.graph().splitlines())} node "
              f"({type(H_fused.creator).__name__}) against the unrolled graph")
        check("H", H_fused.data, H.data, bounds["H"])
        check("dL/dkernel", rnn.kernel.grad, Wt.grad, bounds["gW"])
        check("dL/drecurrent", rnn.recurrent_kernel.grad, Rt.grad, bounds["gR"])
        check("dL/dbias", rnn.bias.grad, bt.grad, bounds["gb"])
        check("dL/dx", x_fused.grad, xt.grad, bounds["gx"])
        for w in rnn.weights:
            w.zero_grad()

# The BPTT recursion itself, checked on the retained gradients of the unrolled graph:
# dL/dh_t = G_t + (dL/dh_{t+1} * (1 - h_{t+1}^2)) @ R^T
for t in range(T - 1):
    da_next = hs[t + 1].grad * (1 - hs[t + 1].data ** 2)
    recursion = G[:, t] + da_next @ R.T
    bound = 2 * (U + 4) * EPS * (np.abs(G[:, t]) + np.abs(da_next) @ np.abs(R).T)   # U + 4 roundings a side
    assert np.all(np.abs(hs[t].grad - recursion) <= bound), t
print("  the retained dL/dh_t follow dL/dh_t = G_t + dL/da_{t+1} @ R^T at every step")

# ---------------------------------------------------------------- vanishing gradients
# A loss on the last state only: L = sum(h_T). How much of it reaches each earlier h_t?
hs_last = []
W2, R2, b2 = (nb.Tensor(a, requires_grad=True) for a in (W, R, b))    # fresh leaves for a fresh graph
h = nb.Tensor(np.zeros((N, U)))
for t in range(T):
    h = (nb.Tensor(x[:, t]) @ W2 + h @ R2 + b2).tanh()
    h.retain_grad()
    hs_last.append(h)
h.sum().backward()
norms = [float(np.linalg.norm(ht.grad)) for ht in hs_last]
print("\n|dL/dh_t| for L = sum(h_T), from t = T back to 1 (each step multiplies by (1 - h^2) R^T):")
print("   " + "  ".join(f"t={t + 1}: {n:.3g}" for t, n in reversed(list(enumerate(norms)))))
assert norms[0] < norms[-1], "the gradient reaching h_1 is smaller than the one at h_T"

# ---------------------------------------------------------------- an LSTM's gates by hand
def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


Tl = 3
lstm = nb.layers.LSTM(U, return_sequences=True, return_state=True, dtype="float64")
h0, c0 = rng.normal(size=(N, U)) * 0.5, rng.normal(size=(N, U)) * 0.5
lstm(x[:, :Tl], initial_state=[h0, c0])           # builds kernel (D, 4U), recurrent_kernel (U, 4U), bias (4U,)
lstm.set_weights([rng.normal(size=(D, 4 * U)) / np.sqrt(D), rng.normal(size=(U, 4 * U)) / np.sqrt(U),
                  rng.normal(size=4 * U) * 0.1])
K, RK, bias = lstm.get_weights()
h, c = h0, c0
rows = []
print(f"\nLSTM, {U} units: z = x_t @ kernel + h @ recurrent_kernel + bias, split into the gates i, f, c, o")
for t in range(Tl):
    z = x[:, t] @ K + h @ RK + bias                       # (N, 4U)
    i, f, g, o = (z[:, k * U:(k + 1) * U] for k in range(4))
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c = f * c + i * g                                     # the cell: keep some of c, write some of g
    h = o * np.tanh(c)                                    # the output: a gated view of the cell
    rows.append(h)
    print(f"  t={t + 1}: forget gate mean {f.mean():.3f}, input gate mean {i.mean():.3f}, |c| max {np.abs(c).max():.3f}")
H_hand = np.stack(rows, axis=1)                           # (N, Tl, U)

# Error bound: each z sums D + U + 1 terms; every gate and the cell are 1-Lipschitz in z or
# bounded by 1, so per step the error grows by at most (D + U + 8 + 3 LIBM_ULP) eps times
# (1 + |c|) (1 + the sum of |terms| of z); over Tl steps, Tl times that.
Zmag = max(float((np.abs(x[:, t]) @ np.abs(K) + np.abs(rows[t - 1] if t else h0) @ np.abs(RK)
                  + np.abs(bias)).max()) for t in range(Tl))
lstm_bound = 2 * Tl * (D + U + 8 + 3 * LIBM_ULP) * EPS * (1 + Zmag) * (1 + np.abs(c0).max() + Tl)
for tier in ("reference", "fast"):
    with nb.kernels(tier):
        seq, h_T, c_T = lstm(x[:, :Tl], initial_state=[h0, c0])
        print(f"  {tier} tier, nb.layers.LSTM:")
        check("h_1..h_T", seq.data, H_hand, np.full(H_hand.shape, lstm_bound))
        check("h_T", h_T.data, h, np.full(h.shape, lstm_bound))
        check("c_T", c_T.data, c, np.full(c.shape, lstm_bound))
print("\nOK 07_bptt: the fused SimpleRNN equals the unrolled graph; the LSTM equals its gates by hand")
