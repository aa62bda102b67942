"""One self-contained HTML report per evaluation run: the comparison table, the lifelong curves
(PNG embedded as base64), the settings of every method, the model and data fingerprints, and a
sample of raw outputs on records where the methods disagree. No external files or scripts:
the report can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Mapping

from .comparison import MethodRun
from .curves import plot_png
from .metrics import METRICS, SHORT_LABELS

HEADERS = ("method", *SHORT_LABELS.values(), "s/edit", "extra params", "state")
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1300px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;vertical-align:top}th{background:#eee}
td.num{text-align:right;font-family:monospace}.ok{color:#070}.bad{color:#a00}code{font-size:12px;white-space:pre-wrap;background:#f3f3f3}
pre{background:#f6f6f6;padding:8px;font-size:12px;white-space:pre-wrap}"""


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else f"{v:,}"


def table_rows(runs: Mapping[str, MethodRun]) -> list[list[str]]:
    """The comparison table as text cells (also printed by the CLI)."""
    rows = []
    for run in runs.values():
        f = run.figures()
        rows.append([run.name, *(_num(f[k]) for k in METRICS), _num(f["seconds_per_edit"], 2),
                     _num(f["extra_parameters"]), human_bytes(f["state_bytes"])])
    return rows


def text_table(runs: Mapping[str, MethodRun]) -> str:
    rows = [list(HEADERS), *table_rows(runs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def disagreements(runs: Mapping[str, MethodRun], limit: int = 12) -> list[dict]:
    """Records (in edit order) where the methods' greedy outputs differ on the edit prompt, its
    paraphrase or its unrelated prompt, with every method's outputs side by side."""
    names = list(runs)
    if len(names) < 2:
        names = names[:1]
    out = []
    count = min(len(runs[n].result.items) for n in names) if names else 0
    for i in range(count):
        items = {n: runs[n].result.items[i] for n in names}
        views = {n: (it["output"], [p["output"] for p in it["paraphrases"]], [p["output"] for p in it["locality"]])
                 for n, it in items.items()}
        if len(names) > 1 and len({json.dumps(v) for v in views.values()}) == 1:
            continue
        out.append({"item": items[names[0]], "methods": items})
        if len(out) >= limit:
            break
    return out


def _mark(ok: float) -> str:
    return '<span class="ok">✓</span>' if ok == 1.0 else '<span class="bad">✗</span>'


def _sample_html(sample: list[dict]) -> str:
    if not sample:
        return "<p>No record where the methods' outputs differ.</p>"
    parts = []
    for entry in sample:
        it = entry["item"]
        para = it["paraphrases"][0]["prompt"] if it["paraphrases"] else ""
        loc = it["locality"][0]["prompt"] if it["locality"] else ""
        parts.append(f"<h4>#{it['index']}: {html.escape(it['prompt'])} → <b>{html.escape(it['target'])}</b></h4>"
                     f"<p>paraphrase: {html.escape(para) or '–'}<br>unrelated: {html.escape(loc) or '–'}</p>"
                     "<table><tr><th>method</th><th>edit prompt</th><th>paraphrase</th><th>unrelated prompt</th></tr>")
        for name, m in entry["methods"].items():
            p = m["paraphrases"][0] if m["paraphrases"] else None
            lo = m["locality"][0] if m["locality"] else None
            cells = [f"{_mark(m['reliability_em'])} <code>{html.escape(m['output'])}</code>",
                     f"{_mark(p['em'])} <code>{html.escape(p['output'])}</code>" if p else "–",
                     f"{_mark(lo['em'])} <code>{html.escape(lo['output'])}</code>" if lo else "–"]
            parts.append(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    return "\n".join(parts)


def build_html(runs: Mapping[str, MethodRun], meta: dict, title: str = "ELDER Workbench evaluation") -> str:
    head = "".join(f"<th>{h}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f'<td class="{"num" if i else ""}">{html.escape(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in table_rows(runs))
    png = base64.b64encode(plot_png(runs)).decode("ascii")
    curve = "".join(
        f"<tr><td>{html.escape(row['method'])}</td><td class=num>{row['edits']}</td>"
        + "".join(f"<td class=num>{_num(row[k])}</td>" for k in METRICS) + "</tr>"
        for run in runs.values() for row in run.curve_rows())
    settings = {name: run.settings for name, run in runs.items()}
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Reliability / Generalization: teacher-forced token accuracy of the new target after the edit prompt /
its held-out paraphrases. Locality: share of the unrelated prompt's argmax tokens unchanged from the unedited
model. "EM": exact match of greedy generation. All measured after all edits of the run (and at each checkpoint
over the edits made so far).</p>
<h2>Comparison</h2><table><tr>{head}</tr>{body}</table>
<h2>Lifelong curves</h2><img alt="lifelong curves" src="data:image/png;base64,{png}">
<table><tr><th>method</th><th>edits</th>{''.join(f'<th>{h}</th>' for h in HEADERS[1:7])}</tr>{curve}</table>
<h2>Run</h2><pre>{html.escape(json.dumps(meta, indent=1, default=str))}</pre>
<h2>Settings</h2><pre>{html.escape(json.dumps(settings, indent=1, default=str))}</pre>
<h2>{"Raw outputs where the methods disagree (sample)" if len(runs) > 1 else "Raw outputs (sample)"}</h2>
{_sample_html(disagreements(runs))}
</body></html>"""


def write_report(path, runs: Mapping[str, MethodRun], meta: dict) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_html(runs, meta), encoding="utf-8")
    return str(path)
