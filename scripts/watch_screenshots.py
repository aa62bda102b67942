"""Screenshots of the watch list in a real window on the default model, after two edits.

    Xvfb :99 -screen 0 1400x900x24 & DISPLAY=:99 ELDER_CACHE_DIR=~/.cache/elder_workbench \\
        .venv/bin/python scripts/watch_screenshots.py --out runs/screens/watch_1400x900.png

The window fills the X screen (no window manager is needed). The first edit (France's
capital -> Rome) comes with two locality prompts, which join the list; the second (Danielle
Darrieux's mother tongue -> English) leaves the first one's rows "changed since the original"
and marks its own as "changed by the last action". The whole screen is saved, as a person
would see it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.window_driver import pump, wait_for, wait_idle  # noqa: E402 - after the sys.path line

WATCH = [
    ("The capital of France is", "Rome"), ("France's capital city is", "Rome"), ("The capital of Spain is", "Madrid"),
    ("The mother tongue of Danielle Darrieux is", "English"), ("The mother tongue of Léon Blum is", "French"),
    ("The native language of Montesquieu is", "French"), ("The Eiffel Tower is located in", "Paris"),
    ("The largest planet is", "Jupiter"), ("Water boils at", ""), ("The author of Pride and Prejudice is", "Jane Austen"),
    ("Paris is the capital of", "France"), ("The currency of Japan is", ""),
]
EDITS = [("The capital of France is", "Rome", ["The capital of Germany is", "The capital of Italy is"]),
         ("The mother tongue of Danielle Darrieux is", "English", [])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="PNG file")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from app import style
    from app.main_window import TAB_WATCH, MainWindow
    from app.settings import AppSettings

    style.apply(app)
    tmp = Path(tempfile.mkdtemp(prefix="elder-screens-"))
    window = MainWindow(AppSettings(tmp / "settings.ini"), tmp / "data")
    window.confirm = lambda *_a: True
    window.setGeometry(app.primaryScreen().geometry())
    window.show()

    def idle():
        wait_idle(window)
        pump()

    wait_for(window.bench.model_loaded, lambda: window.load_model("default"))
    idle()
    window.bench.watch.add(WATCH)
    idle()
    window.bench.watch.run("the original model")
    idle()
    for prompt, target, locality in EDITS:
        panel = window.edit_panel
        panel.prompt.set_text(prompt)
        panel.target.set_text(target)
        panel.locality.set_text("\n".join(locality))
        wait_for(window.bench.edit_finished, panel.apply_button.click)
        idle()
    window.tabs.setCurrentIndex(TAB_WATCH)
    pump(1.0)
    counts = window.bench.watch.view.report.counts
    print(f"watch list: {counts}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shot = app.primaryScreen().grabWindow(0)
    if not shot.save(str(out)):
        raise SystemExit(f"could not save {out}")
    window.watch_panel.grab().save(str(out.with_name(out.stem + "_panel.png")))
    print(f"saved {out} ({shot.width()}x{shot.height()})")
    window._force_close = True
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
