"""Figures of the app that need no model: their empty states."""

import app_support  # noqa: F401 - sets QT_QPA_PLATFORM=offscreen


def test_router_view_before_any_probe_shows_a_hint_not_bare_axes(qtbot):
    from app.panels.router_view import RouterView
    from app.render import render_idle

    view = RouterView()
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: hasattr(view, "edit_code") and render_idle(), timeout=30_000)
    for grid in (view.query_code, view.edit_code):
        ax = grid.ax
        assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []
        assert [t.get_text() for t in ax.texts] == ["no probe yet"]
        assert ax.get_title()
