"""Writing files and folders atomically: whole or not at all.

Every file bratslib writes (run folders, the preprocessed cache, the synthetic data set,
predicted label maps) is first written under a temporary name in the same folder and then
renamed into place with :func:`os.replace`, which is atomic on one file system: a process
killed half-way leaves the old file (or nothing) and a stray temporary name, never half of
a file under the real name.  :func:`atomic_path` is that pattern, once, for any writer;
:func:`write_bytes_atomic` is its most common use.

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write a file or a folder to; renamed to ``path``
    when the block ends without an exception, removed in every case.

    Args:
        path: the file or folder to write; its parent folders are created.
        suffix: the temporary name's ending, for writers that choose a format by the name
            (``".keras"`` for ``model.save``, ``".nii.gz"`` for ``nibabel.save``).

    A folder replaces ``path`` only where ``path`` does not exist or is an empty folder
    (:func:`os.replace`); to replace a full one, move it away inside the block.  Where the
    rename fails (:class:`OSError`), the exception propagates and ``path`` is unchanged.

    Example::

        with atomic_path(run_dir / "model.keras", suffix=".keras") as tmp:
            model.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to the file ``path`` through :func:`atomic_path`, flushed to disk
    (``os.fsync``) before the rename; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


def copy_atomic(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` becomes a complete copy of the file ``source``, or does not appear: a hard link
    where the file system allows one (instant, no second copy of the bytes: a checkpoint of a
    ResNet50 is 330 MB), else the bytes written through :func:`write_bytes_atomic`.  The two
    names then stay independent: removing or replacing one leaves the other whole."""
    source, path = Path(source), Path(path)
    with atomic_path(path) as tmp:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (another file system, some network drives)
            tmp.write_bytes(source.read_bytes())
    return path


__all__ = ["atomic_path", "copy_atomic", "write_bytes_atomic"]
