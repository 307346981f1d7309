"""The experiments' figures: curves of the mean over seeds with their ±1 sd band, finished axes, saved atomically."""

import fileio
from experiments import stats


pyplot = fileio.pyplot  # the experiments' figure code draws through plots.pyplot()


def save_figure(figure, path):
    """Writes an experiment's figure (at the resolution of the committed results) atomically and closes it."""
    return fileio.save_figure(figure, path, dpi=110)


def label_axis(axis, xlabel, ylabel, title=None, **legend):
    """The finishing every curve panel gets: axis labels, optional title, a light grid, the legend (``legend``:
    matplotlib's legend options, e.g. fontsize)."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(**legend)


def plot_mean(axis, metrics, run, column, x="step", label=None, **style):
    """Draws the mean over seeds, with a band of +-1 sd where there are several; a run with no result yet keeps
    its legend entry, marked "no result" (not run, or not finished)."""
    curve = stats.mean_curve(metrics, run, column, x)
    n = int(curve["n"].max()) if len(curve) else 0
    if label:
        label = f"{label} (n = {n})" if n > 1 else f"{label} (no result)" if n == 0 else label
    (line,) = axis.plot(curve[x], curve["mean"], label=label, **style)
    if n > 1:
        axis.fill_between(curve[x], curve["mean"] - curve["sd"], curve["mean"] + curve["sd"], alpha=0.2,
                          color=line.get_color(), linewidth=0)
    return line


def plot_summaries(axis, xs, summaries, **style):
    """Means over seeds with +-1 sd bars, from ``stats.summary``'s (mean, sd, n) per x; a point of one seed (sd
    NaN) gets no bar, since one seed has no spread to draw. Points with no seed are left out."""
    points = [(x, mean, sd if n > 1 else 0.0) for x, (mean, sd, n) in zip(xs, summaries) if n]
    if points:
        xs, means, sds = zip(*points)
        axis.errorbar(xs, means, yerr=sds, capsize=3, **style)
