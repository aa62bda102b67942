"""The summary table, mean curves and HTML report of a sweep's JSONL rows (see `sweep.py`)."""

from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

from .metrics import METRICS, SHORT_LABELS
from .sweep import group_key


# ---------------------------------------------------------------- table, curves and report
def _stats(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "min": None, "max": None}
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def summarise(rows: Sequence[dict]) -> list[dict]:
    """One entry per grid point without window and seed: mean and spread over those."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(group_key(row), []).append(row)
    out = []
    for key, members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        steps = [s for r in ok for s in (r.get("edit_steps") or [])]
        entry = {"data": key[0], "method": key[1], "profile": key[2], "settings": json.loads(key[3]),
                 "runs": len(members), "ok": len(ok), "failed": len(members) - len(ok),
                 "run_ids": [r["run"] for r in members],
                 **{k: _stats([r.get(k) for r in ok]) for k in (*METRICS, "seconds_per_edit")},
                 "steps_per_edit_median": statistics.median(steps) if steps else None}
        out.append(entry)
    return out


def group_label(entry: dict) -> str:
    sets = " ".join(f"{k}={v}" for k, v in sorted(entry["settings"].items()))
    return f"{entry['method']} {entry['profile']}{(' ' + sets) if sets else ''} on {entry['data']}"


def _fmt(value, digits=3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cell(stats: dict, digits=3) -> str:
    if stats["mean"] is None:
        return "–"
    return f"{stats['mean']:.{digits}f} ± {stats['sd']:.{digits}f}"


TABLE_HEADERS = ("grid point", "runs", *SHORT_LABELS.values(), "s/edit", "median steps")


def table_rows(summary: Sequence[dict]) -> list[list[str]]:
    rows = []
    for e in summary:
        runs = f"{e['ok']}" + (f" (+{e['failed']} failed)" if e["failed"] else "")
        rows.append([group_label(e), runs, *(_cell(e[k]) for k in METRICS), _cell(e["seconds_per_edit"], 2),
                     _fmt(e["steps_per_edit_median"], 1)])
    return rows


def text_table(summary: Sequence[dict]) -> str:
    rows = [list(TABLE_HEADERS), *table_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADERS))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def mean_curves(rows: Sequence[dict]) -> dict[str, SimpleNamespace]:
    """Per grid point (label -> an object `curves.plot_png` can draw): the mean curve over the
    group's finished runs, at the edit counts every one of them measured."""
    out = {}
    for entry in summarise(rows):
        key = (entry["data"], entry["method"], entry["profile"], json.dumps(entry["settings"], sort_keys=True))
        curves = [r.get("curve") or {} for r in rows if group_key(r) == key and r.get("status") == "ok"]
        if not curves:
            continue
        counts = sorted(set.intersection(*(set(c) for c in curves)), key=int)
        points = {}
        for n in counts:
            means = {k: statistics.fmean(v for v in (c[n].get(k) for c in curves) if v is not None)
                     if any(c[n].get(k) is not None for c in curves) else float("nan") for k in METRICS}
            points[int(n)] = SimpleNamespace(**means)
        label = group_label(entry)
        out[label] = SimpleNamespace(name=label, curve=points)
    return out


def build_html(rows: Sequence[dict], meta: dict, title: str = "ELDER Workbench sweep") -> str:
    import base64

    from .curves import plot_png
    from .report import STYLE

    summary = summarise(rows)
    head = "".join(f"<th>{h}</th>" for h in TABLE_HEADERS)
    body = "".join("<tr>" + "".join(f'<td class="{"num" if i else ""}">{html.escape(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in table_rows(summary))
    curves = mean_curves(rows)
    labels = list(curves)
    images = []
    for start in range(0, len(labels), 6):  # plot_png has six colours: one figure per six grid points
        chunk = {k: curves[k] for k in labels[start:start + 6]}
        png = base64.b64encode(plot_png(chunk)).decode("ascii")
        images.append(f'<img alt="lifelong curves" src="data:image/png;base64,{png}">')
    run_head = ("run", "status", "grid point", "offset", "window", "seed", "Rel", "Gen", "Loc", "s/edit", "worker",
                "error")
    run_rows = []
    for r in sorted(rows, key=lambda r: (group_key(r), r["offset"], r["seed"])):
        sets = " ".join(f"{k}={v}" for k, v in sorted(r["settings"].items()))
        cells = [r["run"], r["status"], f"{r['method']} {r['profile']} {sets} on {r['data']}", str(r["offset"]),
                 str(r["window"]), str(r["seed"]), *(_fmt(r.get(k)) for k in METRICS[:3]),
                 _fmt(r.get("seconds_per_edit"), 2), r.get("worker", ""), r.get("error", "")]
        cls = ' class="bad"' if r["status"] != "ok" else ""
        run_rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    failed = [r for r in rows if r["status"] != "ok"]
    failures = "".join(f"<h4>{html.escape(r['run'])}: {html.escape(r.get('error', ''))}</h4>"
                       f"<pre>{html.escape(r.get('traceback', ''))}</pre>" for r in failed)
    curve_part = ("".join(images) if any(len(c.curve) > 1 for c in curves.values())
                  else "<p>Each run measured once, after its last edit (give --checkpoints for curves).</p>"
                  + "".join(images))
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Each run is one lifelong evaluation from a fresh engine: the window's edits in sequence, then every metric
over all of them (and at each checkpoint over the edits made so far). Cells: mean ± standard deviation over the
grid point's windows and seeds (finished runs only). Reliability / Generalization: teacher-forced token accuracy
of the new target after the edit prompt / its held-out paraphrases; Locality: share of the unrelated prompt's
argmax tokens unchanged from the unedited model; EM: exact match of greedy generation.</p>
<h2>Table</h2><table><tr>{head}</tr>{body}</table>
<h2>Lifelong curves (mean over windows and seeds)</h2>{curve_part}
<h2>Runs</h2><table><tr>{''.join(f'<th>{h}</th>' for h in run_head)}</tr>{''.join(run_rows)}</table>
{"<h2>Failed runs</h2>" + failures if failed else ""}
<h2>Sweep</h2><pre>{html.escape(json.dumps(meta, indent=1, default=str))}</pre>
</body></html>"""


def write_report(path, rows: Sequence[dict], meta: dict) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_html(rows, meta), encoding="utf-8")
    return str(path)
