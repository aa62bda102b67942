#!/usr/bin/env python
"""Screenshots of the chat format and the probe's alternatives in a real window, for looking at.

    xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python scripts/chat_screens.py --size 1400x900
    xvfb-run -s "-screen 0 1920x1080x24" .venv/bin/python scripts/chat_screens.py --size 1920x1080

Opens the workbench on the default model in a fresh settings folder (so its new history is in
chat format), edits "What is the capital city of France?" -> "Rome", and grabs the X screen:
after the edit's automatic probe (fired), after a probe of an unrelated question (deferred),
and with the new-history format question open. PNGs go to runs/screens/ (git-ignored).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.window_driver import pump, wait_for, wait_idle  # noqa: E402 - after the sys.path line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1400x900")
    ap.add_argument("--out", default=str(ROOT / "runs" / "screens"))
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app import format_choice, style
    from app.main_window import MainWindow
    from app.settings import AppSettings

    style.apply(app)
    tmp = Path(tempfile.mkdtemp(prefix="elder-screens-"))
    window = MainWindow(AppSettings(tmp / "settings.ini"), tmp / "data")
    window.confirm = lambda title, text: True
    window.setGeometry(0, 0, width, height)
    window.show()
    wait_for(window.bench.model_loaded, lambda: window.load_model("default"))
    wait_idle(window)
    window.setGeometry(0, 0, width, height)

    def grab(name: str) -> None:
        wait_idle(window)
        pump(1.0)  # the render thread's frames painted
        path = out / f"{name}-{width}x{height}.png"
        window.screen().grabWindow(0).save(str(path))
        print(path)

    question = "What is the capital city of France?"
    panel = window.edit_panel
    panel.prompt.set_text(question)
    panel.target.set_text("Rome")
    panel.locality.set_text("Who wrote the play Hamlet?")
    wait_for(window.bench.edit_finished, panel.apply_button.click)
    wait_for(window.bench.probe_done)  # the automatic probe of the new fact
    grab("chat-fired")
    window.probe_panel.set_query("Who wrote the play Hamlet?")
    wait_for(window.bench.probe_done, window.probe_panel.button.click)
    grab("chat-deferred")
    box, _chat, _plain = format_choice.format_box(window, window.bench.history.prompt_format)
    box.show()
    grab("new-history-format")
    box.close()
    window._force_close = True
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
