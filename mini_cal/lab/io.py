"""The one way mini_cal writes a file: atomically, so that a reader sees the old file or the complete new one.

The temporary file has a unique name in the target's folder (two writers of one path never mix their bytes), is
flushed to disk before it replaces the target, and is removed on any failure, Ctrl-C included. A process killed
outright (``kill -9``) cannot clean up; its temporary files (``.NAME.PID-XXXXXXXX.tmp``, PID no longer running) are
removed by the next write into the same folder. Files are created
with the usual permissions (0666 minus the umask, 0644 by default), like any other file the user writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from pathlib import Path

_TMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")  # the temporary names atomic_write makes


def atomic_write(path, write, binary: bool = True) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it to ``path``; returns ``path``."""
    path = Path(path)
    remove_stale_temporaries(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb" if binary else "x", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # KeyboardInterrupt and SystemExit included: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.filename == str(tmp):  # a full disk, say: name the file being written
            exc.filename = str(path)
        raise
    return path


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
