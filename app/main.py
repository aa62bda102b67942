"""Entry point: `python main.py [--smoke] [--model SOURCE] [--history FILE] [--threads N]`.

`--smoke` opens the window, loads the default model, runs one probe and exits 0 (1 on any
failure): a fast end-to-end check for CI. It keeps its settings and history in a temporary
folder, so it never touches a user's files.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Optional

# The same fact asked as the history's format expects it: a sentence to continue, or a question
# for the chat template (a new history on the default model is in chat).
SMOKE_QUERIES = {"plain": "The capital of France is", "chat": "What is the capital of France?"}
SMOKE_TIMEOUT_S = 300


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="elder-workbench", description="ELDER Workbench: lifelong knowledge "
                                     "editing of local language models.")
    parser.add_argument("--smoke", action="store_true", help="open, load the default model, probe once, exit")
    parser.add_argument("--model", help="model to open instead of the last one ('default', a folder, a .gguf)")
    parser.add_argument("--history", help="edit-history database to open with the model")
    parser.add_argument("--threads", type=int, help="PyTorch threads (remembered)")
    parser.add_argument("--data-dir", help="folder for histories and logs (default: the per-user app folder)")
    parser.add_argument("--settings", help="INI file for settings instead of the user's QSettings")
    return parser.parse_args(argv)


def _setup_logging(folder: Path) -> Optional[logging.Handler]:
    """Log to <data dir>/logs/workbench.log; tracebacks go there, never to the user."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(folder / "workbench.log", maxBytes=2_000_000, backupCount=2, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return handler


def _quiet_qt_messages() -> None:
    """Drop the offscreen plugin's harmless 'propagateSizeHints' notices; keep the rest."""
    from PySide6.QtCore import qInstallMessageHandler

    previous = []

    def handler(mode, context, message) -> None:
        if "propagateSizeHints" in message:
            return
        if previous and previous[0] is not None:
            previous[0](mode, context, message)
        else:
            sys.stderr.write(message + "\n")
    previous.append(qInstallMessageHandler(handler))


def _install_excepthook(window_ref: list) -> None:
    """An exception escaping a slot becomes a message in the window, never a traceback."""
    def hook(kind, error, trace) -> None:
        logging.getLogger("app").error("unhandled error", exc_info=(kind, error, trace))
        if window_ref and window_ref[0] is not None:
            from .session.messages import describe
            window_ref[0].show_message(describe(error))
    sys.excepthook = hook


def run(argv: Optional[list[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.smoke and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .display_check import xcb_problem
    problem = xcb_problem()
    if problem:  # Qt would abort with a notice that names no missing file
        print(problem, file=sys.stderr)
        return 2

    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QColor, QPixmap
    from PySide6.QtWidgets import QApplication, QSplashScreen

    _quiet_qt_messages()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("ELDER")
    app.setApplicationName("ELDER Workbench")
    splash = QSplashScreen(_splash_pixmap(QPixmap, QColor))
    splash.showMessage("Starting ELDER Workbench — loading PyTorch…", Qt.AlignBottom | Qt.AlignHCenter, QColor("#1f2933"))
    splash.show()
    app.processEvents()

    # Heavy imports (torch, transformers) happen here, behind the splash screen.
    from . import style
    from .main_window import MainWindow
    from .settings import AppSettings, default_data_dir

    style.apply(app)
    temp = tempfile.TemporaryDirectory(prefix="elder-smoke-") if args.smoke else None
    data_dir = Path(temp.name) if temp else Path(args.data_dir) if args.data_dir else default_data_dir()
    settings_path = Path(temp.name) / "settings.ini" if temp else args.settings
    log_handler = _setup_logging(data_dir / "logs")
    settings = AppSettings(settings_path)
    if args.threads:
        settings.set_threads(args.threads)
    window_ref: list = [None]
    _install_excepthook(window_ref)
    window = MainWindow(settings, data_dir)
    window_ref[0] = window
    window.show()
    splash.finish(window)
    source = "default" if args.smoke else (args.model or settings.last_model() or "default")
    QTimer.singleShot(0, lambda: window.load_model(source, args.history))
    try:
        return _smoke(app, window) if args.smoke else app.exec()
    finally:
        window_ref[0] = None
        if log_handler is not None:
            logging.getLogger().removeHandler(log_handler)
            log_handler.close()
        if temp is not None:
            temp.cleanup()


def _splash_pixmap(QPixmap, QColor):  # noqa: N803 - Qt classes passed in after import
    from PySide6.QtGui import QFont, QPainter
    pixmap = QPixmap(460, 200)
    pixmap.fill(QColor("#ffffff"))
    painter = QPainter(pixmap)
    painter.fillRect(0, 0, 460, 6, QColor("#2563a8"))
    painter.setPen(QColor("#1f2933"))
    font = QFont()
    font.setPointSize(18)
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(28, 70, "ELDER Workbench")
    font.setPointSize(10)
    font.setBold(False)
    painter.setFont(font)
    painter.setPen(QColor("#5b6675"))
    painter.drawText(28, 100, "Lifelong knowledge editing with a mixture of LoRA experts")
    painter.end()
    return pixmap


def _smoke(app, window) -> int:
    """Load the default model, probe once, print the answer, exit 0; 1 on any failure."""
    from PySide6.QtCore import QTimer

    outcome = {"code": 1}
    started = time.perf_counter()

    from .session.messages import UserMessage

    def finish() -> None:
        window._force_close = True
        window.close()
        QTimer.singleShot(0, app.quit)

    def fail(message) -> None:
        print(f"SMOKE FAILED: {message.title}: {message.text}", file=sys.stderr)
        outcome["code"] = 1
        finish()

    def loaded(info) -> None:
        print(f"loaded {info.display_name} on {info.device} in {time.perf_counter() - started:.1f} s", flush=True)
        window.probe_panel.set_query(SMOKE_QUERIES.get(info.prompt_format, SMOKE_QUERIES["plain"]))
        window.probe_panel.button.click()

    def probed(view) -> None:
        r = view.result
        print(f"probe {r.query!r}: original {r.original_output!r}, edited {r.edited_output!r}, "
              f"{'fired' if r.fired else 'deferred'}; {time.perf_counter() - started:.1f} s in all", flush=True)
        outcome["code"] = 0
        finish()

    def timeout() -> None:
        print(f"SMOKE FAILED: no probe result after {SMOKE_TIMEOUT_S} s", file=sys.stderr)
        finish()

    bench = window.bench
    bench.model_loaded.connect(loaded)
    bench.probe_done.connect(probed)
    bench.message.connect(lambda m: m.level == "error" and fail(m))
    bench.field_error.connect(lambda _form, _field, text: fail(UserMessage("Invalid probe", text)))
    guard = QTimer(singleShot=True, interval=SMOKE_TIMEOUT_S * 1000)
    guard.timeout.connect(timeout)
    guard.start()
    app.exec()
    guard.stop()
    return outcome["code"]


if __name__ == "__main__":
    sys.exit(run())
