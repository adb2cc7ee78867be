"""Lesson 1: the tape. How ``backward()`` finds the gradient of y with respect to x.

Run:  python examples/01_autograd.py          (read alongside numbanet/engine/tensor.py)

Every operation on Tensors computes its value at once and records, on its
result, the ``Function`` that made it (``y.creator``) and that function's
inputs (``y.creator.inputs``). Those records form a graph from the leaves (the
Tensors you made) to the result. ``y.backward()`` walks that graph from y back
to the leaves, each node once, multiplying local derivatives (the chain rule)
and adding the contributions that reach a Tensor along several paths.

Here, with x, w (3,) and b a scalar, all float64:

    z = x * w + b          (3,)
    a = tanh(z)            (3,)
    y = sum(a * x)         ()        x is used twice: in z and again here

    dy/da = x
    dy/dz = dy/da * (1 - a^2)
    dy/dx = dy/dz * w  +  a          two paths reach x; their gradients add
    dy/dw = dy/dz * x
    dy/db = sum(dy/dz)               b was broadcast to (3,); its gradient is summed back

The lesson checks backward() against these formulas, then runs the walk itself
by hand (each recorded Function's ``backward``, users before what they use),
and prints the graph with ``print_graph``.
"""
import numpy as np

import numbanet as nb

EPS = np.finfo(np.float64).eps
LIBM_ULP = 4      # np.tanh is within 4 ulp of the exact tanh


def check(name, got, want, bound):
    """Assert |got - want| <= bound elementwise, and say so."""
    err = np.abs(np.asarray(got) - np.asarray(want))
    assert np.all(err <= bound), f"{name}: |error| {err.max():.3e} > bound {np.max(bound):.3e}"
    print(f"  {name:<8} agrees: max |error| {err.max():.1e} <= bound {np.max(bound):.1e}")


# ---------------------------------------------------------------- the forward pass records a graph
x = nb.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
w = nb.Tensor(np.array([1.5, 0.25, -0.5]), requires_grad=True)
b = nb.Tensor(np.array(0.1), requires_grad=True)

z = x * w + b
a = z.tanh()
y = (a * x).sum()
print(f"y = {y.item():.6f}, a {y.dtype} scalar made by {type(y.creator).__name__}")

# Walk the tape by hand: from y, follow creator -> inputs until only leaves are left.
print("\nWalking the tape from y (creator, then its inputs):")
frontier, seen, order = [y], set(), []
while frontier:
    t = frontier.pop(0)
    if t.creator is None or id(t.creator) in seen:
        continue
    seen.add(id(t.creator))
    fn = t.creator
    order.append(type(fn).__name__)
    kinds = []
    for inp in fn.inputs:
        if inp is None:
            kinds.append("constant")
        elif inp.creator is None:
            kinds.append(f"leaf {inp.shape}")
        else:
            kinds.append(f"{type(inp.creator).__name__} output {inp.shape}")
        if inp is not None:
            frontier.append(inp)
    print(f"  {type(fn).__name__:<4} -> {fn.out_shape}   inputs: {', '.join(kinds)}")
assert order == ["Sum", "Mul", "Tanh", "Add", "Mul"], order
assert x.creator is None and w.creator is None, "leaves have no creator"

# ---------------------------------------------------------------- backward, by hand and by backward()
xv, wv, bv = x.data, w.data, b.data
zv = xv * wv + bv
av = np.tanh(zv)
ga = xv                        # dy/da
gz = ga * (1 - av * av)        # dy/dz
gx = gz * wv + av              # the path through z plus the direct path through a * x
gw = gz * xv
gb = gz.sum()                  # b was broadcast: sum its gradient back to shape ()

z.retain_grad()                # keep an intermediate gradient (only leaves keep one by default)
y.backward()

print("\nbackward() against the chain rule written out in NumPy:")
# Each side evaluates the same formulas: at most 8 roundings and one tanh (4 ulp) per element,
# each relative to an intermediate no larger than scale = (1 + |x| (1 + |w|)) (1 + |z|)
# (|a| <= 1; a rounding of z moves a = tanh(z) by at most as much, tanh being 1-Lipschitz).
scale = (1 + np.abs(xv) * (1 + np.abs(wv))) * (1 + np.abs(zv))
bound = 2 * (8 + LIBM_ULP) * EPS * scale
check("dy/dz", z.grad, gz, bound)
check("dy/dx", x.grad, gx, bound)
check("dy/dw", w.grad, gw, bound)
check("dy/db", b.grad, gb, 3 * bound.sum())
assert a.grad is None, "an intermediate without retain_grad() keeps no gradient"

# ---------------------------------------------------------------- backward() is a walk over the tape
# The same walk written out: order the Functions so each comes after every Function that used
# its output (a depth-first search from y), then call each one's backward(gy) and add the
# gradients it returns onto its inputs. Leaves collect theirs; b's comes back in the
# broadcast shape (3,) and is summed to b's shape (), as backward() does in unbroadcast().
def functions_outputs_first(root):
    """[(Function, its output Tensor)] reachable from root, each after all of its users."""
    post, seen = [], set()

    def visit(t):
        if t.creator is None or id(t.creator) in seen:
            return
        seen.add(id(t.creator))
        for inp in t.creator.inputs:
            if inp is not None:
                visit(inp)
        post.append((t.creator, t))      # after everything it depends on
    visit(root)
    return post[::-1]                      # reversed: users before what they use


pending = {id(y): np.ones(())}             # dL/dy = 1 seeds the walk
leaf_grads = {}
for fn, out in functions_outputs_first(y):
    gy = pending.pop(id(out))
    gxs = fn.backward(gy)
    gxs = gxs if isinstance(gxs, tuple) else (gxs,)
    for inp, g in zip(fn.inputs, gxs):
        if inp is None or g is None:
            continue
        g = nb.engine.unbroadcast(np.asarray(g), inp.shape)
        store = leaf_grads if inp.creator is None else pending
        store[id(inp)] = store.get(id(inp), 0) + g
print("\nThe walk by hand (each Function's backward, in reverse order) against backward():")
check("dy/dx", leaf_grads[id(x)], x.grad, bound)
check("dy/dw", leaf_grads[id(w)], w.grad, bound)
check("dy/db", leaf_grads[id(b)], b.grad, 3 * bound.sum())

# ---------------------------------------------------------------- gradients accumulate
# A second backward() through a new graph ADDS into the leaves' .grad (as in PyTorch):
# training loops clear them first (t.zero_grad(), or Optimizer.zero_grad(weights)).
print("\nA second backward() adds into .grad:")
first = x.grad.copy()
((x * w + b).tanh() * x).sum().backward()
check("2*dy/dx", x.grad, 2 * first, 2 * EPS * np.abs(first))
x.zero_grad()
assert x.grad is None

# ---------------------------------------------------------------- the whole graph as text
print("\ny.graph(): one line per Function, in the order backward() visits them")
nb.engine.print_graph(y)
lines = y.graph().splitlines()
assert len(lines) == 5 and lines[0].split()[1] == "Sum" and lines[-1].split()[1] == "Mul"
print("\nOK 01_autograd: backward() equals the chain rule by hand")
