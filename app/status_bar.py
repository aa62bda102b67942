"""Status bar: model, device, threads (changeable), the history's prompt format, number of
edits, memory, and the running job with its progress and a Cancel button."""

from __future__ import annotations

import os

import psutil
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QLabel, QMenu, QProgressBar, QPushButton, QStatusBar, QToolButton

from .format_choice import describe, label

MEMORY_POLL_MS = 2000


class WorkbenchStatusBar(QStatusBar):
    threads_requested = Signal(int)
    cancel_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.activity = QLabel("Ready")
        self.job_progress = QProgressBar()
        self.job_progress.setFixedWidth(160)
        self.job_progress.setMaximumHeight(16)
        self.job_progress.setTextVisible(False)
        self.job_progress.hide()
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop the running job (Esc)")
        self.cancel.setStyleSheet("QPushButton { padding: 1px 10px; }")
        self.cancel.clicked.connect(self.cancel_requested)
        self.cancel.hide()
        self.model = QLabel("No model")
        self.device = QLabel("")
        self.threads = QToolButton()
        self.threads.setAutoRaise(True)
        self.threads.setPopupMode(QToolButton.InstantPopup)
        self.threads.setToolTip("PyTorch threads. More than the free cores slows everything down.")
        menu = QMenu(self.threads)
        for n in range(1, max(2, os.cpu_count() or 2) + 1):
            menu.addAction(f"{n} thread{'s' if n > 1 else ''}", lambda n=n: self.threads_requested.emit(n))
        self.threads.setMenu(menu)
        self.format = QLabel("")
        self.edits = QLabel("0 edits")
        self.memory = QLabel("")
        self.memory.setToolTip("Resident memory of this process")
        self.addWidget(self.activity, 1)
        self.addWidget(self.job_progress)
        self.addWidget(self.cancel)
        for widget in (self.model, self.device, self.threads, self.format, self.edits, self.memory):
            self.addPermanentWidget(widget)
        self.set_threads(1)
        self._process = psutil.Process()
        self._timer = QTimer(self, interval=MEMORY_POLL_MS)
        self._timer.timeout.connect(self.update_memory)
        self._timer.start()
        self.update_memory()

    def set_model(self, name: str, device: str) -> None:
        self.model.setText(f"Model: {name}")
        self.device.setText(f"Device: {device}")

    def set_threads(self, n: int) -> None:
        self.threads.setText(f"Threads: {n}")

    def set_format(self, fmt: str) -> None:
        self.format.setText(f"Format: {label(fmt).lower()}")
        self.format.setToolTip(f"{describe(fmt)}. Fixed for this history; File → New history to use another.")

    def show_history(self, state) -> None:
        """The open history's format and its applied / undone edits."""
        self.set_format(state.prompt_format)
        applied = sum(1 for e in state.entries if getattr(e, "status", "applied") == "applied")
        self.set_edits(applied, len(state.entries) - sum(1 for e in state.entries
                                                          if getattr(e, "status", "") == "reverted"))

    def set_edits(self, applied: int, total: int) -> None:
        extra = f" ({total - applied} undone)" if total > applied else ""
        self.edits.setText(f"{applied} edit{'s' if applied != 1 else ''}{extra}")

    def update_memory(self) -> None:
        try:
            rss = self._process.memory_info().rss
        except psutil.Error:
            return
        self.memory.setText(f"Memory: {rss / 2**30:.2f} GB" if rss >= 2**30 else f"Memory: {rss / 2**20:.0f} MB")

    def job_started(self, label: str, cancellable: bool) -> None:
        self.activity.setText(f"{label}…")
        self.job_progress.setRange(0, 0)
        self.job_progress.show()
        self.cancel.setVisible(cancellable)
        self.cancel.setEnabled(True)

    def job_progress_changed(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.job_progress.setRange(0, total)
            self.job_progress.setValue(done)
        if message:
            label = self.activity.text().split(" — ")[0]
            self.activity.setText(f"{label} — {message}")

    def job_ended(self, text: str = "Ready") -> None:
        self.activity.setText(text)
        self.job_progress.hide()
        self.cancel.hide()
