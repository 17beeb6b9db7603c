"""The one way mini_cal writes a file: atomically, so that a reader sees the old file or the complete new one.

The temporary file has a unique name in the target's folder (two writers of one path never mix their bytes), is
flushed to disk before it replaces the target, and is removed on any failure, Ctrl-C included. A process killed
outright (``kill -9``) cannot clean up; its temporary files (``.NAME.PID-XXXXXXXX.tmp``, PID no longer running) are
removed by the next write into the same folder. Files are created
with the usual permissions (0666 minus the umask, 0644 by default), like any other file the user writes.

A symbolic link is written through: its target is replaced (as ``echo > link`` would write it), not the link. A
special file (``/dev/stdout``, ``/dev/null``, a named pipe) cannot be replaced and is written directly.

A :class:`Manifest` is the record of what mini-cal wrote into one output folder (``.mini-cal-manifest.json``: each
file with its SHA-256), so that ``--overwrite`` and ``--resume`` act on those files only (:class:`mini_cal.lab.runs.
OutFolder`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
from pathlib import Path

_TMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")  # the temporary names atomic_write makes


def atomic_write(path, write, binary: bool = True) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it to ``path``; returns ``path``.

    A link is written through (its target is replaced); a special file (a device, a pipe) is written directly."""
    path = Path(path)
    if _special(path):
        with open(path, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
        return path
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    record = recording(target)
    if record is not None:
        record.plan([target])
    remove_stale_temporaries(target.parent)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb" if binary else "x", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:  # KeyboardInterrupt and SystemExit included: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.filename == str(tmp):  # a full disk, say: name the file being written
            exc.filename = str(path) if target == path else f"{path} (a link to {target})"
        raise
    if record is not None:
        record.add([target])
    return path


def _special(path: Path) -> bool:
    """Whether ``path`` (or what it links to) exists and is neither a regular file nor a folder: a device, a pipe,
    a socket, which a rename would replace by a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a process we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temporaries(folder) -> list:
    """Remove the temporary files that writers killed mid-write (their process is gone) left in ``folder``."""
    removed = []
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return removed
    for name in names:
        match = _TMP.match(name)
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder or ".", name))
                removed.append(name)
    return removed


def write_text(text: str, path) -> Path:
    return atomic_write(path, lambda fh: fh.write(text), binary=False)


def write_json(obj, path) -> Path:
    return write_text(json.dumps(obj, indent=1) + "\n", path)


def write_npz(arrays: dict, path, compressed: bool = False) -> Path:
    import numpy as np

    return atomic_write(path, lambda fh: (np.savez_compressed if compressed else np.savez)(fh, **arrays))


def save_figure(fig, path, dpi: int = 110) -> str:
    """Write a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    return str(path)


# ------------------------------------------------------------------------------------ the record of a folder
MANIFEST = ".mini-cal-manifest.json"


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Manifest:
    """What mini-cal wrote into ``folder``: ``{relative path: SHA-256}``, kept in ``folder/.mini-cal-manifest.json``.

    A path is *planned* (recorded with no hash) before it is written, and its hash is recorded once it is complete,
    so that a run killed in between leaves a record of every file it may have written. Only one process (the one
    that holds the folder) updates the record; it is written atomically, and only once something was planned."""

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, MANIFEST)
        self.files = self._read()
        self.pid = os.getpid()  # a forked worker inherits the object, but never writes the record

    def _read(self) -> dict:
        """The record on disk ({} when there is none); a damaged record is an error (nothing in the folder can be
        told from the user's files)."""
        if not os.path.exists(self.path):
            return {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                saved = json.load(fh)
            files = saved["files"]
            if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in files.items()):
                raise ValueError("entries are not {path: sha256}")
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{self.path!r}: mini-cal's record of this folder is damaged ({exc})") from None
        for name in files:
            if not self.inside(name):
                raise ValueError(
                    f"{self.path!r}: the record lists {name!r}, which is not a file inside the folder (damaged or "
                    "foreign record); mini-cal acts on nothing there: move the folder away, or choose another"
                )
        return files

    def inside(self, name: str) -> bool:
        """Whether a record's entry names a path inside the folder: relative, no '..', no link leading out."""
        parts = name.split("/")
        if not name or os.path.isabs(name) or "\\" in name or any(p in ("", ".", "..") for p in parts):
            return False
        root = os.path.realpath(self.folder)
        return os.path.realpath(os.path.join(root, *parts)).startswith(root + os.sep)

    def name(self, path) -> str:
        """``path`` relative to the folder, with '/' separators (the key of the record)."""
        return Path(os.path.relpath(os.path.realpath(path), os.path.realpath(self.folder))).as_posix()

    def save(self) -> None:
        write_json({"files": dict(sorted(self.files.items()))}, self.path)

    def plan(self, paths) -> None:
        """Record that ``paths`` are about to be (re)written: their old hashes no longer hold."""
        names = [self.name(p) for p in paths]
        if any(self.files.get(n, "") is not None for n in names):
            self.files.update(dict.fromkeys(names))
            self.save()

    def add(self, paths) -> None:
        """Record the hashes of ``paths`` as they are now (complete files mini-cal wrote)."""
        self.files.update({self.name(p): sha256_file(p) for p in paths})
        self.save()

    def state(self, path) -> str:
        """How ``path`` stands: "unlisted", "missing", "planned" (no hash recorded), "changed" or "same"."""
        name = self.name(path)
        if name not in self.files:
            return "unlisted"
        if not os.path.isfile(path):
            return "missing"
        if self.files[name] is None:
            return "planned"
        return "same" if sha256_file(path) == self.files[name] else "changed"

    def __enter__(self):
        """While entered, everything this process writes into the folder with :func:`atomic_write` is recorded."""
        _RECORDING.append(self)
        return self

    def __exit__(self, *exc):
        _RECORDING.remove(self)


_RECORDING = []  # the Manifests entered in this process


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temporary names."""
    return bool(_TMP.match(name))


def recording(path):
    """The entered :class:`Manifest` of this process whose folder holds ``path`` (None: nothing records it)."""
    full = os.path.realpath(path)
    for manifest in _RECORDING:
        root = os.path.realpath(manifest.folder)
        if manifest.pid == os.getpid() and full.startswith(root + os.sep) and full != os.path.realpath(manifest.path):
            return manifest
    return None
