"""The shared runner of every experiment: train the runs a paper module describes, collect them, report.

A paper is one module, ``experiments/<paper>.py``, that fills in ``Experiment`` (below) and ends with
``main = lambda argv=None: common.main(sys.modules[__name__], argv)``. Every run is a ``run_config.RunConfig``
trained through ``api.train`` and printed as the ``cifar10_main.py`` command that reproduces it; a run folder
that already holds the same finished run is reused (the engine's rule), ``--force`` retrains. The concerns live
apart: ``plans`` (compute plans), ``gather`` (run folders -> one metrics frame), ``stats`` (per-seed numbers and
noise), ``reports`` (report.md, numbers.csv, provenance), ``plots`` (figures).

Output in ``results/<experiment>/``: one run folder per run and seed (TensorBoard logs: point
``tensorboard --logdir results/<experiment>`` at it to overlay them), ``metrics.csv`` (every run's
report rows, with ``run`` and ``seed`` columns), the figures as PNG, ``report.md`` and ``numbers.csv``.
"""

import dataclasses
import os
import shlex
import sys
import typing

import pandas as pd

import tf_setup  # noqa: F401,E402  (first: the environment's defaults, a quiet TensorFlow import)
import cifar10_main  # noqa: E402
import api  # noqa: E402
import cifar10_train  # noqa: E402
import fileio  # noqa: E402
import run_config  # noqa: E402
import run_folder  # noqa: E402
from experiments import gather, peer, plans, reports  # noqa: E402

import tensorflow as tf  # noqa: E402

MODES = ("full", "quick", "tiny")


class Experiment(typing.Protocol):
    """What a paper module gives the runner (a module satisfies it by its names; ``check_experiment`` says which are
    missing). A report row is a dict with ``quantity``, ``paper`` (the paper's number, or None), ``ours`` (computed
    from the metrics, never typed: a number or one value per seed) and ``settings`` (what differs from the paper for
    that number), optionally ``format``, ``paper_format``, ``comparable``, ``test_images``, ``schedule``, ``runs``
    (see ``reports.report_table`` and ``reports.numbers_frame``)."""

    TITLE: str  # the paper in a few words: "He et al. 2016a"
    PAPER: str  # the citation
    PRECISION: str  # every run's --mixed_precision (off or bfloat16): one per experiment, so seeds and models compare

    def runs(self, mode, args) -> list:
        """The ``Run``s of a mode (full, quick or tiny); ``args`` is the parsed command line."""

    def notes(self, mode) -> list:
        """Reductions and deviations, in sentences: printed, and written into the report."""

    def report_rows(self, metrics, mode, args) -> list:
        """The report's rows, computed from ``metrics`` (``gather.collect``'s frame)."""

    def figures(self, metrics, out_dir, mode, args) -> list:
        """Draws the figures into ``out_dir``; returns their paths."""


# Optional names a paper module may add: add_arguments(parser) (flags of its own), full_mode(args) -> the mode a
# flag of its own selects instead of full (he2016's quarter schedule), PEER and PEER_LABEL (the run name and label of
# runs trained outside the engine by the PyTorch peer, read through experiments/peer.py).
REQUIRED = ("TITLE", "PAPER", "PRECISION", "runs", "notes", "report_rows", "figures")


def check_experiment(module):
    """Raises TypeError naming what an experiment module lacks of ``Experiment``."""
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing:
        raise TypeError(
            f"{module.__name__} is not an experiment: it has no {', '.join(missing)} (see common.Experiment)")


# Every CIFAR-10 report says what its data is and what issue 33 measured about it (results/he2016, he2016_matched).
CIFAR10_DATA_NOTE = (
    "CIFAR-10 here is the JPEG-derived copy (../shared/datasets/README.md): no CIFAR-10 number is directly comparable "
    "with a paper's. Whether the data or our code explains such gaps was measured on He's ResNet-20: a PyTorch peer "
    "trained on the same files with the same recipe lands beside ours (results/he2016, he2016_matched), so the data "
    "does; that check changed no setting, so these runs are what the shipped code trains.")
DATA_FLAGS = {"cifar10": "cifar10_dir", "mnist": "mnist_dir", "folder": "folder_dir"}


@dataclasses.dataclass
class Run:
    """One training run of an experiment: a name (its folder), a legend label, and its settings."""

    name: str
    label: str
    config: run_config.RunConfig
    group: str = ""  # e.g. the figure or table the run belongs to
    seed: int = 0  # set by seeded(): the run's folder is <name>/seed<seed>

    @property
    def folder(self):
        return f"{self.name}/seed{self.seed}"

    def located(self, data_dir, results_dir):
        """The run's config reading ``data_dir`` and writing its folder under ``results_dir``."""
        return dataclasses.replace(self.config, data_dir=data_dir or self.config.data_dir,
                                   log_dir=os.path.join(results_dir, self.folder))


