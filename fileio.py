"""Writing files so that an interruption never leaves a torn one: every file the suite writes goes to a temporary
name in its folder first and is renamed when complete. At the bottom of the suite's imports (the standard library
only; matplotlib on first use).
"""

import json
import os
import tempfile

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path, write):
    """Calls ``write(temp_path)`` then renames the result onto ``path``.

    The temporary file sits in the same folder (same filesystem) and keeps the
    final suffix, which ``model.save`` insists on.
    """
    folder, name = os.path.split(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1], dir=folder)
    os.close(fd)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported on first use (training never needs it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path, dpi=120):
    """Lays out a matplotlib figure, writes it atomically and closes it; returns ``path``."""
    figure.tight_layout()
    atomic_write(path, lambda temp: figure.savefig(temp, dpi=dpi))
    pyplot().close(figure)
    return path


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(path, text):
    def write(temp):
        with open(temp, "w") as handle:
            handle.write(text)

    atomic_write(path, write)
