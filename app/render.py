"""Matplotlib figures rendered off the GUI thread.

An Agg draw of a figure with a few dozen labels takes tens of milliseconds on a quiet
machine and several hundred on a busy two-core one: far too long for the GUI thread. So
every embedded figure (`FigureCanvasQTAgg`, subclassed as `ThreadedCanvas`) is changed and
drawn in ONE render thread, the thread that owns all matplotlib scene graphs (matplotlib
wants the thread that changes a figure to draw it). The GUI thread only paints the last
finished frame, a QImage, which costs a memory copy.

A plot queues closures with `RenderTarget.call(fn)`; the render thread runs every queued
closure of that plot, draws once, and hands the frame back with a queued signal.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Callable, Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.backend_bases import MouseEvent
from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QWidget

from .runtime import lower_thread_priority

log = logging.getLogger(__name__)


RENDER_NICE = 10   # drawing a figure may wait; the GUI thread and the model may not


class _Renderer(QObject):
    """Lives in the render thread."""

    @Slot()
    def started(self) -> None:
        lower_thread_priority(RENDER_NICE)

    @Slot(object)
    def render(self, target: "RenderTarget") -> None:
        target._render_pending()


class RenderService(QObject):
    """The process-wide render thread (created on first use)."""

    _post = Signal(object)
    _instance: Optional["RenderService"] = None

    def __init__(self) -> None:
        super().__init__()
        self.thread = QThread()
        self.thread.setObjectName("elder-plot-render")
        self.renderer = _Renderer()
        self.renderer.moveToThread(self.thread)
        self._post.connect(self.renderer.render)
        self.thread.started.connect(self.renderer.started)
        self._lock = threading.Lock()
        self.pending = 0
        self.thread.start()
        atexit.register(self.stop)

    @classmethod
    def get(cls) -> "RenderService":
        if cls._instance is None:
            cls._instance = RenderService()
        return cls._instance

    def post(self, target: "RenderTarget") -> None:
        with self._lock:
            self.pending += 1
        self._post.emit(target)

    def done(self) -> None:
        with self._lock:
            self.pending -= 1

    @property
    def busy(self) -> bool:
        return self.pending > 0

    def stop(self) -> None:
        if self.thread.isRunning():
            self.thread.quit()
            self.thread.wait(5000)


def render_idle() -> bool:
    """True when no figure is waiting to be drawn (tests wait for this before a grab)."""
    return RenderService._instance is None or not RenderService._instance.busy


class ThreadedCanvas(FigureCanvasQTAgg):
    """A FigureCanvasQTAgg whose figure is drawn in the render thread; the GUI thread
    paints the last finished frame. Mouse moves are forwarded to the render thread."""

    def __init__(self, figure, target: "RenderTarget") -> None:
        super().__init__(figure)
        self._target = target
        self.frame: Optional[QImage] = None

    # -- drawing: never on the GUI thread --------------------------------------------------
    def draw(self) -> None:
        if QThread.currentThread() == self.thread():
            self._target.call(None)
        else:
            FigureCanvasAgg.draw(self)

    def draw_idle(self) -> None:
        self._target.call(None)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        try:
            painter.fillRect(event.rect(), QColor("white"))
            if self.frame is not None:
                painter.drawImage(0, 0, self.frame)
        finally:
            painter.end()

    def resizeEvent(self, event) -> None:  # noqa: N802
        QWidget.resizeEvent(self, event)
        ratio = self.device_pixel_ratio
        width, height = event.size().width() * ratio, event.size().height() * ratio
        figure = self.figure
        self._target.call(lambda: figure.set_size_inches(width / figure.dpi, height / figure.dpi, forward=False))

    def _update_pixel_ratio(self) -> None:
        ratio = self.devicePixelRatioF() or 1
        self._target.call(lambda: self._set_device_pixel_ratio(ratio))
        self._target.call(None)

    # -- mouse: the scene graph is read in the render thread only --------------------------
    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        x, y = self.mouseEventCoords(event)
        self._target.call(lambda: self._target.on_mouse_move(MouseEvent("motion_notify_event", self, x, y)))

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._target.call(lambda: self._target.on_mouse_move(None))

    def enterEvent(self, event) -> None:  # noqa: N802
        pass

    def mousePressEvent(self, event) -> None:  # noqa: N802
        pass

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        pass

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        pass

    def wheelEvent(self, event) -> None:  # noqa: N802
        pass

    def keyPressEvent(self, event) -> None:  # noqa: N802
        QWidget.keyPressEvent(self, event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        QWidget.keyReleaseEvent(self, event)


class RenderTarget(QObject):
    """The GUI-side owner of one figure: queues changes, receives finished frames."""

    frame_ready = Signal(object)      # QImage, emitted from the render thread
    failed = Signal(str)

    def __init__(self, figure, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.figure = figure
        self.canvas = ThreadedCanvas(figure, self)
        self.frame_ready.connect(self._show_frame)
        self._lock = threading.Lock()
        self._tasks: list[Callable[[], None]] = []
        self._scheduled = False
        self.frames = 0
        self.hover: Optional[Callable] = None

    def call(self, fn: Optional[Callable[[], None]]) -> None:
        """Run `fn` (if any) in the render thread, then redraw. Calls made before the next
        draw are drawn together."""
        with self._lock:
            if fn is not None:
                self._tasks.append(fn)
            if self._scheduled:
                return
            self._scheduled = True
        RenderService.get().post(self)

    def on_mouse_move(self, event) -> None:
        """Render thread: a hover handler may change artists (the figure is redrawn after)."""
        if self.hover is not None:
            self.hover(event)

    def _render_pending(self) -> None:
        """Render thread. Always answers with frame_ready (None when drawing failed), which
        the GUI thread counts as done, so `render_idle()` means 'frames shown'."""
        image = None
        try:
            with self._lock:
                tasks, self._tasks, self._scheduled = self._tasks, [], False
            for task in tasks:
                try:
                    task()
                except Exception as error:  # noqa: BLE001 - a broken plot must not kill the thread
                    log.exception("plot update failed")
                    self.failed.emit(f"{type(error).__name__}: {error}")
            FigureCanvasAgg.draw(self.canvas)
            buffer = self.canvas.buffer_rgba()
            image = QImage(bytes(buffer), buffer.shape[1], buffer.shape[0], QImage.Format_RGBA8888).copy()
            image.setDevicePixelRatio(self.canvas.device_pixel_ratio)
        except Exception:  # noqa: BLE001
            log.exception("plot rendering failed")
        finally:
            self.frame_ready.emit(image)

    @Slot(object)
    def _show_frame(self, image: Optional[QImage]) -> None:
        RenderService.get().done()
        if image is not None:
            self.canvas.frame = image
            self.frames += 1
            self.canvas.update()
