"""The PyTorch peer's runs (benchmarks/pytorch_peer_train.py) inside an experiment's results: their command, their
reports as the engine's runs are collected, their provenance, and the unpaired comparison with ours.

The peer trains outside the engine, in its own virtual environment, so an experiment does not train it: it prints
its command and reads its run folders, ``<results_dir>/<name>/seed<k>``.
"""

import glob
import json
import os

import numpy as np
import pandas as pd

import run_folder
from experiments import stats

SETTINGS = "peer_config.json"  # written by benchmarks/pytorch_peer_train.py


def command(folder, steps, report, batch, seed, data_dir="DATA", flags=""):
    """The command that trains one peer seed into ``folder`` (from the checkout, in the peer's virtual environment)."""
    return (f".venv-peer/bin/python -m benchmarks.pytorch_peer_train --data_dir {data_dir} --train_steps {steps} "
            f"--report_freq {report} --save_freq {report} --batch_size {batch} --seed {seed}"
            f"{' ' + flags if flags else ''} --log_dir {folder}")


def folders(results_dir, name):
    """(seed, folder, saved peer_config.json, its metrics.csv as a frame, finished) of every peer run folder of
    ``name`` in the results."""
    found = []
    for folder in sorted(glob.glob(os.path.join(results_dir, name, "seed*"))):
        metrics, settings = os.path.join(folder, run_folder.METRICS), os.path.join(folder, SETTINGS)
        if not (os.path.exists(metrics) and os.path.exists(settings)):
            continue
        with open(settings) as handle:
            saved = json.load(handle)
        reports = run_folder.read_metrics(metrics)
        finished = reports["step"].max() >= saved["settings"]["train_steps"]
        found.append((int(folder.rsplit("seed", 1)[1]), folder, saved, reports, finished))
    return found


def metrics(results_dir, name, label):
    """The finished peer runs' reports with their timing, in ``gather.collect``'s columns (empty without any)."""
    frames = []
    for seed, folder, _, reports, finished in folders(results_dir, name):
        if finished:
            timing = run_folder.read_timing(os.path.join(folder, run_folder.TIMING))
            frame = reports.merge(timing, on="step", how="left")
            frames.append(frame.assign(run=name, seed=seed, label=label, group=""))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def finished_sessions(results_dir, name):
    """(name, sessions) of every finished peer seed, as ``gather.finished_sessions`` gives the engine's runs: the
    machines and days of the results table's rows that the peer's numbers come from."""
    return [(name, saved["sessions"]) for _, _, saved, _, finished in folders(results_dir, name) if finished]


def provenance_lines(results_dir, name):
    """A report's provenance lines for the peer runs (their folders hold no config.json of the engine's)."""
    lines = []
    for seed, folder, saved, _, finished in folders(results_dir, name):
        sessions = "; ".join(_session_text(session) for session in saved["sessions"])
        hours = run_folder.read_timing(os.path.join(folder, run_folder.TIMING))["elapsed_sec"].iloc[-1] / 3600
        state = f"wall time {hours:.2f} h" if finished else "UNFINISHED, left out of every number and figure"
        lines.append(f"- `{name}/seed{seed}` (PyTorch peer, {state}): settings {saved['settings']}; sessions: "
                     f"{sessions}")
    return lines


def _session_text(session):
    changed = f" (uncommitted changes to {', '.join(session['uncommitted'])})" if session["uncommitted"] else ""
    return (f"from step {session['from_step']} on {session['started']}: commit {session['commit'][:10]}{changed}, "
            f"torch {session['torch']}, {session['cpu']} x {session['cpu_cores']} cores, data sha256 "
            f"{session['data_sha256']}; `{session['command']}`")


def unpaired(first, second, test_images):
    """(the difference of two runs' mean per-seed values, in words whether it is beyond noise): seeds of two
    implementations are not paired, so the margin is 2 s.e. of a difference of two means. With one seed on one
    side, the other side's seed sd stands for both (the same recipe); with one on each, only the test
    set's sampling noise is known (``stats.verdict``)."""
    (m1, s1, n1), (m2, s2, n2) = stats.summary(first), stats.summary(second)
    if not (n1 and n2):
        return np.array([]), "not run here: one of the two has no result"
    if n1 < 2 and n2 < 2:
        return np.array([m1 - m2]), stats.verdict(np.array([m1 - m2]), test_images)
    if n1 < 2 or n2 < 2:
        margin = 2 * (s1 if n1 > 1 else s2) * (1 / n1 + 1 / n2) ** 0.5
        borrowed = f"; the sd of the {max(n1, n2)} seeds stands for both sides"
    else:
        margin, borrowed = 2 * (s1**2 / n1 + s2**2 / n2) ** 0.5, ""
    side = "beyond" if abs(m1 - m2) > margin else "within"
    return np.array([m1 - m2]), (f"unpaired: {side} noise, |difference of means| vs 2 s.e. = {margin:.4f} "
                                 f"(n = {n1} and {n2}{borrowed})")