def seeded(runs, seeds):
    """Every run once per seed 0..seeds-1 (``--seeds``): the same settings, another initialisation and data order."""
    return [with_seed(run, seed) for run in runs for seed in range(seeds)]


def with_seed(run, seed):
    return dataclasses.replace(run, seed=seed, config=dataclasses.replace(run.config, seed=seed))


def with_trained_seeds(runs, results_dir):
    """``runs`` plus the seeds beyond them already trained in ``results_dir``: a later command with fewer
    ``--seeds`` (say one seed of a run that takes hours, after three of a short one) keeps every seed in the report."""
    extra = []
    for run in runs:
        if run.seed != 0:
            continue
        seed = 1 + max(r.seed for r in runs if r.name == run.name)
        while os.path.exists(os.path.join(results_dir, run.name, f"seed{seed}", run_folder.METRICS)):
            extra.append(with_seed(run, seed))
            seed += 1
    return runs + extra


def with_precision(runs, module, precision):
    """The runs in ``precision`` (``--mixed_precision``) instead of the experiment's own; a run that sets a precision
    of its own (he2016_matched's bfloat16 arm) keeps it."""
    if precision is None:
        return runs
    return [dataclasses.replace(run, config=dataclasses.replace(run.config, mixed_precision=precision))
            if run.config.mixed_precision == module.PRECISION else run for run in runs]


def experiment_name(module):
    """The module's file name: ``__name__`` is ``__main__`` under ``python -m``."""
    return os.path.splitext(os.path.basename(module.__file__))[0]


def experiment_parser(module):
    parser = cifar10_main.OneLineParser(
        prog=f"python -m experiments.{experiment_name(module)}",
        description=f"{module.TITLE}: {module.PAPER}. Trains the paper's runs, then writes metrics.csv, the figures "
                    f"and report.md (paper vs ours) to --results_dir.",
        formatter_class=cifar10_main.DefaultsHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="a reduced schedule for a 2-core CPU (about 10-20 minutes); the reductions are printed and "
                           "written into the report")
    mode.add_argument("--tiny", action="store_true", help="a few steps per run: checks the whole path in seconds")
    parser.add_argument("--seeds", type=run_config.positive_int, default=1,
                        help="train every run with seeds 0..N-1 (folders <run>/seed<k>); the report gives mean +- sd "
                             "over every seed trained in the results folder (default: 1)")
    parser.add_argument("--only", nargs="+", default=None, metavar="RUN",
                        help="train only these runs (others are reused if present); with --force, retrain them")
    parser.add_argument("--force", action="store_true", help="retrain runs even if their folders hold them finished")
    parser.add_argument("--list", action="store_true", help="print the runs and their commands, then exit")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: write the report, metrics.csv, figures and numbers.csv from the runs "
                             "finished so far (say while a long run trains in another process, or to keep a stopped "
                             "run stopped); unfinished runs are named in it")
    parser.add_argument("--plan", action="store_true",
                        help="time each run's model on this machine, print the hours the runs need (written to "
                             "plan.md, which the report then opens with), then exit")
    parser.add_argument("--mixed_precision", choices=run_config.PRECISIONS, default=None,
                        help=f"every run's precision (default: the experiment's, {module.PRECISION}: one for all its "
                             "runs and seeds, named in its report). Change it only where this machine cannot compute "
                             "that one fast (bfloat16 needs AVX512_BF16/AMX or a GPU of compute capability 8.0+); "
                             "the report lists every session's precision")
    parser.add_argument("--results_dir", default=None, help="output folder (default results/<experiment>[_quick])")
    parser.add_argument("--cifar10_dir", default=None,
                        help="CIFAR-10 for cifar10_main.py --data_dir (default: download)")
    parser.add_argument("--mnist_dir", default=None, help="MNIST for cifar10_main.py --data_dir (default: download)")
    parser.add_argument("--folder_dir", default=None, help="the image folder for --dataset folder runs")
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    return parser


def main(module, argv=None):
    """Runs an experiment module end to end; returns the exit code. A results folder that cannot be made and a
    damaged file in it (a run's metrics.csv, timing.csv or config.json, plan.csv) end with one error line, exit 2."""
    check_experiment(module)
    args = experiment_parser(module).parse_args(argv)
    api.stop_on_sigterm()
    try:
        return _main(module, args, argv)
    except run_folder.RunFolderError as error:
        print(f"{experiment_name(module)}: error: {error}", file=sys.stderr)
        return 2


