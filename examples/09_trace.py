"""Lesson 9: trace one training step: every node, its shapes, padding, route, FLOPs and bytes.

Run:  python examples/09_trace.py [OUT_DIR]    (read alongside numbanet/tracing.py; OUT_DIR
                                                defaults to numbanet-out, for the graph picture)

``model.trace(x, y)`` runs one forward pass, the compiled loss and backward(),
without updating the weights, and returns a table with one row per graph node,
forward rows in execution order then backward rows in the order backward()
visited them. Everything earlier lessons computed by hand is in it: the padding
a "same" convolution applied (lesson 3), which route the fast tier took (lesson
4), the shapes, and the FLOPs, which follow from the shapes alone:

    Conv2D forward  2 * N*OH*OW * KH*KW*C * F      (multiply-adds, 2 FLOPs each)
                    + N*OH*OW*F for the bias + N*OH*OW*F for a fused relu
    Dense forward   2 * B*D*U + B*U (bias)

``nb.plot_graph(trace.output, path)`` draws the recorded graph of that step.
"""
import os
import sys

import numpy as np

import numbanet as nb

out_dir = sys.argv[1] if len(sys.argv) > 1 else "numbanet-out"
nb.utils.set_random_seed(9)
N, H, W, C, F, K, S = 4, 9, 8, 2, 3, 3, 2
model = nb.Sequential([nb.Input((H, W, C)),
                       nb.layers.Conv2D(F, K, strides=S, padding="same", activation="relu", name="conv"),
                       nb.layers.MaxPooling2D(2, name="pool"),
                       nb.layers.Flatten(name="flatten"),
                       nb.layers.Dense(5, activation="softmax", name="dense")])
model.compile("adam", "sparse_categorical_crossentropy")
rng = np.random.default_rng(9)
x = rng.normal(size=(N, H, W, C)).astype("float32")
y = np.arange(N) % 5

# On the fast tier the Conv2D(relu) -> MaxPooling2D pair runs as one fused node
# (numbanet/models/fusion.py); this lesson traces the layers one by one, as written
# (and as the reference tier always runs them). The fused step's trace is printed last.
nb.set_fusion(False)
model.trace(x, y)                         # a first trace compiles the fast tier's kernels (Numba)
trace = model.trace(x, y)                 # the second one shows steady-state times
print(trace)

# ---------------------------------------------------------------- the rows, as plain dicts
forward = {r["layer"]: r for r in trace.rows("forward")}     # a layer's last node: its output
conv = forward["conv"]
dense = next(r for r in trace.rows("forward") if r["op"] == "Linear")    # the Dense layer's x @ W + b

# shapes: each layer's output, as summary() lists them (batch N in place of None)
for layer in model.layers:
    assert forward[layer.name]["output"] == (N,) + tuple(layer.output_shape[1:]), layer.name
print("\nforward output shapes = summary()'s:", ", ".join(f"{l.name} {forward[l.name]['output']}"
                                                        for l in model.layers))

# padding: Keras's "same" split, computed here from the formula of lesson 3
def same_pads(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


OH, OW = -(-H // S), -(-W // S)
assert conv["padding"] == same_pads(H, K, S) + same_pads(W, K, S), conv["padding"]
assert conv["strides"] == (S, S)
print(f"conv padding (top, bottom, left, right) = {conv['padding']}: Keras's split of "
      f"max((OH-1)*S + K - H, 0) = {sum(same_pads(H, K, S))} rows and {sum(same_pads(W, K, S))} columns")

# FLOPs: the analytic counts of the module docstring
conv_flops = 2 * N * OH * OW * K * K * C * F + 2 * N * OH * OW * F
D = (OH // 2) * (OW // 2) * F
dense_flops = 2 * N * D * 5 + N * 5
assert conv["flops"] == conv_flops and dense["flops"] == dense_flops, (conv["flops"], dense["flops"])
print(f"conv FLOPs {conv['flops']} = 2*{N}*{OH}*{OW}*{K}*{K}*{C}*{F} + 2*{N}*{OH}*{OW}*{F}; "
      f"dense FLOPs {dense['flops']} = 2*{N}*{D}*5 + {N}*5")
print(f"conv route on the {conv['tier']} tier: {conv['route']}")

# backward rows: the same nodes in reverse, each gradient of its input's shape
backward = trace.rows("backward")
assert [r["node"] for r in backward] == [r["node"] for r in trace.rows("forward")][::-1]
assert [r for r in backward if r["layer"] == "conv"][0]["output"][1:] == ((K, K, C, F), (F,))

# the reference tier: the same table with the textbook algorithm in the route column
with nb.kernels("reference"):
    ref = {r["layer"]: r for r in model.trace(x, y).rows("forward")}
assert ref["conv"]["tier"] == "reference" and ref["conv"]["flops"] == conv_flops
print(f"conv on the reference tier: {ref['conv']['route']}")

# ---------------------------------------------------------------- the graph picture
os.makedirs(out_dir, exist_ok=True)
path = os.path.join(out_dir, "09_trace_graph.png")
fig = nb.plot_graph(trace.output, path)
ax = fig.axes[0]
boxes = [p.get_gid() for p in ax.patches]
n_ops = len(trace.output.graph().splitlines())
assert boxes.count("op") == n_ops and boxes.count("parameter") == 4, boxes      # conv and dense: kernel, bias
assert os.path.getsize(path) > 0
print(f"\nwrote {path}: {n_ops} op boxes, {boxes.count('parameter')} parameters, "
      f"{boxes.count('data')} data inputs, {boxes.count('edge')} arrows")
# ---------------------------------------------------------------- the fused step
nb.set_fusion(True)
fused = {r["op"]: r for r in model.trace(x, y).rows("forward")}["Conv2DReluMaxPool"]
print(f"\nfused on the fast tier: {fused['layer']}, route {fused['route']}")
assert fused["output"] == forward["pool"]["output"]                   # the pooled map, written directly
assert fused["flops"] == forward["conv"]["flops"] + forward["pool"]["flops"]
print("\nOK 09_trace: the trace's shapes, padding and FLOPs are the ones computed by hand")
