"""The report of a gradient check: one ``InputReport`` per checked tensor, gathered in a ``GradCheckReport``.

``print(report)`` gives a table, one row per layer and parameter (a plain
function's inputs are ``input 0``, ``input 1``, ... under layer ``-``)::

    gradient check FAILED (1 of 3 tensors): float64, eps=1e-06; an element passes when ...
      layer  parameter  shape   method   max abs err  max rel err  worst index  autograd  numeric  result
      dense  input      (3, 4)  central  1.5e-10      2.9e-09      (0, 1)       0.0277    0.0277   ok
      dense  kernel     (4, 2)  central  5.0e-01      ...          (1, 0)       ...       ...      FAIL
      FAIL dense/kernel (4, 2): worst elements (1, 0): autograd 0.62 vs numeric 0.12

followed by the worst failing elements of each failure (index, autograd value,
numeric value), or for the random-direction method the two values of <v, J u>.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class GradientCheckError(AssertionError):
    """Raised by ``check_grad(..., raise_on_failure=True)`` when a checked tensor fails."""


@dataclass
class InputReport:
    """The check of one tensor: an input of ``fn``, or a layer's input or weight.

    ``worst`` lists up to three failing elements, the worst first, as (index,
    autograd, numeric) (central method only); ``analytic`` and ``numeric`` are the values
    at ``worst_index``, or <v, J u> both ways for the direction method.
    """
    index: int
    shape: tuple
    method: str
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple | None
    analytic: float
    numeric: float
    passed: bool
    layer: str = "-"
    param: str = ""
    worst: list = field(default_factory=list)

    @property
    def label(self) -> str:
        """``input 0`` for a function's input, else ``layer/parameter``."""
        if self.layer == "-":
            return self.param or f"input {self.index}"
        return f"{self.layer}/{self.param}"

    def line(self) -> str:
        status = "ok  " if self.passed else "FAIL"
        return (f"{status} {self.label} shape={self.shape} method={self.method} "
                f"max_abs_err={self.max_abs_err:.3e} max_rel_err={self.max_rel_err:.3e} "
                f"worst={self.worst_index} (autograd {self.analytic:.8g} vs numeric {self.numeric:.8g})")

    def row(self) -> dict:
        """This check as a plain dict (the table's columns)."""
        return {"layer": self.layer, "parameter": self.param or f"input {self.index}", "shape": self.shape,
                "method": self.method, "max_abs_err": self.max_abs_err, "max_rel_err": self.max_rel_err,
                "worst_index": self.worst_index, "autograd": self.analytic, "numeric": self.numeric,
                "passed": self.passed}


@dataclass
class GradCheckReport:
    """The checks of one ``check_grad`` / ``check_model_grads`` call, one ``InputReport`` per tensor.

    Truthy when every tensor passed. ``str(report)`` is a table, one row per
    layer and parameter, followed by the worst elements of each failure;
    ``report.rows()`` gives the rows as dicts.
    """
    inputs: list = field(default_factory=list)
    eps: float = 1e-6
    rtol: float = 1e-5
    atol: float = 1e-7

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.inputs)

    def __bool__(self):
        return self.passed

    @property
    def failures(self) -> list:
        return [r for r in self.inputs if not r.passed]

    def rows(self) -> list:
        return [r.row() for r in self.inputs]

    def __str__(self):
        verdict = "passed" if self.passed else f"FAILED ({len(self.failures)} of {len(self.inputs)} tensors)"
        head = (f"gradient check {verdict}: float64, eps={self.eps:g}; an element passes when "
                f"|autograd - numeric| <= {self.atol:g} + {self.rtol:g} |numeric|")
        cols = ["layer", "parameter", "shape", "method", "max abs err", "max rel err", "worst index",
                "autograd", "numeric", "result"]
        table = [cols] + [[r.layer, r.param or f"input {r.index}", str(r.shape), r.method,
                           f"{r.max_abs_err:.3e}", f"{r.max_rel_err:.3e}",
                           "-" if r.worst_index is None else str(r.worst_index),
                           f"{r.analytic:.8g}", f"{r.numeric:.8g}", "ok" if r.passed else "FAIL"]
                          for r in self.inputs]
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        lines = [head] + ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
        for r in self.failures:
            if r.worst:
                worst = "; ".join(f"{i}: autograd {a:.8g} vs numeric {n:.8g}" for i, a, n in r.worst)
                lines.append(f"  FAIL {r.label} {r.shape}: worst elements {worst}")
            else:
                lines.append(f"  FAIL {r.label} {r.shape}: <v, J u> along a random direction u: "
                             f"autograd {r.analytic:.8g} vs numeric {r.numeric:.8g}")
        return "\n".join(lines)
