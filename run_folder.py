"""The files of one run folder, and writing them so an interruption never leaves a torn file.

A run folder holds ``config.json`` (the run's RunConfig and DataInfo, see run_config.py),
``metrics.csv`` (one row per report), ``timing.csv``, ``latest.keras`` and ``best.keras``,
``ckpt/`` (``tf.train.CheckpointManager`` state for resuming), the
TensorBoard event files under ``train/`` and ``validation/``, and what ``--mode test`` writes.
"""

import json
import os
import shutil
import tempfile

import numpy as np
import pandas as pd

import run_config

CONFIG = "config.json"
METRICS = "metrics.csv"
TIMING = "timing.csv"
LATEST_MODEL = "latest.keras"
BEST_MODEL = "best.keras"
MANIFEST = "manifest.json"  # a shipped folder (pretrained/<name>/): its model is <name>.keras, not latest.keras
CHECKPOINTS = "ckpt"
# What --mode test writes beside the models (by default into the run folder).
TEST_PROBABILITIES = "test_probabilities.npy"
TEST_PREDICTIONS = "test_predictions.csv"
TEST_CONFUSION_MATRIX = "test_confusion_matrix.png"
TEST_METRICS = "test_metrics.json"
# Everything training and testing write; --overwrite removes exactly these (a replaced
# run's test results would otherwise pass for the new run's).
RUN_ENTRIES = (CONFIG, METRICS, TIMING, LATEST_MODEL, BEST_MODEL, CHECKPOINTS, "train", "validation", "test",
               TEST_PROBABILITIES, TEST_PREDICTIONS, TEST_CONFUSION_MATRIX, TEST_METRICS)
EVENTS = "events.out.tfevents."  # the run's own TensorBoard events (its HParams session) sit in the folder itself


class RunFolderError(Exception):
    """A problem with a run folder the user can fix; the message says how."""


def read_config(run_dir):
    path = os.path.join(run_dir, CONFIG)
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise RunFolderError(f"{run_dir} is not a run folder (no {CONFIG})") from None
    except (OSError, ValueError) as error:
        raise RunFolderError(f"cannot read {path}: {error}") from None


RESTORE = "restore it (git checkout, a backup) or move it away and run again; nothing was changed"


def read_metrics(path, what_to_do=RESTORE):
    """A run's metrics.csv, checked (``read_csv``): every report has its step and validation loss and accuracy (the
    training columns are empty at a report before training, Liang's step 0)."""
    return read_csv(path, numeric=("step", "val_loss", "val_accuracy"), what_to_do=what_to_do)


def read_timing(path, what_to_do=RESTORE):
    """A run's timing.csv, checked: every report has its step and elapsed seconds (no images/s before training)."""
    return read_csv(path, numeric=("step", "elapsed_sec"), present=("images_per_sec",), what_to_do=what_to_do)


def read_csv(path, numeric=(), present=(), increasing_step=True, what_to_do=RESTORE):
    """A CSV the suite wrote, read back checked: it parses, has the ``numeric`` columns with finite numbers and
    the ``present`` columns, and (``increasing_step``) its steps rise row by row. A damaged file (a half-written
    copy, an edit, a bad merge) is a RunFolderError naming it and ``what_to_do``, never a NaN that reads as a
    result."""
    def damaged(why):
        return RunFolderError(f"{path} is damaged ({why}): {what_to_do}")

    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as error:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise damaged(str(error).strip().splitlines()[0][:100] or type(error).__name__) from None
    missing = [column for column in (*numeric, *present) if column not in frame.columns]
    if missing:
        raise damaged(f"no {', '.join(missing)} column")
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        if not np.isfinite(values.to_numpy(dtype=float)).all():
            row = int(np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))[0])
            raise damaged(f"row {row + 1} has no number in {column}: {frame[column].iloc[row]!r}")
        frame[column] = values
    if increasing_step and "step" in numeric and (frame["step"].diff().dropna() <= 0).any():
        raise damaged("its steps do not rise row by row")
    return frame


def make_folder(path, flag):
    """Creates ``path`` (and its parents) if need be; a folder that cannot be made or written to is one
    RunFolderError naming ``flag``."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=path).close()
    except OSError as error:
        raise RunFolderError(f"cannot write to {flag} {path}: {error.strerror}") from None


def is_shipped(folder):
    """A shipped folder (pretrained/<name>/, experiments/ship_weights.py): a manifest and no latest.keras. Its
    model is the file the manifest names, and ``--mode test`` writes nothing into it (tracked files)."""
    return os.path.exists(os.path.join(folder, MANIFEST)) and not os.path.exists(os.path.join(folder, LATEST_MODEL))


def default_test_output(run_dir):
    """Where ``--mode test`` writes without ``--output``: the run folder, or for a shipped folder
    ``runs/<name>_test`` (the shipped files stay as committed)."""
    if is_shipped(run_dir):
        return os.path.join("runs", os.path.basename(os.path.normpath(os.path.abspath(run_dir))) + "_test")
    return run_dir


def has_run(run_dir):
    return os.path.isdir(os.path.join(run_dir, CHECKPOINTS)) or os.path.exists(os.path.join(run_dir, CONFIG))


def saved_config(run_dir):
    """(RunConfig, DataInfo or None) of the run in ``run_dir``, from a config.json of any version."""
    try:
        return run_config.from_json(read_config(run_dir))
    except run_config.ConfigError as error:
        raise RunFolderError(f"{os.path.join(run_dir, CONFIG)}: {error}") from None


def _remove_stale_temporaries(run_dir):
    """Deletes what an atomic write killed half-way left: ``.<name>.<random><suffix>`` files, never trusted."""
    for name in os.listdir(run_dir):
        if name.startswith(".") and any(name.startswith(f".{entry}.") for entry in RUN_ENTRIES):
            os.remove(os.path.join(run_dir, name))


def _wipe(run_dir):
    events = [name for name in os.listdir(run_dir) if name.startswith(EVENTS)]
    for entry in RUN_ENTRIES + tuple(events):
        path = os.path.join(run_dir, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def prepare(run_dir, config, resume=False, overwrite=False):
    """Makes ``run_dir`` ready for training; returns True when the run in it should be continued.

    The same command run again continues its own interrupted (or finished) run.
    A folder holding a different run is refused unless ``resume`` (continue it
    with these settings) or ``overwrite`` (start afresh) says which.
    """
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite contradict each other; pick one")
    if has_run(run_dir):
        if overwrite:
            _wipe(run_dir)
        else:
            try:
                changed = run_config.differences(saved_config(run_dir)[0], config)
            except RunFolderError:
                changed = ["its config.json is missing or unreadable"]
            _remove_stale_temporaries(run_dir)
            fixed = [change for change in changed if change.split(":")[0] in run_config.CANNOT_RESUME]
            if fixed and resume:
                raise RunFolderError(
                    f"--resume cannot continue the run in {run_dir} with another {fixed[0]}: its checkpoint holds "
                    f"other weights or optimizer state; pass --overwrite to replace it, or choose another --log_dir")
            if changed and not resume:
                shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
                raise RunFolderError(
                    f"--log_dir {run_dir} already holds another run ({shown}); pass --resume to continue it with "
                    f"these settings, --overwrite to replace it, or choose another --log_dir"
                )
            return True
    elif resume:
        raise RunFolderError(f"--resume given but --log_dir {run_dir} holds no run to resume")
    make_folder(run_dir, "--log_dir")
    return False
