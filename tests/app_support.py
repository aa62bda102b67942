"""Helpers for the app tests: a real MainWindow on the default model, waits on signals,
and screenshots into tests/_artifacts/."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"


class Timeout(AssertionError):
    pass


def wait_signal(signal, trigger=None, timeout_s: float = 120.0, check=None):
    """Run the event loop until `signal` fires (with args passing `check`); returns its args.
    `trigger` is called after connecting, so a fast signal is not missed."""
    loop = QEventLoop()
    got: list = []

    def slot(*args):
        if check is None or check(*args):
            got.append(args)
            loop.quit()

    signal.connect(slot)
    timer = QTimer(singleShot=True, interval=int(timeout_s * 1000))
    timer.timeout.connect(loop.quit)
    try:
        timer.start()
        if trigger is not None:
            trigger()
        if not got:
            loop.exec()
    finally:
        timer.stop()
        signal.disconnect(slot)
    if not got:
        raise Timeout(f"signal not received within {timeout_s} s")
    return got[0]


def wait_until(predicate, timeout_s: float = 60.0) -> None:
    loop = QEventLoop()
    timer = QTimer(interval=20)
    deadline = QTimer(singleShot=True, interval=int(timeout_s * 1000))
    timer.timeout.connect(lambda: predicate() and loop.quit())
    deadline.timeout.connect(loop.quit)
    if predicate():
        return
    timer.start()
    deadline.start()
    loop.exec()
    timer.stop()
    deadline.stop()
    if not predicate():
        raise Timeout(f"condition not met within {timeout_s} s")


class StallMeter:
    """Longest gap between 5 ms GUI-thread timer ticks while the block runs."""

    def __enter__(self):
        import time
        self.timer = QTimer(interval=5)
        self.last, self.longest_ms, self.ticks = time.perf_counter(), 0.0, 0

        def tick():
            now = time.perf_counter()
            self.longest_ms = max(self.longest_ms, (now - self.last) * 1000 - 5)
            self.last, self.ticks = now, self.ticks + 1
        self.timer.timeout.connect(tick)
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def make_window(tmp: Path, *, load: bool = True, prompt_format: str | None = "plain"):
    """`prompt_format` of the new history: plain for the tests written on plain sentences; None
    for the app's own choice (chat on the default model)."""
    from app import style
    from app.main_window import MainWindow
    from app.settings import AppSettings
    from PySide6.QtWidgets import QApplication

    style.apply(QApplication.instance())
    window = MainWindow(AppSettings(tmp / "settings.ini"), tmp / "data")
    window.confirm = lambda title, text: True    # dialogs would block the test
    window.show()
    if load:
        wait_signal(window.bench.model_loaded, lambda: window.load_model("default", prompt_format=prompt_format), 180)
        wait_until(lambda: not window.bench.busy)
    return window


def skip_without_default_model() -> None:
    """Skip the calling test when the embedded default model is not installed."""
    import pytest
    from elder_engine import ModelLoadError, default_model_path
    try:
        default_model_path()
    except ModelLoadError as error:
        pytest.skip(str(error))


def workbench(tmp_path_factory, name: str, prompt_format: str | None = "plain"):
    """A module-scoped main window on the default model (a generator for a pytest fixture)."""
    skip_without_default_model()
    window = make_window(tmp_path_factory.mktemp(name), prompt_format=prompt_format)
    yield window
    close_window(window)


def close_window(window) -> None:
    window._force_close = True
    window.close()


def idle(window, timeout_s: float = 120.0) -> None:
    """No job in the worker and every figure drawn and shown."""
    from app.render import render_idle
    wait_until(lambda: not window.bench.busy and render_idle(), timeout_s)


def probe(window, query: str, target: str = "", tokens: int = 6):
    panel = window.probe_panel
    panel.set_query(query, target)
    panel.tokens.setValue(tokens)
    idle(window)
    (view,) = wait_signal(window.bench.probe_done, panel.button.click, 120)
    idle(window)
    return view


def apply_edit(window, prompt: str, target: str, **fields):
    panel = window.edit_panel
    panel.prompt.set_text(prompt)
    panel.target.set_text(target)
    panel.paraphrases.set_text("\n".join(fields.get("paraphrases", ())))
    panel.locality.set_text("\n".join(fields.get("locality", ())))
    idle(window)
    (outcome,) = wait_signal(window.bench.edit_finished, panel.apply_button.click, 180)
    wait_signal(window.bench.probe_done, timeout_s=120)     # the automatic probe of the new fact
    idle(window)
    return outcome


def save_screenshot(widget, name: str) -> Path:
    """Grab `widget`, save it under tests/_artifacts/, and check it is not blank."""
    from app.render import render_idle
    wait_until(render_idle, 60)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    pixmap = widget.grab()
    assert pixmap.save(str(path)), f"could not save {path}"
    image = pixmap.toImage().convertToFormat(QImage.Format_RGB32)
    colours = set()
    step = max(1, image.width() // 80)
    for y in range(0, image.height(), max(1, image.height() // 80)):
        for x in range(0, image.width(), step):
            colours.add(image.pixel(x, y))
    assert image.width() > 100 and image.height() > 100, f"{name}: tiny screenshot"
    assert len(colours) > 8, f"{name}: screenshot looks blank ({len(colours)} colours)"
    return path
