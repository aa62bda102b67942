"""The pre-flight check that turns Qt's xcb abort into a message naming what to install."""

from app.display_check import debian_package, not_found, uses_xcb

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxcb-icccm.so.4 => not found
"""


def test_not_found_lists_each_missing_library_once():
    assert not_found(LDD) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]


def test_debian_package_names_follow_the_soname():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"


def test_uses_xcb_follows_the_environment(monkeypatch):
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not uses_xcb()
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("DISPLAY", ":0")
    assert uses_xcb()
    monkeypatch.delenv("DISPLAY")
    assert not uses_xcb()
