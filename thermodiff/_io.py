"""File output for the command line: a report appears whole or not at all.

``write_report`` stages every file of a report in a temporary folder and swaps the report in
at the end: a failure or an interrupt before the swap removes the staging folder and leaves the
previous report (if any) exactly as it was. ``COMMIT_LOCK`` is held while a report is staged and
swapped in, so the Ctrl-C handler of the command line (``_cli._leave``) waits for a swap to
finish instead of cutting it in half, and then knows whether the report was written
(``last_report``) or removes the unfinished staging folder (``abandon_staging``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

COMMIT_LOCK = threading.RLock()  # re-entrant: the main thread's own handler never waits on itself
_STATE = {"staging": None, "written": None, "owner": None}


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created (deepest last)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    for q in reversed(missing):
        q.mkdir()
    return list(reversed(missing))


def _remove_folders(created: list[Path]) -> None:
    for q in reversed(created):
        try:
            q.rmdir()
        except OSError:
            pass


def write_report(out, files: dict[str, bytes]) -> None:
    """Write the files of one report (name -> bytes) into the folder ``out``, all or nothing.

    A new ``out`` is staged beside its destination and renamed into place in one step. An
    existing ``out`` (a previous report, or a user's folder) gets a staging folder inside it;
    once every file is written there in full (the step that can fail: no space, no permission),
    they are renamed over the old ones (renames in one folder do not fail for lack of space; if
    one fails all the old files are put back). Files of ``out`` that the new report does not
    name are left alone. On any failure the
    staging folder (and any folder this call created) is removed and the exception propagates.
    """
    out = Path(out)
    for name in files:
        if not name or "/" in name or os.sep in name or name in (".", ".."):
            raise ValueError(f"a report file name must be a plain name, got {name!r}")
    mask = _umask()
    with COMMIT_LOCK:
        _STATE["owner"] = threading.get_ident()
        created: list[Path] = []
        stage = None
        try:
            fresh = not out.exists()
            if fresh:
                created = _make_folders(out.parent)
                stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
            else:
                stage = Path(tempfile.mkdtemp(prefix=".thermodiff-staging-", dir=out))
            _STATE["staging"] = stage
            for name, data in files.items():
                fd = os.open(stage / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~mask)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            if fresh:
                os.chmod(stage, 0o777 & ~mask)  # mkdtemp made it private
                os.rename(stage, out)  # the whole report appears at once
            else:
                _swap_in(stage, out, list(files))
                shutil.rmtree(stage, ignore_errors=True)
            _STATE["staging"] = None
            _STATE["written"] = out
        except BaseException:
            if stage is not None:
                shutil.rmtree(stage, ignore_errors=True)
            _STATE["staging"] = None
            _remove_folders(created)
            raise
        finally:
            _STATE["owner"] = None


def _swap_in(stage: Path, out: Path, names: list[str]) -> None:
    """Move the staged files over those of ``out``, keeping each old file in ``stage/.old``
    until all are in place; if a rename fails, every old file is put back."""
    backup = stage / ".old"
    backup.mkdir()
    done = []
    try:
        for name in names:
            had = os.path.lexists(out / name)
            if had:
                os.replace(out / name, backup / name)
            done.append((name, had))
            os.replace(stage / name, out / name)
    except BaseException:
        for name, had in reversed(done):
            if had and os.path.lexists(backup / name):
                os.replace(backup / name, out / name)
            elif not had:
                try:
                    os.unlink(out / name)
                except FileNotFoundError:
                    pass
        raise


def writing_report() -> bool:
    """True on the thread that is staging or swapping in a report right now."""
    return _STATE["owner"] == threading.get_ident()


def abandon_staging() -> None:
    """Remove an unfinished staging folder (call with ``COMMIT_LOCK`` held, just before exit)."""
    stage = _STATE["staging"]
    if stage is not None:
        shutil.rmtree(stage, ignore_errors=True)
        _STATE["staging"] = None


def last_report():
    """The folder of the last report written completely since ``forget_report``, or None."""
    return _STATE["written"]


def forget_report() -> None:
    _STATE["written"] = None


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n").encode()


def figure_bytes(fig, fmt: str = "png") -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120, bbox_inches="tight")
    return buf.getvalue()
