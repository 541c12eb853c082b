"""Atomic file writes shared by the main job and the plotting helpers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

__all__ = ["write_atomic"]


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, then rename.

    An interrupted write never leaves a partial file under ``path``; the temporary file is
    removed on any error.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; give the usual umask-based mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
