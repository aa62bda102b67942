"""`python main.py --smoke`: open the window, load the default model, probe once, exit 0.
Run in-process here (the same code path as the command, without a second interpreter)."""

import sys

import pytest

import app_support  # noqa: F401 - sets QT_QPA_PLATFORM=offscreen

pytestmark = pytest.mark.real_model


def test_smoke_mode_loads_probes_and_exits_0(qapp, monkeypatch, capsys):
    from elder_engine import ModelLoadError, default_model_path
    try:
        default_model_path()
    except ModelLoadError as error:
        pytest.skip(str(error))
    from app.main import run
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    assert run(["--smoke"]) == 0
    out = capsys.readouterr().out
    # a new history on the default model is in chat: the smoke run asks the question form
    assert "loaded SmolLM2" in out and "probe 'What is the capital of France?'" in out and "Paris" in out


def test_help_mentions_smoke(capsys):
    from app.main import parse_args
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert "--smoke" in capsys.readouterr().out


def test_qt_calls_do_not_drop_references_to_none(qapp):
    """PySide6 6.12.0 lost one reference to None per Qt call returning nothing; on Python 3.11
    a long session then aborts ("deallocating None"). The pinned Qt must not."""
    import sys

    from PySide6.QtWidgets import QWidget

    widget = QWidget()
    before = sys.getrefcount(None)
    for _ in range(1000):
        widget.setEnabled(True)
    assert abs(sys.getrefcount(None) - before) < 50