def run_mode(module, args):
    """quick or tiny from their flags, else full, or the longer schedule a module's own flag names (he2016's
    --quarter: a quarter of He's steps for a CPU), which also names the default results folder."""
    if args.quick or args.tiny:
        return "quick" if args.quick else "tiny"
    return module.full_mode(args) if hasattr(module, "full_mode") else "full"


def _main(module, args, argv):
    mode = run_mode(module, args)
    name = experiment_name(module)
    default_dir = os.path.join("results", name + ("" if mode == "full" else f"_{mode}"))
    results_dir = args.results_dir = args.results_dir or default_dir
    runs = seeded(with_precision(module.runs(mode, args), module, args.mixed_precision), args.seeds)
    unknown = set(args.only or []) - {run.name for run in runs}
    if unknown:
        print(f"{name}: error: --only {' '.join(sorted(unknown))}: no such run; runs are: "
              f"{', '.join(run.name for run in runs)}", file=sys.stderr)
        return 2
    if args.plan:
        run_folder.make_folder(results_dir, "--results_dir")
        try:
            plan = plans.compute_plan(runs)
        except api.USER_ERRORS as error:
            print(f"{name}: error: {error}", file=sys.stderr)
            return 2
        text = plans.plan_text(plan, args.only)
        fileio.write_text(os.path.join(results_dir, "plan.md"), text + "\n")
        fileio.atomic_write(os.path.join(results_dir, plans.PLAN_CSV), lambda temp: plan.to_csv(temp, index=False))
        print(text)
        return 0
    if args.list:
        for run in runs:
            if args.only and run.name not in args.only:
                continue
            data_dir = getattr(args, DATA_FLAGS[run.config.dataset])
            print(f"{run.folder}: {run_config.command(run.located(data_dir, results_dir))}")
        return 0
    notes = list(module.notes(mode)) if hasattr(module, "notes") else []
    print(f"{module.TITLE} ({mode} mode) -> {results_dir}")
    for note in notes:
        print(f"  {note}")
    run_folder.make_folder(results_dir, "--results_dir")
    for run in runs:
        if args.report or (args.only and run.name not in args.only):
            continue
        data_dir = getattr(args, DATA_FLAGS[run.config.dataset])
        print(f"\n=== {name}: run {run.folder} ({run.label})", flush=True)
        try:
            api.train(run.located(data_dir, results_dir), overwrite=args.force)
            tf.keras.backend.clear_session()  # the next run starts from a clean Keras state and memory
        except (*api.USER_ERRORS, cifar10_train.TrainingError) as error:
            print(f"{name}: error in run {run.folder}: {error}", file=sys.stderr)
            return 1 if isinstance(error, cifar10_train.TrainingError) else 2
        except KeyboardInterrupt:
            print(f"\n{name}: interrupted; finished runs are kept and the interrupted one continues from its last "
                  f"checkpoint: run the same command again", file=sys.stderr)
            return api.interrupted(130, own_process=argv is None)  # argv None: this command is the process
    runs = with_trained_seeds(runs, results_dir)
    metrics = gather.collect(runs, results_dir)
    if hasattr(module, "PEER"):  # runs trained outside the engine (the PyTorch peer)
        metrics = pd.concat([metrics, peer.metrics(results_dir, module.PEER, module.PEER_LABEL)], ignore_index=True)
    lost = gather.runs_without_folders(results_dir, metrics)
    if lost:
        print(f"{name}: error: {os.path.join(results_dir, 'metrics.csv')} holds finished runs whose run folders are "
              f"gone ({', '.join(lost)}); a new report would lose their numbers: restore the folders, or move "
              "metrics.csv away to start afresh", file=sys.stderr)
        return 2
    fileio.atomic_write(os.path.join(results_dir, "metrics.csv"),
                        lambda temp: metrics.to_csv(temp, index=False, float_format="%.6g"))
    figures = module.figures(metrics, results_dir, mode, args)
    rows = module.report_rows(metrics, mode, args)
    command = " ".join(["python -m experiments." + name, shlex.join(sys.argv[1:] if argv is None else argv)]).strip()
    report = os.path.join(results_dir, "report.md")
    reports.write_report(report, module, mode, command, rows, figures, notes, runs, results_dir)
    numbers = reports.numbers_frame(rows, module, mode, metrics, runs, results_dir)
    fileio.atomic_write(os.path.join(results_dir, "numbers.csv"), lambda temp: numbers.to_csv(temp, index=False))
    print(f"\nWrote {report}, metrics.csv and {len(figures)} figure(s) in {results_dir}")
    print(reports.report_table(rows))
    return 0
