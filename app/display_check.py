"""Before Qt starts on an X11 display: are the system libraries its xcb plugin needs there?

Without them Qt aborts the process with a notice about platform plugins that names none of the
missing files. We ask `ldd` which of the plugin's libraries the system cannot find, and say
which Debian packages to install.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Optional


def uses_xcb() -> bool:
    """Qt on Linux picks xcb when X11 is there and nothing else was asked for."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0] == "xcb"
    return bool(os.environ.get("DISPLAY")) and not os.environ.get("WAYLAND_DISPLAY")


def not_found(ldd_output: str) -> list[str]:
    """Library names `ldd` reports as 'not found', in order, without repeats."""
    names = re.findall(r"^\s*(\S+)\s+=>\s+not found", ldd_output, flags=re.M)
    return list(dict.fromkeys(names))


def debian_package(library: str) -> str:
    """'libxcb-icccm.so.4' -> 'libxcb-icccm4'; 'libxkbcommon-x11.so.0' -> 'libxkbcommon-x11-0'
    (Debian's rule for library packages: the soname's version joins the name, with a hyphen
    when the name ends in a digit)."""
    match = re.match(r"(.+)\.so\.(\d+)", library)
    if not match:
        return library
    name, version = match.groups()
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def missing_xcb_libraries() -> list[str]:
    """System libraries the Qt xcb plugin needs and cannot find ([] when unsure)."""
    try:
        import PySide6
    except ImportError:
        return []
    qt = Path(PySide6.__file__).parent / "Qt"
    files = [qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"]
    missing: list[str] = []
    for path in files:
        if not path.is_file():
            continue
        try:
            out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        missing += [name for name in not_found(out) if name not in missing]
    return missing


def xcb_problem() -> Optional[str]:
    """A message for the user when Qt's X11 plugin cannot load, else None."""
    if not uses_xcb():
        return None
    missing = missing_xcb_libraries()
    if not missing:
        return None
    packages = " ".join(debian_package(name) for name in missing)
    return (f"ELDER Workbench cannot open a window: Qt's X11 plugin needs system libraries that are "
            f"not installed ({', '.join(missing)}).\nOn Debian or Ubuntu: sudo apt-get install {packages}\n"
            f"(or run headless: QT_QPA_PLATFORM=offscreen python main.py --smoke)")
