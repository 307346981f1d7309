"""The shared runner of every experiment: train the runs a paper module describes, collect, report.

An experiment module (``experiments/<paper>.py``) gives:
  ``TITLE``, ``PAPER`` (citation), ``runs(mode, args) -> [Run]`` (mode: full, quick or tiny; args: the
  parsed command line), ``notes(mode) -> [str]`` (reductions and deviations, printed and reported),
  ``figures(metrics, out_dir, mode, args) -> [paths]``
  and ``report_rows(metrics, mode, args) -> [row]``, where a row is a dict with ``quantity``, ``paper``
  (the paper's number, or None), ``ours`` (from the metrics, never typed) and ``settings`` (what
  differs from the paper for that number); optionally ``external_metrics(results_dir) -> frame``, the
  rows of runs trained outside the engine (a peer implementation), in ``collect``'s columns, and
  ``external_provenance(results_dir) -> [str]``, the report's provenance lines of those runs.
Every run is a ``run_config.RunConfig`` trained through ``cifar10_main.train``, the CLI's own
entry point, and is printed as the ``cifar10_main.py`` command that reproduces it. A run folder that already holds the same
finished run is reused (the engine's rule); ``--force`` retrains.

Output in ``results/<experiment>/``: one run folder per run (TensorBoard logs: point
``tensorboard --logdir results/<experiment>`` at it to overlay them), ``metrics.csv`` (every run's
report rows, with a ``run`` column), the figures as PNG, and ``report.md``.
"""

import dataclasses
import datetime
import os
import platform
import shlex
import sys
import typing

import numpy as np
import pandas as pd

import cifar10_main  # noqa: E402  (first: it imports TensorFlow quietly)
import api  # noqa: E402
import cifar10_train  # noqa: E402
import fileio  # noqa: E402
import hardware  # noqa: E402
import provenance  # noqa: E402
import run_config  # noqa: E402
import run_folder  # noqa: E402

import tensorflow as tf  # noqa: E402

