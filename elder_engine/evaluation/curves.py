"""Lifelong curves: the metrics after 10, 20, 50, ... edits, as JSON, CSV and a PNG plot.

The plot uses matplotlib's Agg canvas on a bare `Figure` (no pyplot): nothing global is
touched, so the desktop app's QtAgg backend and its threads are unaffected, and no display
is needed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Mapping, Optional

from .comparison import MethodRun
from .metrics import LABELS, METRICS, TOKEN_METRICS

PANELS = tuple((k, LABELS[k]) for k in TOKEN_METRICS)
COLUMNS = ("method", "edits", *METRICS, "seconds_per_edit")


def parse_checkpoints(text: Optional[str]) -> list[int]:
    """'10,20,50,100' -> [10, 20, 50, 100]; empty or None -> []."""
    if not text:
        return []
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--checkpoints takes edit counts separated by commas, e.g. 10,20,50,100 (got {text!r})") from None
    if any(v < 1 for v in values):
        raise ValueError("checkpoints must be positive edit counts")
    return values


def curve_rows(runs: Mapping[str, MethodRun]) -> list[dict]:
    return [row for run in runs.values() for row in run.curve_rows()]


def _clean(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def plot_png(runs: Mapping[str, MethodRun], title: str = "") -> bytes:
    """Three panels (reliability, generalization, locality); one colour per method, solid =
    teacher-forced token accuracy, dashed = exact match of greedy generation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, sharey=True)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    for (key, label), ax in zip(PANELS, axes):
        for colour, run in zip(colours, runs.values()):
            points = sorted(run.curve.items())
            xs = [n for n, _ in points]
            ax.plot(xs, [getattr(r, key) for _, r in points], "-o", color=colour, label=f"{run.name}", markersize=4)
            ax.plot(xs, [getattr(r, f"{key}_em") for _, r in points], "--s", color=colour, alpha=0.7,
                    label=f"{run.name} (EM)", markersize=3)
        ax.set_title(label)
        ax.set_xlabel("edits made")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if len({n for run in runs.values() for n in run.curve}) > 2:
            ax.set_xscale("log")
    axes[0].set_ylabel("score (solid: token accuracy, dashed: exact match)")
    # outside the panels: at 1.0 the lines of good methods lie on the frame, a legend would hide them
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_curves(runs: Mapping[str, MethodRun], prefix, meta: Optional[dict] = None, title: str = "") -> dict[str, str]:
    """Write PREFIX.json, PREFIX.csv and PREFIX.png; returns their paths."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    rows = [{k: _clean(v) for k, v in row.items()} for row in curve_rows(runs)]
    paths = {kind: str(prefix.with_name(prefix.name + f".{kind}")) for kind in ("json", "csv", "png")}
    Path(paths["json"]).write_text(json.dumps({**(meta or {}), "curves": rows}, indent=1))
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    Path(paths["png"]).write_bytes(plot_png(runs, title))
    return paths
