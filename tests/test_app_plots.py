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


def _scoped_result(fired: bool):
    from elder_engine.editing.probe import ProbeResult

    probs = (0.70, 0.05, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01) if fired else (0.05, 0.02, 0.01, 0.01, 0.0, 0.0, 0.0, 0.0)
    return ProbeResult(
        query="France's capital city is", edited_output=" Rome", original_output=" Paris", target=None,
        edited_target_prob=None, original_target_prob=None, router_weights=tuple(probs for _ in range(6)),
        top_k=tuple(((0,) if fired else ()) for _ in range(6)), code=(), nearest_edit=0,
        nearest_prompt="The capital of France is", hamming=None, epsilon=12, fired=fired, deferral_enabled=True,
        routing="scoped", similarity=0.82 if fired else 0.41, scope_threshold=0.6,
        defer_probability=1.0 - sum(probs), matched_token="France")


def test_router_view_shows_the_scoped_distribution_with_edit_names_the_rest_grouped_and_defer(qtbot):
    from app.session.engine_session import ProbeView
    from app.panels.router_view import RouterView
    from app.render import render_idle

    prompts = ["The capital of France is"] + [f"Edit number {i}" for i in range(2, 9)]
    view = RouterView()
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: hasattr(view, "edit_code") and render_idle(), timeout=30_000)
    view.show_probe(ProbeView(_scoped_result(True), edit_prompts=tuple(prompts)))
    qtbot.waitUntil(render_idle, timeout=30_000)
    labels = [t.get_text() for t in view.bars.ax.get_yticklabels()]
    assert labels[0] == "#1 The capital of France is" and labels[-1] == "defer (original model)"
    assert "3 other edits" in labels                   # 8 edits: the top 5 named, the rest grouped
    widths = {t.get_text(): p.get_width() for t, p in zip(view.bars.ax.get_yticklabels(), view.bars.ax.patches)}
    assert abs(widths["#1 The capital of France is"] - 0.70) < 1e-9
    assert abs(widths["defer (original model)"] - 0.18) < 1e-6
    gauge = view.query_code.ax
    assert "threshold 0.60" in [t.get_text() for t in gauge.texts]     # the calibrated threshold is drawn
    assert not view.edit_code.ax.get_visible()
    assert "0.82" in view.caption.get_text() and "fired" in view.caption.get_text()
    view.show_probe(ProbeView(_scoped_result(False), edit_prompts=tuple(prompts)))
    qtbot.waitUntil(render_idle, timeout=30_000)
    assert "deferred" in view.caption.get_text()
