"""Atomic writes: a file or directory is either absent or complete, never half-written.

Write to a temporary sibling, fsync, then rename into place. An error (a full disk, an exception in
the block) removes the temporary and leaves the previous version in place; a hard crash leaves at worst
a hidden `.NAME.*.tmp` / `.partial` / `.old` sibling that is safe to delete (an `.old` directory is the
previous complete version, should the crash have come between its two renames).
`remove_stale_temporaries` clears those leftovers (and puts such an `.old` back) at the start of the next run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from harness.core.errors import HarnessError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_full(path: Path, error: BaseException) -> HarnessError | None:
    """The one-line error for a write that ran out of disk space or quota; None for any other failure."""
    if isinstance(error, OSError) and error.errno in _NO_SPACE:
        return HarnessError(f"{path}: disk full while writing ({os.strerror(error.errno)}); the previous version is kept; free space and re-run")
    return None


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, with the permissions a plain `open(path, "w")` would give."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        full = _disk_full(path, error)
        if full is not None:
            raise full from error
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `final` only if the block finishes without error.

    It gets the permissions of a plain `mkdir` (tempfile's are owner-only)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        tmp.chmod(0o777 & ~_umask())
        yield tmp
        _fsync_tree(tmp)
        _swap_in(tmp, final)
    except OSError as error:
        full = _disk_full(final, error)
        if full is not None:
            raise full from error
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync_tree(directory: Path) -> None:
    """Flush every file and folder under `directory` to disk, so the rename publishes complete contents."""
    for folder, _, files in os.walk(directory):
        for name in files:
            fd = os.open(Path(folder) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _swap_in(new: Path, final: Path) -> None:
    """Rename `new` to `final`; an existing `final` is moved aside first and put back if that rename fails,
    so there is no moment at which the old complete directory is already deleted and the new one not in place."""
    if not final.exists():
        os.replace(new, final)
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        os.replace(final, old)
        try:
            os.replace(new, final)
        except BaseException:
            os.replace(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(final.parent)


_TEMPORARY = re.compile(r"^\.(?P<final>.+)\.[a-z0-9_]{8}\.(?P<kind>tmp|partial|old)$")
"""The names `tempfile` gives this module's temporaries: `.NAME.` + 8 random characters + suffix."""


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete the temporaries a killed writer left anywhere under `root`; return what was removed or restored.

    An `.old` directory whose complete version is missing is renamed back into place (the crash came
    between the two renames of a swap). Only call this while no writer is active under `root` (with
    the run lock held): a live writer's temporaries have the same names.
    """
    touched: list[Path] = []
    for folder, dirs, files in os.walk(root):
        touched += remove_leftovers_in(Path(folder), lambda final: True, names=[*dirs, *files])
        dirs[:] = [d for d in dirs if _TEMPORARY.match(d) is None]
    return touched


def remove_leftovers_in(folder: Path, is_mine: Callable[[str], bool], *, names: list[str] | None = None) -> list[Path]:
    """Clear the temporaries directly in `folder` whose final name `is_mine` (an `.old` whose final is missing is put back).

    Where several writers share a folder, a writer about to redo its own work clears only its own
    leftovers this way, without touching a live neighbour's temporaries.
    """
    touched: list[Path] = []
    for name in sorted(names if names is not None else _listing(folder)):
        match = _TEMPORARY.match(name)
        if match is None or not is_mine(match["final"]):
            continue
        path = folder / name
        final = folder / match["final"]
        if match["kind"] == "old" and not final.exists():
            os.replace(path, final)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        touched.append(path)
    return touched


def _listing(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []
