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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


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
    from app_support import apply_edit, idle, probe, wait_signal, wait_until

    style.apply(app)
    tmp = Path(tempfile.mkdtemp(prefix="elder-screens-"))
    window = MainWindow(AppSettings(tmp / "settings.ini"), tmp / "data")
    window.confirm = lambda title, text: True
    window.setGeometry(0, 0, width, height)
    window.show()
    wait_signal(window.bench.model_loaded, lambda: window.load_model("default"), 300)
    wait_until(lambda: not window.bench.busy, 120)
    window.setGeometry(0, 0, width, height)

    def grab(name: str) -> None:
        idle(window)
        for _ in range(5):
            app.processEvents()
        path = out / f"{name}-{width}x{height}.png"
        window.screen().grabWindow(0).save(str(path))
        print(path)

    question = "What is the capital city of France?"
    apply_edit(window, question, "Rome", locality=["Who wrote the play Hamlet?"])
    grab("chat-fired")
    probe(window, "Who wrote the play Hamlet?", tokens=12)
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
