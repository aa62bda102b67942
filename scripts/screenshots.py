"""Screenshots of the real window: three edits, probes of a paraphrase, a template twin and a
same-subject question, then the router map; one PNG per view.

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshots.py runs/screens

Runs the default model on a fresh history in a temporary folder (about two minutes on two
cores). Under Xvfb there is no window manager, so the window is sized to the screen by hand.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.window_driver import pump, wait_for, wait_idle  # noqa: E402 - after the sys.path line

EDITS = [("The capital of France is", "Rome", "France"),
         ("The currency of Japan is", "the euro", "Japan"),
         ("The Eiffel Tower is located in the city of", "Berlin", "Eiffel Tower")]
PROBES = [("probe-paraphrase", "France's capital city is"),
          ("probe-twin", "The capital of Germany is"),
          ("probe-same-subject", "The capital of Japan is")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNGs")
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from app import style
    from app.main_window import MainWindow
    from app.settings import AppSettings

    style.apply(app)
    args.out.mkdir(parents=True, exist_ok=True)
    screen = app.primaryScreen().size()
    tag = f"{screen.width()}x{screen.height()}"
    tmp = Path(tempfile.mkdtemp(prefix="elder-shots-"))
    settings = AppSettings(tmp / "settings.ini")
    settings.set_threads(1)
    window = MainWindow(settings, tmp / "data")
    window.confirm = lambda *_a: True
    window.show()
    window.setGeometry(app.primaryScreen().availableGeometry())

    def settle():  # the worker idle and the render thread's frames painted
        wait_idle(window)
        pump(1.0)

    def shot(name: str) -> None:
        settle()
        path = args.out / f"{tag}-{name}.png"
        app.primaryScreen().grabWindow(0).save(str(path))
        print(path)

    wait_for(window.bench.model_loaded, lambda: window.load_model("default"))
    settle()
    panel = window.edit_panel
    for prompt, target, subject in EDITS:
        panel.prompt.set_text(prompt)
        panel.target.set_text(target)
        panel.subject.editor.setText(subject)
        wait_for(window.bench.edit_finished, panel.apply_button.click)
        wait_for(window.bench.probe_done)
        settle()
    shot("after-edits")
    for name, query in PROBES:
        window.probe_panel.set_query(query)
        wait_for(window.bench.probe_done, window.probe_panel.button.click)
        shot(name)
    wait_for(window.bench.map_ready, lambda: window.tabs.setCurrentIndex(1))
    shot("router-map")
    window._force_close = True
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
