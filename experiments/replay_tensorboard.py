"""TensorBoard logs rebuilt from an experiment's committed CSVs, for results cloned without their event files.

Run folders' event files are not committed (He 2016's aside); an experiment's ``metrics.csv`` (every report of
every run and seed) and its runs' ``config.json`` and ``test_metrics.json`` are. This writes, per run and seed,
``<logdir>/<run>/seed<k>/{train,validation}`` with the scalars the engine wrote at each report (loss, error,
accuracy, best accuracy, learning rate, images/s), the run's HParams session where its ``config.json`` is
committed and its test scalars where ``--mode test`` ran, so ``tensorboard --logdir <logdir>`` overlays them as
it would the run folders. Not rebuilt: what the CSVs do not hold (the learning rate between reports, images).

  python -m experiments.replay_tensorboard experiments/results/jin
  tensorboard --logdir experiments/results/jin/tensorboard
"""

import argparse
import json
import os
import shutil
import sys

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import tensorflow as tf

import fileio
import run_config
import run_folder
import summaries

MARKER = "REPLAYED_FROM"  # names the results a logdir was rebuilt from: only such a folder is ever replaced
COLUMNS = ["run", "seed", "step", "learning_rate"] + [f"{split}_{name}" for split in ("train", "val")
                                                      for name in ("loss", "error", "accuracy")]


def replay(results_dir, logdir):
    """Writes ``logdir`` from ``results_dir``'s metrics.csv; returns the (run, seed) pairs written."""
    metrics_path = os.path.join(results_dir, run_folder.METRICS)
    if not os.path.isfile(metrics_path):
        raise FileNotFoundError(f"{metrics_path}: no such file; give an experiment's results folder "
                                "(e.g. experiments/results/jin)")
    metrics = run_folder.read_csv(metrics_path, numeric=("seed", "step"), present=("run",), increasing_step=False)
    missing = [column for column in COLUMNS if column not in metrics.columns]
    if missing:
        raise ValueError(f"{metrics_path} has no {', '.join(missing)} column(s): not an experiment's metrics.csv")
    _prepare(logdir, results_dir)
    written = []
    for (run, seed), rows in metrics.groupby(["run", "seed"], sort=False):
        target = os.path.join(logdir, str(run), f"seed{seed}")
        writers = [tf.summary.create_file_writer(os.path.join(target, split)) for split in ("train", "validation")]
        rows = rows.sort_values("step")
        for (_, row), best in zip(rows.iterrows(), rows["val_accuracy"].cummax()):
            summaries.write_report_scalars(*writers, row, best, row.get("images_per_sec", float("nan")))
        _replay_run_files(os.path.join(results_dir, str(run), f"seed{seed}"), target, int(rows["step"].max()))
        written.append((run, seed))
    return written


def _prepare(logdir, results_dir):
    """An empty ``logdir``: a folder this tool wrote before is replaced, any other non-empty one refused."""
    if os.path.isdir(logdir) and os.listdir(logdir):
        if not os.path.isfile(os.path.join(logdir, MARKER)):
            raise FileExistsError(f"{logdir} exists and was not written by replay_tensorboard; give an empty or "
                                  "new --logdir (replaying into existing event files would draw every curve twice)")
        shutil.rmtree(logdir)
    os.makedirs(logdir, exist_ok=True)
    fileio.write_text(os.path.join(logdir, MARKER), os.path.abspath(results_dir) + "\n")


def _replay_run_files(run_dir, target, last_step):
    """The HParams session from the run's config.json and its test scalars from test_metrics.json, where committed."""
    if os.path.isfile(os.path.join(run_dir, run_folder.CONFIG)):
        config, _ = run_config.from_json(run_folder.read_config(run_dir))
        summaries.write_hparams(target, config, num_replicas=None)
    test_path = os.path.join(run_dir, run_folder.TEST_METRICS)
    if os.path.isfile(test_path):
        with open(test_path) as handle:
            test = json.load(handle)
        summaries.write_test_scalars(target, int(test.get("trained_step", last_step)), test)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.replay_tensorboard",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", help="an experiment's results folder holding metrics.csv, e.g. "
                                            "experiments/results/jin or experiments/results_quick/yuan")
    parser.add_argument("--logdir", help="where to write the event files (default: RESULTS_DIR/tensorboard, "
                                         "which git ignores); a folder this tool wrote before is replaced")
    args = parser.parse_args(argv)
    logdir = args.logdir or os.path.join(args.results_dir, "tensorboard")
    try:
        written = replay(args.results_dir, logdir)
    except (OSError, ValueError, run_folder.RunFolderError) as error:  # ConfigError, pandas' errors: ValueErrors
        print(f"replay_tensorboard: error: {error}", file=sys.stderr)
        return 2
    print(f"{len(written)} run(s) replayed into {logdir}: tensorboard --logdir {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
