"""Per-seed numbers from an experiment's metrics and what they say: mean ± sd over seeds, paired differences and
whether they go beyond noise, the plateau rule."""

import numpy as np
import pandas as pd


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
                f"{test_images:,} images <= {margin:.4f}); the seed-to-seed spread is not measured (more seeds, "
                "--seeds N, measure it)")
    if n < 2:
        return "one seed: no spread to judge the difference against (more seeds, --seeds N, measure it)"
    margin = 2 * sd / n ** 0.5
    if abs(mean) > margin:
        return f"beyond noise: |mean| > 2 s.e. = {margin:.4f} over n = {n} seeds"
    return f"within noise: |mean| <= 2 s.e. = {margin:.4f} over n = {n} seeds"


def mean_curve(metrics, run, column, x="step"):
    """``column`` of ``run`` against ``x``: the mean over seeds, its sd (NaN for one seed) and n, one row per x."""
    rows = metrics[metrics["run"] == run]
    grouped = rows.groupby(x)[column]
    return pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1), "n": grouped.count()}).reset_index()
