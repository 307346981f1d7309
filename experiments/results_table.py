"""The README's results table, built from the experiments' numbers.csv files (never typed by hand).

Each full-schedule experiment writes ``experiments/results/<paper>/numbers.csv`` (its report's rows as
data); this prints them as one markdown table, the way akamaster/pytorch_resnet_cifar10's README is
read: quantity, the paper's number, ours (mean ± sd over n seeds), the schedule, what differs, hardware and
wall time.
Rows a paper states but we did not run keep their command and "not run here". ``--update README.md``
replaces the table between the README's ``<!-- results:begin -->`` and ``<!-- results:end -->`` lines.

  python -m experiments.results_table --update README.md
"""

import argparse
import glob
import math
import os
import sys

import pandas as pd

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


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
    frames = [pd.read_csv(path) for path in sorted(glob.glob(os.path.join(results_root, "*", "numbers.csv")))]
    frames = [frame for frame in frames if (frame["mode"] == "full").all()]
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


def update(readme, text):
    """Replaces the block between the README's markers; a README without them is an error, not rewritten."""
    try:
        with open(readme) as handle:
            content = handle.read()
    except OSError as error:
        raise SystemExit(f"results_table.py: error: cannot read {readme}: {error.strerror}") from None
    if BEGIN not in content or END not in content:
        raise SystemExit(f"results_table.py: error: {readme} has no {BEGIN} ... {END} block")
    head, rest = content.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(readme, "w") as handle:
        handle.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="results_table.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_root", default=os.path.join("experiments", "results"),
                        help="folder of the experiments' full-schedule results (default: experiments/results)")
    parser.add_argument("--update", metavar="README", help="write the table into this file between the markers")
    args = parser.parse_args(argv)
    text = table(args.results_root)
    if args.update:
        update(args.update, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