MODES = ("full", "quick", "tiny")
PLAN_CSV = "plan.csv"  # --plan's table as data: the report names the hours of each run not made
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
    parser.add_argument("--seeds", type=cifar10_main.positive_int, default=1,
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
    parser.add_argument("--results_dir", default=None, help="output folder (default results/<experiment>[_quick])")
    parser.add_argument("--cifar10_dir", default=None, help="CIFAR-10 for cifar10_main.py --data_dir (default: download)")
    parser.add_argument("--mnist_dir", default=None, help="MNIST for cifar10_main.py --data_dir (default: download)")
    parser.add_argument("--folder_dir", default=None, help="the image folder for --dataset folder runs")
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    return parser


# The official sets' sizes, to plan steps before any data is read (an image folder is counted from its files).
TRAIN_IMAGES = {"cifar10": 50000, "mnist": 60000}
TEST_IMAGES = {"cifar10": 10000, "mnist": 10000}
STORED_SHAPE = {"cifar10": (32, 32, 3), "mnist": (28, 28, 1)}


def model_input_shape(config):
    """The input a run's model is built for: the dataset's images adapted as the engine adapts them
    (``datasets.adapt_to_model``), not the model's nominal input (224x224 for the ImageNet ResNets, which
    train on CIFAR-10 at 32x32: a plan timed at 224 said 7 hours for Xu's 20-minute quick runs)."""
    import datasets
    import resnet

    model_shape = resnet.MODELS[config.model].input_shape
    if config.dataset in STORED_SHAPE:
        stored = np.zeros((1, *STORED_SHAPE[config.dataset]), np.uint8)
        return tuple(datasets.adapt_to_model(stored, model_shape).shape[1:])
    return (*(config.image_size or model_shape[:2]), model_shape[-1])


def compute_plan(runs, measure=None):
    """The compute plan: per run, its steps, the images/s of its model on this machine and the hours that makes.

    ``measure(config, input_shape) -> (images/s, precision)`` times the model alone (one in-memory batch, the run's
    precision; auto measures as a run would) once per distinct model, options, batch and precision. Hours
    = (training images + validations, a test image costing a third of a training one) / that rate: input
    pipelines (ImageDataGenerator above all) make a run slower than this, never faster.
    """
    measure = measure or _model_rate
    rates, rows = {}, []
    measured_on = f"{hardware.describe()}, {datetime.date.today().isoformat()}"
    for run in runs:
        config = run.config
        steps = total_steps(config)
        shape = model_input_shape(config)
        key = (config.model, json_key(config.model_options), shape, config.batch_size, config.mixed_precision)
        if key not in rates:
            rates[key] = measure(config, shape)
        rate, precision = rates[key]
        validated = (steps // config.report_freq) * TEST_IMAGES.get(config.dataset, 0)
        rows.append({"run": run.folder, "model": config.model, "steps": steps, "batch": config.batch_size,
                     "precision": precision, "images_per_sec": round(rate, 1),
                     "hours": (steps * config.batch_size + validated / 3) / rate / 3600,
                     "measured_on": measured_on})
    return pd.DataFrame(rows)


def total_steps(config):
    """A run's training steps: its ``train_steps``, or its epochs over the dataset's training images."""
    images = TRAIN_IMAGES.get(config.dataset) or _count_images(config.data_dir)
    return config.train_steps or run_config.steps_for_epochs(config.epochs, images, config.batch_size)


def json_key(options):
    return tuple(sorted((k, str(v)) for k, v in options.items()))


def _count_images(folder):
    """Training images of an image folder, roughly (every image file below it), for planning only."""
    extensions = (".jpg", ".jpeg", ".png", ".bmp")
    return sum(name.lower().endswith(extensions) for _, _, names in os.walk(folder or ".") for name in names) or 1


def _model_rate(config, shape):
    """(images/s, precision) of a run's model alone, in the precision the run would use here."""
    precision, rates = config.mixed_precision, None
    if precision == "auto":
        precision, rates, _ = cifar10_train.auto_precision(config, shape)
    rate = rates[precision] if rates else cifar10_train.images_per_sec(config, shape, config.batch_size, precision)
    return float(rate), precision


def plan_text(plan, selected=None):
    """The plan as the markdown a report starts with; ``selected`` (``--only``) names the runs meant to be run here."""
    lines = [f"Measured on {plan['measured_on'].iloc[0]}: each model alone on one in-memory batch, "
             "so the hours are a lower bound.",
             "", "| run | model | steps x batch | precision | images/s | hours |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['run']} | {r['model']} | {r['steps']} x {r['batch']} | {r['precision']} | {r['images_per_sec']:.0f} | "
              f"{r['hours']:.2f} |" for r in plan.to_dict("records")]
    lines += ["", f"Total: {plan['hours'].sum():.1f} hours for {len(plan)} run(s)."]
    if selected:
        chosen = plan[plan["run"].str.split("/").str[0].isin(selected)]
        lines[-1] += (f" Planned here (--only {' '.join(selected)}): {chosen['hours'].sum():.1f} hours for "
                      f"{len(chosen)} run(s); the others are listed under Provenance as not run, with their hours.")
    return "\n".join(lines)


def machine():
    """One line naming the machine and code that wrote a report (each run's own are under Provenance)."""
    gpus = tf.config.list_physical_devices("GPU")
    commit, uncommitted = provenance.loaded_code_state()
    return (f"{provenance.cpu_description()}, {os.cpu_count()} CPU cores, {len(gpus)} GPU(s), Python "
            f"{platform.python_version()}, TF {tf.__version__}, mixed precision candidates for auto: "
            f"{'/'.join(hardware.precision_candidates())} (each run's precision is under Provenance); "
            f"code at commit {commit[:10]}{_uncommitted_text(uncommitted)}")


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
    metrics = run_folder.read_csv(path, numeric=run_folder.METRICS_COLUMNS)
    last = int(metrics["step"].iloc[-1]) if len(metrics) else 0
    return Progress(metrics, last, run_folder.saved_config(folder)[0].stages_steps)


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
            frame = frame.merge(run_folder.read_csv(timing, numeric=run_folder.TIMING_COLUMNS), on="step", how="left")
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
    reported = run_folder.read_csv(path, numeric=("seed", "step"), text=("run",), increasing_step=False)
    reported = reported[["run", "seed"]].drop_duplicates()
    present = set(zip(metrics["run"], metrics["seed"]))
    return [f"{run}/seed{seed}" for run, seed in zip(reported["run"], reported["seed"]) if (run, seed) not in present]


def report_table(rows):
    """Markdown table of paper vs ours; every number comes from the rows, the differences are computed here.

    A row has ``quantity``, ``paper`` (shown at the paper's own precision), ``ours`` (a number, or one value
    per seed: shown as mean +- sd (n)), ``settings``, and optionally ``format`` (of ours), ``paper_format`` (where
    ``{:g}`` would drop the paper's trailing zeros: Xu's 0.7540), ``comparable``
    (False: ours was taken at another step or epoch than the paper's, so no difference is printed) and
    ``test_images`` (adds the binomial standard error of one run's accuracy on that many images).
    """
    lines = ["| quantity | paper | ours | ours - paper | settings that differ |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        paper, fmt = row.get("paper"), row.get("format", "{:.4f}")
        mean, sd, n = summary(row.get("ours"))
        ours = "n/a" if not n else fmt.format(mean) + (f" ± {fmt.format(sd)} (n = {n})" if n > 1 else "")
        numeric = isinstance(paper, (int, float)) and n > 0
        difference = "n/a" if not numeric else "" if row.get("comparable") is False else _signed(fmt, mean - paper)
        settings = row.get("settings", "")
        if row.get("test_images") and n:
            error = (mean * (1 - mean) / row["test_images"]) ** 0.5
            settings = f"{settings}; binomial s.e. of one run {error:.4f}".lstrip("; ")
        shown = "n/a" if paper is None else (row.get("paper_format", "{:g}").format(paper) if isinstance(paper, float)
                                             else str(paper))
        lines.append(f"| {row['quantity']} | {shown} | {ours} | {difference} | {settings} |")
    return "\n".join(lines)


def _signed(fmt, value):
    """``value`` in ``fmt`` with its sign; one that rounds to zero is +0 (19.99 - 20 shows +0.0, not -0.0)."""
    text = fmt.format(value).lstrip("-")
    return ("-" if value < 0 and float(text) != 0 else "+") + text


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


def numbers_frame(rows, module, mode, metrics, runs, results_dir):
    """The report's rows as data (numbers.csv): what experiments/results_table.py builds the README's table from.
    A row naming its ``runs`` gets their wall time, machines and last training day, any other row the whole
    experiment's."""
    records, sessions_by_run = [], finished_sessions(runs, results_dir)
    for row in rows:
        mean, sd, n = summary(row.get("ours"))
        machines, day = trained_on(sessions_by_run, row.get("runs"))
        records.append({"paper": module.TITLE, "mode": mode, "quantity": row["quantity"], "paper_value": row.get("paper"),
                        "ours_mean": mean, "ours_sd": sd, "n": n, "comparable": row.get("comparable", True),
                        "test_images": row.get("test_images"), "format": row.get("format", "{:.4f}"),
                        "paper_format": row.get("paper_format", "{:g}"),
                        "schedule": row.get("schedule", ""),
                        "settings": row.get("settings", ""),
                        "hardware": machines, "wall_hours": wall_hours(metrics, row.get("runs")), "date": day})
    return pd.DataFrame(records)


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def write_report(path, module, mode, command, rows, figures, notes, runs, results_dir):
    """report.md: what was run, where, when, what was reduced, and the paper-vs-ours table."""
    commands = "\n".join(f"    {run_config.command(run.located('DATA', results_dir))}" for run in runs)
    text = "\n".join([
        f"# {module.TITLE}: paper vs ours",
        "",
        f"Paper: {module.PAPER}",
        "",
        f"- Command: `{command}`",
        f"- Mode: **{mode}**" + (" (a reduced schedule, not the paper's: see the reductions below)" if mode != "full" else ""),
        f"- Machine: {machine()}",
        f"- Date: {datetime.date.today().isoformat()}",
        "",
        *(["## Compute plan", "", _read(os.path.join(results_dir, "plan.md")), ""]
          if os.path.exists(os.path.join(results_dir, "plan.md")) else []),
        "## Numbers",
        "",
        report_table(rows),
        "",
        "Every \"ours\" value is computed from `metrics.csv` in this folder by the experiment's report code.",
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in notes],
        "",
        "## Provenance",
        "",
        *provenance_lines(runs, results_dir),
        *(module.external_provenance(results_dir) if hasattr(module, "external_provenance") else []),
        "",
        "## Figures",
        "",
        *[f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in figures],
        "",
        "## Runs (each a cifar10_main.py command; DATA is the dataset folder)",
        "",
        commands,
        "",
    ])
    fileio.write_text(path, text)


def _planned_needs(results_dir):
    """Run folder -> ": needs about N hours on <machine, date> (plan.md ...)" from plan.csv, or {} without a plan.

    The hours are those of the machine the plan was measured on, which need not be the one writing the report
    (the same 2-core EPYC name covered machines 2-4x apart); plans made before plan.csv named it say so."""
    path = os.path.join(results_dir, PLAN_CSV)
    if not os.path.exists(path):
        return {}
    plan = run_folder.read_csv(path, numeric=("hours",), text=("run",),
                               what_to_do="make it again with --plan, or move it away; nothing was changed")
    measured_on = plan.get("measured_on", pd.Series("the machine plan.md was measured on", index=plan.index))
    return {run: f": needs about {hours:.1f} hours on {where} (plan.md; machines differ)"
            for run, hours, where in zip(plan["run"], plan["hours"], measured_on)}


def provenance_lines(runs, results_dir):
    """Which code, machine, software and data made each run's numbers, from its config.json and timing.csv."""
    lines = ["Every number above is computed from the `metrics.csv` rows of the run folders: the model at each "
             "report (`latest`), never `best.keras` (chosen on the validation data, which is the test set where "
             "`validation_split` is 0).", ""]
    needs = _planned_needs(results_dir)
    for run in runs:
        folder = os.path.join(results_dir, run.folder)
        if not os.path.exists(os.path.join(folder, run_folder.CONFIG)):
            lines.append(f"- `{run.folder}`: not run here{needs.get(run.folder, '')}; its command is under Runs")
            continue
        done = progress(folder)
        if done is None or not done.finished:
            reached = f"at step {done.last_step:,} of {done.total_steps:,}" if done else "before its first report"
            lines.append(f"- `{run.folder}`: UNFINISHED {reached}, left out of every number and figure; the same "
                         f"command continues it")
            continue
        saved = run_folder.read_config(folder)
        timing = os.path.join(folder, run_folder.TIMING)
        hours = (float(run_folder.read_csv(timing, numeric=run_folder.TIMING_COLUMNS)["elapsed_sec"].iloc[-1]) / 3600
                 if os.path.exists(timing) else float("nan"))
        sessions = "; ".join(_session_text(s) for s in saved.get("sessions", [])) or "not recorded"
        lines.append(f"- `{run.folder}`: wall time {hours:.2f} h of training and validation; sessions: {sessions}")
    return lines


def _uncommitted_text(paths, dirty=None):
    """The text ' with uncommitted changes to a.py, b.py' (the first four paths), or '' for a clean tree; sessions
    recorded before the paths were (``dirty`` only) get ' with uncommitted changes'."""
    if paths:
        more = f" and {len(paths) - 4} more" if len(paths) > 4 else ""
        return f" with uncommitted changes to {', '.join(paths[:4])}{more}"
    return " with uncommitted changes" if dirty else ""


def _session_text(session):
    if "cpu" not in session:
        return f"from step {session.get('from_step', 0)}: {session.get('commit')}"
    state = _uncommitted_text(session.get("uncommitted"), session["dirty"]).strip() or "clean"
    gpus = ", ".join(session["gpus"]) or "no GPU"
    precision = f", precision {session['mixed_precision']}" if "mixed_precision" in session else ""
    precision += f", TF_ENABLE_ONEDNN_OPTS {session['onednn']}" if "onednn" in session else ""
    return (f"from step {session['from_step']} on {session['started']}: commit {session['commit'][:10]} ({state}), "
            f"{session['cpu']} x {session['cpu_cores']} cores, {gpus}{precision}, Python {session['python']}, "
            f"TF {session['tensorflow']}, Keras {session['keras']}; data sha256 {session['data_sha256']}; "
            f"`{session['command']}`")


pyplot = fileio.pyplot  # the experiments' figure code draws through common.pyplot()


def save_figure(figure, path):
    """Writes an experiment's figure (at the resolution of the committed results) atomically and closes it."""
    return fileio.save_figure(figure, path, dpi=110)


def label_axis(axis, xlabel, ylabel, title=None):
    """The finishing every curve panel gets: axis labels, optional title, a light grid, the legend."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()


def main(module, argv=None):
    """Runs an experiment module end to end; returns the exit code. A results folder that cannot be made and a
    damaged file in it (a run's metrics.csv, timing.csv or config.json, plan.csv) end with one error line, exit 2."""
    args = experiment_parser(module).parse_args(argv)
    try:
        return _main(module, args, argv)
    except run_folder.RunFolderError as error:
        print(f"{experiment_name(module)}: error: {error}", file=sys.stderr)
        return 2


def _main(module, args, argv):
    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    name = experiment_name(module)
    results_dir = args.results_dir = args.results_dir or os.path.join("results", name + ("" if mode == "full" else f"_{mode}"))
    runs = seeded(module.runs(mode, args), args.seeds)
    unknown = set(args.only or []) - {run.name for run in runs}
    if unknown:
        print(f"{name}: error: --only {' '.join(sorted(unknown))}: no such run; runs are: "
              f"{', '.join(run.name for run in runs)}", file=sys.stderr)
        return 2
    if args.plan:
        run_folder.make_folder(results_dir, "--results_dir")
        plan = compute_plan(runs)
        text = plan_text(plan, args.only)
        fileio.write_text(os.path.join(results_dir, "plan.md"), text + "\n")
        fileio.atomic_write(os.path.join(results_dir, PLAN_CSV), lambda temp: plan.to_csv(temp, index=False))
        print(text)
        return 0
    if args.list:
        for run in runs:
            if args.only and run.name not in args.only:
                continue
            print(f"{run.folder}: {run_config.command(run.located(getattr(args, DATA_FLAGS[run.config.dataset]), results_dir))}")
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
            return 130
    runs = with_trained_seeds(runs, results_dir)
    metrics = collect(runs, results_dir)
    if hasattr(module, "external_metrics"):  # runs trained outside the engine (he2016_matched's PyTorch peer)
        metrics = pd.concat([metrics, module.external_metrics(results_dir)], ignore_index=True)
    lost = runs_without_folders(results_dir, metrics)
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
    write_report(report, module, mode, command, rows, figures, notes, runs, results_dir)
    numbers = numbers_frame(rows, module, mode, metrics, runs, results_dir)
    fileio.atomic_write(os.path.join(results_dir, "numbers.csv"), lambda temp: numbers.to_csv(temp, index=False))
    print(f"\nWrote {report}, metrics.csv and {len(figures)} figure(s) in {results_dir}")
    print(report_table(rows))
    return 0


def per_seed(metrics, run, column, pick):
    """One value of ``column`` per seed of ``run`` (ordered by seed), ``pick`` choosing it from that seed's reports;
    an empty array when the run is absent."""
    rows = metrics[metrics["run"] == run]
    return np.array([pick(seed_rows, column) for _, seed_rows in rows.groupby("seed", sort=True)], dtype=float)


def last(metrics, run, column):
    """``column`` at the last report of ``run``, per seed."""
    return per_seed(metrics, run, column, lambda rows, c: rows[c].iloc[-1])


def best(metrics, run, column):
    """The highest ``column`` over the reports of ``run``, per seed."""
    return per_seed(metrics, run, column, lambda rows, c: rows[c].max())


def late_gain(metrics, run, column, fraction=0.2):
    """How much the best ``column`` of the last ``fraction`` of a run's steps beats the best before them, per seed:
    near zero (or below) when the curve has plateaued, the plateau rule of the reproductions."""

    def gain(rows, c):
        late = rows["step"] > rows["step"].max() * (1 - fraction)
        return rows.loc[late, c].max() - rows.loc[~late, c].max() if late.any() and (~late).any() else np.nan

    return per_seed(metrics, run, column, gain)


def plateau_verdict(gains, test_images):
    """The plateau rule in words: plateaued when the mean late gain is below one binomial s.e. of the accuracy."""
    mean, _, n = summary(gains)
    if not n:
        return "n/a"
    threshold = (0.25 / test_images) ** 0.5  # the largest binomial s.e. (at accuracy 0.5): a conservative bound
    return (f"plateaued: gain below {threshold:.4f} (one binomial s.e.)" if mean < threshold else
            f"still rising: gain above {threshold:.4f} (one binomial s.e.); longer training would change this number")


def at_step(metrics, run, column, step):
    """``column`` at the report nearest to ``step``, per seed."""
    return per_seed(metrics, run, column, lambda rows, c: rows.loc[(rows["step"] - step).abs().idxmin(), c])


def paired(first, second):
    """Seed-by-seed differences of two runs' per-seed values (as many seeds as both have)."""
    n = min(len(first), len(second))
    return first[:n] - second[:n]


def summary(values):
    """(mean, sd, n) of per-seed values (a number counts as one seed); sd is NaN below two seeds."""
    values = np.atleast_1d(np.asarray(values if values is not None else [], dtype=float))
    values = values[np.isfinite(values)]
    n = len(values)
    return (float(values.mean()) if n else float("nan"), float(values.std(ddof=1)) if n > 1 else float("nan"), n)


def verdict(differences, test_images=None):
    """Whether seed-by-seed differences between two models go beyond the noise, in words for the report.

    Beyond noise when the mean is more than two standard errors (sd / sqrt(n)) from zero, i.e. a rough 95%
    interval of the mean difference excludes zero. One seed has no spread to judge against; for a difference of
    two test accuracies (``test_images`` given) it is at least judged against the test set's sampling noise.
    """
    mean, sd, n = summary(differences)
    if n == 0:
        return "not run here: one of the two runs has no result"
    if n < 2 and test_images:
        margin = 2 * (0.5 / test_images) ** 0.5  # 2 s.e. of a difference of two accuracies, at most (both at 0.5)
        side = "beyond" if abs(mean) > margin else "within"
        return (f"one seed: {side} the test set's sampling noise (2 s.e. of a difference of two accuracies on "
                f"{test_images:,} images <= {margin:.4f}); the seed-to-seed spread is not measured (--seeds 3)")
    if n < 2:
        return "one seed: no spread to judge the difference against (run with --seeds 3)"
    margin = 2 * sd / n ** 0.5
    if abs(mean) > margin:
        return f"beyond noise: |mean| > 2 s.e. = {margin:.4f} over n = {n} seeds"
    return f"within noise: |mean| <= 2 s.e. = {margin:.4f} over n = {n} seeds"


def mean_curve(metrics, run, column, x="step"):
    """``column`` of ``run`` against ``x``: the mean over seeds, its sd (NaN for one seed) and n, one row per x."""
    rows = metrics[metrics["run"] == run]
    grouped = rows.groupby(x)[column]
    return pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1), "n": grouped.count()}).reset_index()


def plot_mean(axis, metrics, run, column, x="step", label=None, **style):
    """Draws the mean over seeds, with a band of +-1 sd where there are several; a run with no result yet keeps
    its legend entry, marked "no result" (not run, or not finished)."""
    curve = mean_curve(metrics, run, column, x)
    n = int(curve["n"].max()) if len(curve) else 0
    if label:
        label = f"{label} (n = {n})" if n > 1 else f"{label} (no result)" if n == 0 else label
    (line,) = axis.plot(curve[x], curve["mean"], label=label, **style)
    if n > 1:
        axis.fill_between(curve[x], curve["mean"] - curve["sd"], curve["mean"] + curve["sd"], alpha=0.2,
                          color=line.get_color(), linewidth=0)
    return line
