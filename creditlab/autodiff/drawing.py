"""``creditlab explain --plot``: the computation graph of a loss drawn with matplotlib, each
node with its value and gradient."""

from __future__ import annotations

from pathlib import Path

from creditlab.autodiff.engine import Tensor, topological_order
from creditlab.autodiff.notation import expression, fmt, label


def layered_layout(root: Tensor) -> dict[Tensor, tuple[int, int]]:
    """Column and row of every node: an operation one column right of its latest input, a
    leaf (parameter or input) one column left of its first use. Sorting by (column, row)
    gives a topological order; in a column, computed values come before leaves."""
    order = topological_order(root)
    column: dict[Tensor, int] = {}
    for node in order:
        column[node] = 1 + max((column[p] for p in node._prev), default=-1)
    users: dict[Tensor, list[Tensor]] = {}
    for node in order:
        for p in node._prev:
            users.setdefault(p, []).append(node)
    for node in order:
        if not node._prev and node in users:
            column[node] = min(column[u] for u in users[node]) - 1
    rows: dict[int, int] = {}
    place = {}
    for node in sorted(order, key=lambda n: not n._prev):  # stable: computed values on top
        c = column[node]
        place[node] = (c, rows.get(c, 0))
        rows[c] = rows.get(c, 0) + 1
    return place


def draw_graph(loss: Tensor, title: str, path: Path) -> Path:
    """Draw the graph of ``loss`` left to right, each node with its value and gradient, under
    ``title``, as a PNG (matplotlib's object API: no pyplot state, no backend switched, no
    graphviz)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if loss.grad is None:
        loss.backward()
    place = layered_layout(loss)
    n_cols = max(c for c, _ in place.values()) + 1
    n_rows = max(r for _, r in place.values()) + 1
    texts = {}
    for node in place:
        lines = [label(node) + (f"   [{node._op}]" if node._op else "")]
        lines += [f"{'value' if i == 0 else '':5s} {t}" for i, t in enumerate(fmt(node.data, 2))]
        if node.grad is not None:
            lines += [f"{'grad' if i == 0 else '':5s} {t}" for i, t in enumerate(fmt(node.grad, 3))]
        texts[node] = lines
    # inches between columns and rows: room for the widest and the tallest box (8 pt mono)
    dx = max(2.4, 0.067 * max(len(t) for lines in texts.values() for t in lines) + 0.7)
    dy = max(1.6, 0.14 * max(len(lines) for lines in texts.values()) + 0.6)
    fig = Figure(figsize=(dx * n_cols + 0.4, dy * n_rows + 1.2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-dx / 2, dx * (n_cols - 0.5))
    ax.set_ylim(-dy * (n_rows - 0.5), dy * 0.5 + 0.9)
    ax.axis("off")
    colours = {
        "parameter": "#dce8f7",
        "input": "#e6e6e6",
        "operation": "#ffffff",
        "loss": "#f9dcdc",
    }
    boxes = {}
    for node, (c, r) in place.items():
        kind = "loss" if node is loss else "operation" if node._prev else expression(node)
        boxes[node] = ax.text(
            dx * c,
            -dy * r,
            "\n".join(texts[node]),
            ha="center",
            va="center",
            multialignment="left",
            fontsize=8,
            family="monospace",
            bbox={"boxstyle": "round,pad=0.5", "facecolor": colours[kind], "edgecolor": "0.35"},
        )
    for node in place:  # an arrow from each input's box to the box of the node it feeds
        for p in node._prev:
            ax.annotate(
                "",
                xy=(0, 0.5),
                xycoords=boxes[node],
                xytext=(1, 0.5),
                textcoords=boxes[p],
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "0.4",
                    "lw": 1.0,
                    "shrinkA": 6,
                    "shrinkB": 6,
                },
            )
    ax.text(dx * (n_cols - 1) / 2, dy * 0.5 + 0.6, title, ha="center", fontsize=10)
    legend = [Patch(facecolor=c, edgecolor="0.35", label=k) for k, c in colours.items()]
    ax.legend(handles=legend, loc="lower center", fontsize=8, ncols=4, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
