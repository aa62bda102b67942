"""Look of the workbench: one palette for widgets and plots, a light scientific-tool style."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("QtAgg")  # with no display matplotlib would pick agg; the app embeds QtAgg canvases

from PySide6.QtGui import QColor, QFont, QPalette  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

# Palette (colour-blind safe pairs: blue/orange for fired/deferred, purple for edits).
ACCENT = "#2563a8"
ACCENT_LIGHT = "#dbe7f5"
FIRED = "#1f7a4d"
FIRED_BG = "#e3f3ea"
DEFERRED = "#b26a00"
DEFERRED_BG = "#fbefdc"
EDIT = "#6f42c1"
MUTED = "#8a94a3"
GRID = "#e6e9ee"
TEXT = "#1f2933"
TEXT_DIM = "#5b6675"
ERROR = "#b42318"
ERROR_BG = "#fdecea"
WINDOW_BG = "#f4f6f9"
PANEL_BG = "#ffffff"
BORDER = "#d5dae1"
ICONS = (Path(__file__).resolve().parent.parent / "resources" / "icons").as_posix()

STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: {WINDOW_BG}; }}
QWidget {{ color: {TEXT}; }}
QTabWidget::pane {{ border: 1px solid {BORDER}; background: {PANEL_BG}; border-radius: 4px; top: -1px; }}
QTabBar::tab {{ background: transparent; padding: 7px 16px; margin-right: 2px; color: {TEXT_DIM};
               border: 1px solid transparent; border-bottom: none; }}
QTabBar::tab:selected {{ background: {PANEL_BG}; color: {TEXT}; border-color: {BORDER};
                        border-top: 2px solid {ACCENT}; border-top-left-radius: 4px; border-top-right-radius: 4px; }}
QTabBar::tab:hover:!selected {{ color: {TEXT}; }}
QGroupBox {{ font-weight: 600; border: 1px solid {BORDER}; border-radius: 5px; margin-top: 14px;
            padding: 10px 8px 8px 8px; background: {PANEL_BG}; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {TEXT}; }}
QLineEdit, QPlainTextEdit, QTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{
    border: 1px solid {BORDER}; border-radius: 4px; padding: 4px 6px; background: #ffffff;
    selection-background-color: {ACCENT_LIGHT}; selection-color: {TEXT}; }}
QSpinBox, QDoubleSpinBox {{ padding-right: 20px; }}
QSpinBox::up-button, QDoubleSpinBox::up-button {{ subcontrol-origin: border; subcontrol-position: top right;
    width: 18px; border-left: 1px solid {BORDER}; border-bottom: 1px solid {GRID}; border-top-right-radius: 4px; }}
QSpinBox::down-button, QDoubleSpinBox::down-button {{ subcontrol-origin: border; subcontrol-position: bottom right;
    width: 18px; border-left: 1px solid {BORDER}; border-bottom-right-radius: 4px; }}
QSpinBox::up-button:hover, QDoubleSpinBox::up-button:hover, QSpinBox::down-button:hover,
QDoubleSpinBox::down-button:hover {{ background: {WINDOW_BG}; }}
QSpinBox::up-arrow, QDoubleSpinBox::up-arrow {{ image: url({ICONS}/arrow-up.svg); width: 8px; height: 5px; }}
QSpinBox::down-arrow, QDoubleSpinBox::down-arrow, QComboBox::down-arrow {{
    image: url({ICONS}/arrow-down.svg); width: 9px; height: 6px; }}
QComboBox {{ padding-right: 22px; }}
QComboBox::drop-down {{ subcontrol-origin: padding; subcontrol-position: top right; width: 20px; border: none; }}
QComboBox QAbstractItemView {{ border: 1px solid {BORDER}; background: white; selection-background-color: {ACCENT_LIGHT}; }}
QLineEdit:focus, QPlainTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus {{
    border: 1px solid {ACCENT}; }}
QLineEdit[invalid="true"], QPlainTextEdit[invalid="true"] {{ border: 1px solid {ERROR}; background: {ERROR_BG}; }}
QLineEdit:disabled, QPlainTextEdit:disabled {{ background: {WINDOW_BG}; color: {MUTED}; }}
QPushButton {{ border: 1px solid {BORDER}; border-radius: 4px; padding: 5px 14px; background: #ffffff; }}
QPushButton:hover {{ background: {WINDOW_BG}; }}
QPushButton:pressed {{ background: {GRID}; }}
QPushButton:disabled {{ color: {MUTED}; background: {WINDOW_BG}; }}
QPushButton[primary="true"] {{ background: {ACCENT}; color: white; border-color: {ACCENT}; font-weight: 600; }}
QPushButton[primary="true"]:hover {{ background: #1d528d; }}
QPushButton[primary="true"]:disabled {{ background: #9db6d3; border-color: #9db6d3; color: #f4f6f9; }}
QProgressBar {{ border: 1px solid {BORDER}; border-radius: 4px; background: #ffffff; text-align: center;
               height: 16px; color: {TEXT}; }}
QProgressBar::chunk {{ background: #8fb2da; border-radius: 3px; }}
QTableView {{ border: 1px solid {BORDER}; gridline-color: {GRID}; background: #ffffff;
             alternate-background-color: #f8f9fb; selection-background-color: {ACCENT_LIGHT};
             selection-color: {TEXT}; }}
QHeaderView::section {{ background: {WINDOW_BG}; border: none; border-bottom: 1px solid {BORDER};
                       border-right: 1px solid {GRID}; padding: 5px 6px; font-weight: 600; color: {TEXT_DIM}; }}
QStatusBar {{ background: {PANEL_BG}; border-top: 1px solid {BORDER}; color: {TEXT_DIM}; }}
QStatusBar QLabel {{ color: {TEXT_DIM}; padding: 0 8px; }}
QLabel[role="hint"] {{ color: {TEXT_DIM}; }}
QLabel[role="error"] {{ color: {ERROR}; }}
QLabel[role="heading"] {{ font-size: 11pt; font-weight: 600; }}
QLabel[role="caption"] {{ color: {TEXT_DIM}; font-size: 8pt; text-transform: uppercase; }}
QSplitter::handle {{ background: {WINDOW_BG}; }}
QToolButton[flat="true"] {{ border: none; padding: 2px 4px; color: {ACCENT}; }}
QScrollArea {{ border: none; background: transparent; }}
"""

