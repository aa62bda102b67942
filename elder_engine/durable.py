"""fsync helpers for files renamed into place.

A rename is atomic, but without an fsync of the new file's data first, a power cut soon after
can leave the new name pointing at an empty or partly written file (ext4 and xfs may commit
the rename before the data). And the rename itself is only durable once the folder is synced.
So: write the temp file, `fsync_file` it, rename, `fsync_dir` the folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every file under a folder, then its folders, deepest first, then the folder itself."""
    folder = Path(folder)
    for p in folder.rglob("*"):
        if p.is_file():
            fsync_file(p)
    for p in sorted((d for d in folder.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
        fsync_dir(p)
    fsync_dir(folder)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make renames and new names in a folder durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)
