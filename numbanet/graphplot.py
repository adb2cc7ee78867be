"""``nb.plot_graph(loss)``: the recorded graph of a step, drawn with matplotlib alone.

Every Function that produced ``loss`` is a box labelled with its op, its output
shape and the layer that ran it; every leaf Tensor is a box of its own: a
parameter (a leaf that requires a gradient: a weight, labelled ``layer/name``
where it has one) in orange, a data input (a leaf without gradient) in grey.
Arrows run from each input to the node that used it, so data flows up to the
loss at the top.

Layout (no graphviz, no networkx): each box sits on the row of its *depth*, the
length of the longest path from it to the loss (so every arrow points upward);
within a row the boxes are ordered by the mean position of the boxes that use
them (one barycentre sweep from the loss down), which keeps most arrows short.

Every box is a ``FancyBboxPatch`` whose gid says what it is ("op", "parameter" or
"data"); every arrow is a ``FancyArrowPatch`` with gid "edge". The figure is a
``matplotlib.figure.Figure`` made directly (no pyplot, no backend switch).
"""
from __future__ import annotations

import os

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from .engine.tensor import Tensor, _topological_order

COLOURS = {"op": "#cfe2f3", "parameter": "#f9cb9c", "data": "#d9d9d9"}
BOX_W, BOX_H = 0.9, 0.62        # in slot units: a slot is 1 wide and a row 1 high
SLOT_INCHES, ROW_INCHES = 2.3, 0.95


def _shape(shape):
    return "(" + ",".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _op_label(fn):
    loss = getattr(fn, "loss", None)
    op = type(loss).__name__ if loss is not None and type(fn).__name__ == "_ReducedLoss" else type(fn).__name__
    lines = [op, _shape(fn.out_shape)]
    if fn.layer:
        lines.append(f"[{fn.layer}]")
    return "\n".join(lines)


def graph_nodes(output):
    """The graph behind ``output`` as (nodes, edges, depth, users).

    nodes: {key: (kind, label, obj)} with kind "op" (obj a Function), "parameter" or
    "data" (obj a leaf Tensor); edges: [(input key, user key)], one per use; depth:
    {key: length of the longest path from the node to the loss}; users: {key: [user
    keys]}. Keys are ``id`` of the Function or of the leaf Tensor.
    """
    functions = _topological_order(output)           # inputs before users
    nodes, edges = {}, []
    for fn in functions:
        nodes[id(fn)] = ("op", _op_label(fn), fn)
        for x in fn.inputs:
            if x is None:
                continue
            if x.creator is not None:
                edges.append((id(x.creator), id(fn)))
                continue
            if id(x) not in nodes:
                kind = "parameter" if x.requires_grad else "data"
                name = x.name or ("leaf" if x.requires_grad else "data")
                nodes[id(x)] = (kind, f"{name}\n{_shape(x.shape)}", x)
            edges.append((id(x), id(fn)))
    depth = {id(output.creator): 0}
    users = {}
    for src, dst in edges:
        users.setdefault(src, []).append(dst)
    for fn in reversed(functions):                    # users before inputs: each depth is final when read
        for x in fn.inputs:
            if x is None:
                continue
            key = id(x.creator) if x.creator is not None else id(x)
            depth[key] = max(depth.get(key, 0), depth[id(fn)] + 1)
    return nodes, edges, depth, users


def _by_barycentre(keys, nodes, pos, users):
    """``keys`` sorted by the mean x of their users; among equals the ops go in the middle, leaves around them."""
    groups = {}
    for k in keys:
        groups.setdefault(round(sum(pos[u][0] for u in users[k]) / len(users[k]), 6), []).append(k)
    out = []
    for centre in sorted(groups):
        group = groups[centre]
        ops_ = [k for k in group if nodes[k][0] == "op"]
        leaves = [k for k in group if nodes[k][0] != "op"]
        half = len(leaves) // 2
        out += leaves[:half] + ops_ + leaves[half:]
    return out


def _positions(nodes, depth, users):
    """{key: (x, y)}: row = -depth (loss on top), order in the row by the mean x of the node's users."""
    rows = {}
    for key in nodes:                                 # insertion order: a stable tie-break
        rows.setdefault(depth[key], []).append(key)
    pos = {}
    for d in sorted(rows):
        keys = rows[d]
        if d > 0:
            keys[:] = _by_barycentre(keys, nodes, pos, users)
        for i, key in enumerate(keys):
            pos[key] = (i - (len(keys) - 1) / 2, -d)
    return pos, rows


def plot_graph(output, path=None, title=None):
    """Draw the graph recorded for ``output`` (a Tensor made by ops, e.g. a loss); returns the Figure.

    ``path``: where to write a PNG (its folder is made), or None for none.
    ``title``: the figure's title (default: the number of ops and leaves).
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"plot_graph: expected the Tensor whose graph to draw (e.g. a loss), "
                        f"got {type(output).__name__}")
    if output.creator is None:
        raise ValueError(f"plot_graph: this Tensor of shape {output.shape} has no recorded graph: it is a leaf, or "
                         f"it was computed under no_grad() or from Tensors that do not require a gradient")
    nodes, edges, depth, users = graph_nodes(output)
    pos, rows = _positions(nodes, depth, users)
    widest = max(len(keys) for keys in rows.values())
    fig = Figure(figsize=(max(5.0, widest * SLOT_INCHES), max(2.5, len(rows) * ROW_INCHES + 0.8)))
    ax = fig.add_subplot(1, 1, 1)
    for key, (kind, label, _) in nodes.items():
        x, y = pos[key]
        box = FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0,rounding_size=0.08",
                             facecolor=COLOURS[kind], edgecolor="black",
                             linewidth=2.0 if key == id(output.creator) else 0.8, zorder=2)
        box.set_gid(kind)
        ax.add_patch(box)
        ax.text(x, y, label, ha="center", va="center", fontsize=7, zorder=3,
                fontweight="bold" if key == id(output.creator) else "normal")
    seen = {}
    for src, dst in edges:
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        # an arrow that skips rows, or a second use of the same input, bends so that it stays visible
        repeat = seen[(src, dst)] = seen.get((src, dst), -1) + 1
        bend = 0.0 if (y1 - y0 <= 1 and repeat == 0) else (0.35 + 0.2 * repeat) * (-1) ** repeat
        arrow = FancyArrowPatch((x0, y0 + BOX_H / 2), (x1, y1 - BOX_H / 2), arrowstyle="-|>", mutation_scale=8,
                                linewidth=0.7, color="#555555", zorder=1, connectionstyle=f"arc3,rad={bend}")
        arrow.set_gid("edge")
        ax.add_patch(arrow)
    ax.set_xlim(-max(widest, 5.0 / SLOT_INCHES) / 2, max(widest, 5.0 / SLOT_INCHES) / 2)
    ax.set_ylim(-max(rows) - 0.6, 0.6)
    ax.set_axis_off()
    counts = {kind: sum(1 for k, _, _ in nodes.values() if k == kind) for kind in COLOURS}
    ax.legend(handles=[Patch(facecolor=COLOURS[k], edgecolor="black", label=f"{k} ({counts[k]})") for k in COLOURS],
              loc="upper left", fontsize=7, frameon=False)
    ax.set_title(title or f"recorded graph: {counts['op']} ops, {counts['parameter']} parameters, "
                          f"{counts['data']} data inputs\n(rows by depth from the output at the top)", fontsize=9)
    fig.tight_layout()
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig
