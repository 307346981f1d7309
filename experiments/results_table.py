"""The results tables, built from the experiments' numbers.csv files (never typed by hand).

Each full-schedule experiment writes ``experiments/results/<paper>/numbers.csv`` (its report's rows as
data). ``table`` prints every row as one markdown table (experiments/RESULTS.md): quantity, the paper's
number, ours (mean ± sd over n seeds), the schedule, what differs, hardware and wall time; rows a paper
states but we did not run keep their command and "not run here". ``summary`` prints the headline rows
(``HEADLINES``) one line each, the way akamaster/pytorch_resnet_cifar10's README is read (the README's
first screen). ``--update FILE ...`` replaces each block a file has: the full table between
``<!-- results:begin -->`` and ``<!-- results:end -->``, the summary between ``<!-- summary:begin -->`` and
``<!-- summary:end -->``.

  python -m experiments.results_table --update README.md experiments/RESULTS.md
"""

import argparse
import glob
import math
import os
import sys

import pandas as pd

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fileio

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# The modes the tables show: the papers' schedules, and He's depth trend at a quarter of his (results/he2016_quarter,
# every row of it named "Quarter schedule: ..." with its schedule); quick and tiny checks are no results.
TABLE_MODES = ("full", "quarter")
SUMMARY_BEGIN, SUMMARY_END = "<!-- summary:begin -->", "<!-- summary:end -->"
# The rows the README's summary shows: (paper, a regular expression matching the start of the quantity as the
# experiment's report names it; $ ends it). Selectors only; every number comes from numbers.csv.
HEADLINES = (
    ("He et al. 2016a", r"ResNet-20 \("),
    ("He et al. 2016a", r"PyTorch peer, same recipe and data"),
    ("He et al. 2016a", r"gap the data explains"),
    ("He et al. 2016a", r"gap the code explains"),
    ("Liang 2020", r"ResNet-20 validation error at step 9775$"),
    ("Liang 2020", r"ResNet-20 validation error at step 9775, batch norm on each batch"),
    ("Lu & Song", r"Table 1: ResNet \(ResNet-20\), MNIST, highest test accuracy"),
    ("Lu & Song", r"Table 1: LeNet-5, MNIST, highest test accuracy"),
    ("Lu & Song", r"Table 1: ResNet \(ResNet-20\), CIFAR-10, highest test accuracy"),
    ("Lu & Song", r"Table 1: LeNet-5, CIFAR-10, highest test accuracy"),
    ("Jin 2023", r"late test accuracy, k = 4 minus the plain CNN"),
    ("Xu", r"ResNet18 test accuracy"),
)


def headline_rows(rows, paper, pattern):
    """The rows of ``rows`` (numbers.csv frames) a HEADLINES entry selects."""
    return rows[(rows["paper"] == paper) & rows["quantity"].str.match(pattern)]


def _format(row, key, default):
    """A text column of the row (a format, the settings); numbers.csv files written before the column existed, or
    an empty cell, give NaN, so ``default``."""
    return row[key] if isinstance(row.get(key), str) else default


def _number(value, fmt):
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _paper(value, fmt):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(float(value))


def table(results_root):
    """Markdown of every full-mode numbers.csv under ``results_root`` (one row per reported quantity)."""
    frames = _frames(results_root)
    lines = ["| paper | quantity | paper's value | ours: mean ± sd (n seeds) | schedule | settings, data | hardware "
             "| wall time |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for frame in frames:
        for row in frame.to_dict("records"):
            n, fmt = int(row["n"]), _format(row, "format", "{:.4f}")
            ours = "not run here" if not n else _number(row["ours_mean"], fmt) + (
                f" ± {_number(row['ours_sd'], fmt)} ({n})" if n > 1 else " (1)")
            if n and isinstance(row.get("test_images"), float) and not math.isnan(row["test_images"]):
                error = math.sqrt(row["ours_mean"] * (1 - row["ours_mean"]) / row["test_images"])
                ours += f", binomial s.e. {error:.4f}"
            settings, schedule = (_format(row, key, "") for key in ("settings", "schedule"))
            when = f"{row['wall_hours']:.1f} h, {row['date']}" if n else ""
            paper = _paper(row["paper_value"], _format(row, "paper_format", "{:g}"))
            lines.append(f"| {row['paper']} | {row['quantity']} | {paper} | {ours} | {schedule} | "
                         f"{settings} | {row['hardware'] if n else ''} | {when} |")
    if not frames:
        lines.append("| (no full-schedule result yet) | | | | | | | |")
    return "\n".join(lines)


def _frames(results_root):
    frames = [pd.read_csv(path) for path in sorted(glob.glob(os.path.join(results_root, "*", "numbers.csv")))]
    return [frame for frame in frames if frame["mode"].isin(TABLE_MODES).all()]


def summary(results_root):
    """Markdown of the HEADLINES rows: paper, quantity, the paper's value, ours (mean ± sd, n), data."""
    rows = pd.concat(_frames(results_root), ignore_index=True) if _frames(results_root) else pd.DataFrame(
        columns=["paper", "quantity"])
    lines = ["| paper | quantity | paper's value | ours: mean ± sd (n seeds) |", "| --- | --- | --- | --- |"]
    for paper, pattern in HEADLINES:
        for row in headline_rows(rows, paper, pattern).to_dict("records"):
            n, fmt = int(row["n"]), _format(row, "format", "{:.4f}")
            ours = "not run here" if not n else _number(row["ours_mean"], fmt) + (
                f" ± {_number(row['ours_sd'], fmt)} ({n})" if n > 1 else " (1)")
            lines.append(f"| {paper} | {row['quantity']} | "
                         f"{_paper(row['paper_value'], _format(row, 'paper_format', '{:g}'))} | {ours} |")
    return "\n".join(lines)


def update(path, blocks):
    """Replaces, in ``path``, each ``(begin, end, text)`` block whose markers it has; a file with none of them is
    an error, not rewritten."""
    try:
        with open(path) as handle:
            content = handle.read()
    except OSError as error:
        raise SystemExit(f"results_table.py: error: cannot read {path}: {error.strerror}") from None
    found = [(begin, end, text) for begin, end, text in blocks if begin in content and end in content]
    if not found:
        raise SystemExit(f"results_table.py: error: {path} has no {BEGIN} ... {END} or {SUMMARY_BEGIN} ... "
                         f"{SUMMARY_END} block")
    for begin, end, text in found:
        head, rest = content.split(begin, 1)
        content = f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}"
    fileio.write_text(path, content)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.results_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_root", default=os.path.join("experiments", "results"),
                        help="folder of the experiments' full-schedule results (default: experiments/results)")
    parser.add_argument("--update", metavar="FILE", nargs="+",
                        help="write the full table and the summary into these files, between their markers")
    args = parser.parse_args(argv)
    text, short = table(args.results_root), summary(args.results_root)
    for path in args.update or ():
        update(path, [(BEGIN, END, text), (SUMMARY_BEGIN, SUMMARY_END, short)])
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
