"""Collecting an experiment's runs: how far each run folder got, every finished run's reports as one frame, the
machines and hours behind them."""

import os
import typing

import pandas as pd

import cifar10_train
import run_folder


class Progress(typing.NamedTuple):
    """How far a run folder got: its metrics.csv as a frame, its last reported step and the run's total steps."""

    metrics: pd.DataFrame
    last_step: int
    total_steps: int

    @property
    def finished(self):
        return self.last_step >= self.total_steps


def progress(folder):
    """The run folder's Progress, or None before its first report."""
    path = os.path.join(folder, run_folder.METRICS)
    if not os.path.exists(path):
        return None
    metrics = run_folder.read_metrics(path)
    last = int(metrics["step"].iloc[-1]) if len(metrics) else 0
    return Progress(metrics, last, run_folder.saved_config(folder)[0].stages_steps)


def unfinished(folder):
    """How far a run folder that has not finished got ("at step 2,000 of 16,000", "before its first report"); None
    once it has finished."""
    done = progress(folder)
    if done is not None and done.finished:
        return None
    return f"at step {done.last_step:,} of {done.total_steps:,}" if done else "before its first report"


def collect(runs, results_dir):
    """Every finished run's metrics.csv (and timing) as one frame with ``run``, ``seed``, ``label`` and ``group``
    columns; runs not trained or not finished (an interrupted run, or one training in another process) are left
    out. With none finished the frame is empty but has the columns, so selecting a run's rows works the same and
    gives no rows."""
    frames = []
    for run in runs:
        done = progress(os.path.join(results_dir, run.folder))
        if done is None or not done.finished:
            continue
        frame = done.metrics
        timing = os.path.join(results_dir, run.folder, run_folder.TIMING)
        if os.path.exists(timing):
            frame = frame.merge(run_folder.read_timing(timing), on="step", how="left")
        frames.append(frame.assign(run=run.name, seed=run.seed, label=run.label, group=run.group))
    columns = ["run", "seed", "label", "group"]
    if not frames:
        return pd.DataFrame(columns=[*columns, *cifar10_train.CSV_COLUMNS, *cifar10_train.TIMING_COLUMNS[1:]])
    merged = pd.concat(frames, ignore_index=True)
    return merged[columns + [c for c in merged.columns if c not in columns]]


def runs_without_folders(results_dir, metrics):
    """The ``run/seed<k>`` the results folder's existing metrics.csv reports but ``metrics`` (collected from the run
    folders now) lacks: runs whose folders were never committed or were deleted, which a rewrite would drop."""
    path = os.path.join(results_dir, "metrics.csv")
    if not os.path.exists(path):
        return []
    reported = run_folder.read_csv(path, numeric=("seed", "step"), present=("run",), increasing_step=False)
    reported = reported[["run", "seed"]].drop_duplicates()
    present = set(zip(metrics["run"], metrics["seed"]))
    return [f"{run}/seed{seed}" for run, seed in zip(reported["run"], reported["seed"]) if (run, seed) not in present]


def wall_hours(metrics, runs=None):
    """Training and validation hours summed over the seeds of ``runs`` (default: every run in ``metrics``)."""
    if "elapsed_sec" not in metrics:
        return float("nan")
    rows = metrics if runs is None else metrics[metrics["run"].isin(runs)]
    return rows.groupby(["run", "seed"])["elapsed_sec"].max().sum() / 3600


def finished_sessions(runs, results_dir):
    """(run name, sessions) of every finished run, its config.json read once for all of a report's rows."""
    pairs = []
    for run in runs:
        folder = os.path.join(results_dir, run.folder)
        done = progress(folder)
        if done is not None and done.finished:
            pairs.append((run.name, run_folder.read_config(folder).get("sessions", [])))
    return pairs


def trained_on(sessions_by_run, names=None):
    """(hardware, date) of the sessions that trained the runs of ``finished_sessions`` named in ``names`` (default
    all): the distinct machines in the order they were used and the day of the last session, as each run's
    config.json recorded them; both empty when none of them has finished (a row that says "not run here")."""
    machines, days = [], []
    for name, sessions in sessions_by_run:
        if names is not None and name not in names:
            continue
        for session in sessions:
            gpus = f"{len(session.get('gpus', []))} GPU(s)" if session.get("gpus") else "no GPU"
            machines.append(f"{session['cpu']}, {session['cpu_cores']} CPU cores, {gpus}" if "cpu" in session
                            else "machine not recorded")
            days.append(session.get("started", "")[:10])
    return " + ".join(dict.fromkeys(machines)), max(days, default="")