MPL_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.labelsize": 8.5,
    "axes.labelcolor": TEXT_DIM,
    "axes.edgecolor": BORDER,
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": TEXT_DIM,
    "ytick.color": TEXT_DIM,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.facecolor": PANEL_BG,
    "axes.facecolor": PANEL_BG,
    "savefig.facecolor": PANEL_BG,
    "savefig.dpi": 150,
}


def apply(app: QApplication) -> None:
    """Style the application and matplotlib."""
    matplotlib.rcParams.update(MPL_RC)
    app.setStyle("Fusion")
    palette = app.palette()
    palette.setColor(QPalette.Window, QColor(WINDOW_BG))
    palette.setColor(QPalette.Base, QColor("#ffffff"))
    palette.setColor(QPalette.AlternateBase, QColor("#f8f9fb"))
    palette.setColor(QPalette.Highlight, QColor(ACCENT_LIGHT))
    palette.setColor(QPalette.HighlightedText, QColor(TEXT))
    palette.setColor(QPalette.Text, QColor(TEXT))
    palette.setColor(QPalette.WindowText, QColor(TEXT))
    palette.setColor(QPalette.ToolTipBase, QColor("#ffffff"))
    palette.setColor(QPalette.ToolTipText, QColor(TEXT))
    app.setPalette(palette)
    font = QFont(app.font())
    font.setPointSizeF(9.5)
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)


def repolish(widget) -> None:
    """Re-apply the style sheet after a dynamic property changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)
