"""The files of one run folder, and writing them so an interruption never leaves a torn file.

A run folder holds ``config.json`` (the flags and the preprocessing of the run),
``metrics.csv`` (one row per report), ``latest.keras`` and ``best.keras``,
``ckpt/`` (``tf.train.CheckpointManager`` state for resuming) and the
TensorBoard event files under ``train/`` and ``validation/``.
"""

import json
import os
import shutil
import tempfile

CONFIG = "config.json"
METRICS = "metrics.csv"
LATEST_MODEL = "latest.keras"
BEST_MODEL = "best.keras"
CHECKPOINTS = "ckpt"
# Everything a training run writes; --overwrite removes exactly these.
RUN_ENTRIES = (CONFIG, METRICS, LATEST_MODEL, BEST_MODEL, CHECKPOINTS, "train", "validation")


_UMASK = os.umask(0)
os.umask(_UMASK)


class RunFolderError(Exception):
    """A problem with a run folder the user can fix; the message says how."""


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


def write_json(path, data):
    def write(temp):
        with open(temp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")

    atomic_write(path, write)


def read_config(run_dir):
    path = os.path.join(run_dir, CONFIG)
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise RunFolderError(f"{run_dir} is not a run folder (no {CONFIG})") from None
    except (OSError, ValueError) as error:
        raise RunFolderError(f"cannot read {path}: {error}") from None


def has_run(run_dir):
    return os.path.isdir(os.path.join(run_dir, CHECKPOINTS)) or os.path.exists(os.path.join(run_dir, CONFIG))


def prepare(run_dir, resume, overwrite):
    """Makes ``run_dir`` ready for training; returns True when an earlier run should be resumed."""
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite contradict each other; pick one")
    if has_run(run_dir):
        if overwrite:
            for entry in RUN_ENTRIES:
                path = os.path.join(run_dir, entry)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.exists(path):
                    os.remove(path)
        elif not resume:
            raise RunFolderError(
                f"--log_dir {run_dir} already holds a run; pass --resume to continue it, "
                f"--overwrite to replace it, or choose another --log_dir"
            )
    elif resume:
        raise RunFolderError(f"--resume given but --log_dir {run_dir} holds no run to resume")
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=run_dir)
        probe.close()
    except OSError as error:
        raise RunFolderError(f"cannot write to --log_dir {run_dir}: {error.strerror}") from None
    return has_run(run_dir) and resume
