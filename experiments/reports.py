"""report.md and numbers.csv: the paper-vs-ours table, the notes, the provenance of every run."""

import datetime
import os
import platform

import pandas as pd
import tensorflow as tf

import fileio
import hardware
import provenance
import run_config
import run_folder
from experiments import gather, peer, plans, stats


def machine():
    """One line naming the machine and code that wrote a report (each run's own are under Provenance)."""
    gpus = tf.config.list_physical_devices("GPU")
    commit, uncommitted = provenance.loaded_code_state()
    return (f"{provenance.cpu_description()}, {os.cpu_count()} CPU cores, {len(gpus)} GPU(s), Python "
            f"{platform.python_version()}, TF {tf.__version__}, mixed precision candidates for auto: "
            f"{'/'.join(hardware.precision_candidates())} (each run's precision is under Provenance); "
            f"code at commit {commit[:10]}{_uncommitted_text(uncommitted)}")


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
        mean, sd, n = stats.summary(row.get("ours"))
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


def numbers_frame(rows, module, mode, metrics, runs, results_dir):
    """The report's rows as data (numbers.csv): what experiments/results_table.py builds the README's table from.
    A row naming its ``runs`` gets their wall time, machines and last training day, any other row the whole
    experiment's."""
    records, sessions_by_run = [], gather.finished_sessions(runs, results_dir)
    if hasattr(module, "PEER"):  # the PyTorch peer's machines and days, from its peer_config.json
        sessions_by_run += peer.finished_sessions(results_dir, module.PEER)
    for row in rows:
        mean, sd, n = stats.summary(row.get("ours"))
        machines, day = gather.trained_on(sessions_by_run, row.get("runs"))
        records.append({"paper": module.TITLE, "mode": mode, "quantity": row["quantity"],
                        "paper_value": row.get("paper"), "ours_mean": mean, "ours_sd": sd, "n": n,
                        "comparable": row.get("comparable", True),
                        "test_images": row.get("test_images"), "format": row.get("format", "{:.4f}"),
                        "paper_format": row.get("paper_format", "{:g}"),
                        "schedule": row.get("schedule", ""),
                        "settings": row.get("settings", ""),
                        "hardware": machines, "wall_hours": gather.wall_hours(metrics, row.get("runs")), "date": day})
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
        f"- Mode: **{mode}**"
        + (" (a reduced schedule, not the paper's: see the reductions below)" if mode != "full" else ""),
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
        precision_line(runs, results_dir, module.PRECISION),
        "",
        *provenance_lines(runs, results_dir),
        *(peer.provenance_lines(results_dir, module.PEER) if hasattr(module, "PEER") else []),
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
    path = os.path.join(results_dir, plans.PLAN_CSV)
    if not os.path.exists(path):
        return {}
    plan = run_folder.read_csv(path, numeric=("hours",), present=("run",),
                               what_to_do="make it again with --plan, or move it away; nothing was changed")
    measured_on = plan.get("measured_on", pd.Series("the machine plan.md was measured on", index=plan.index))
    return {run: f": needs about {hours:.1f} hours on {where} (plan.md; machines differ)"
            for run, hours, where in zip(plan["run"], plan["hours"], measured_on)}


def precision_line(runs, results_dir, experiments_own):
    """The precision each run is set to (one per experiment, so its seeds and models compare), and every session of
    a finished run that computed in another (a run resumed with another ``--mixed_precision``, or trained before
    the experiment fixed its precision), from the sessions its config.json records."""
    names = {}
    for run in runs:
        names.setdefault(run.config.mixed_precision, []).append(run.name)
    if len(names) == 1:
        precision = next(iter(names))
        text = f"Precision: {precision} for every run " + (
            "(the experiment's; `--mixed_precision` overrides it)." if precision == experiments_own else
            f"(`--mixed_precision {precision}`; the experiment's own is {experiments_own}).")
    else:
        text = "Precision, as each run sets it: " + "; ".join(
            f"{precision} ({', '.join(dict.fromkeys(group))})" for precision, group in names.items()) + "."
    others, unrecorded = _sessions_off_precision(runs, results_dir)
    if not others and not unrecorded:
        return text + " Every session of every finished run computed in it."
    parts = [text]
    if others:
        parts.append(f"Sessions of finished runs in another precision: {'; '.join(others)}.")
    if unrecorded:
        parts.append(f"Sessions from before the suite recorded each session's precision: {'; '.join(unrecorded)}.")
    return " ".join(parts)


def _sessions_off_precision(runs, results_dir):
    """For precision_line: the finished runs' sessions in a precision other than their run's, and those that
    recorded none (before the suite kept each session's), as text per run folder."""
    others, unrecorded = [], []
    for run in runs:
        folder = os.path.join(results_dir, run.folder)
        done = gather.progress(folder)
        if done is None or not done.finished:
            continue
        saved = run_folder.read_config(folder)
        sessions = saved.get("sessions", [])
        odd = [f"{s['mixed_precision']} from step {s.get('from_step', 0):,}" for s in sessions
               if s.get("mixed_precision", run.config.mixed_precision) != run.config.mixed_precision]
        others += [f"`{run.folder}` ({', '.join(odd)})"] if odd else []
        blank = [f"{s.get('from_step', 0):,}" for s in sessions if "mixed_precision" not in s]
        unrecorded += ([f"`{run.folder}` (from steps {', '.join(blank)}; its config.json: "
                        f"{saved.get('run', {}).get('mixed_precision', 'not recorded')})"] if blank else [])
    return others, unrecorded


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
        reached = gather.unfinished(folder)
        if reached is not None:
            lines.append(f"- `{run.folder}`: UNFINISHED {reached}, left out of every number and figure; the same "
                         f"command continues it")
            continue
        saved = run_folder.read_config(folder)
        timing = os.path.join(folder, run_folder.TIMING)
        hours = (float(run_folder.read_timing(timing)["elapsed_sec"].iloc[-1]) / 3600
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
