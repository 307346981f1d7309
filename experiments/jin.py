"""Jin 2023, "Analysis of Residual Block in the ResNet for Image Classification": a plain CNN against
the same CNN with k residual blocks, on CIFAR-10.

Reproduces Figs. 2-3 (loss and accuracy curves; the paper sees the loss rebound and the accuracy
converge near epoch 20) and a table of final accuracy by k. The model (``resnet.jin_cnn``) is
Conv2D + MaxPooling2D, then k residual blocks, global average pooling and a dense layer; the
augmentation is Jin's Keras Sequential of Rescaling(1/255) and RandomFlip("horizontal_and_vertical"),
the loss SparseCategoricalCrossentropy. The paper gives no optimiser, widths or epochs: we use
Adam at 1e-3 (Keras' default), batch 64, 64 filters, 40 epochs, and sweep k = 0, 1, 2, 4.

  python -m experiments.jin --cifar10_dir ../shared/datasets/cifar10
  python -m experiments.jin --quick --cifar10_dir ../shared/datasets/cifar10
"""

import os
import sys

from dataclasses import replace

import numpy as np

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import common, plots, stats
from run_config import RunConfig

TITLE = "Jin 2023"
PAPER = ('X. Jin, "Analysis of Residual Block in the ResNet for Image Classification", DAML 2023, '
         'pp. 246-250')
PAPER_REBOUND_EPOCH = 20  # Section 3: the loss rebounds near 20 epochs, the accuracy converges around 20
PRECISION = "bfloat16"  # every run, as 12 of the first 15 (see the report's notes)
BLOCKS = (0, 1, 2, 4)
BATCH = 64
STEPS_PER_EPOCH = 50000 // BATCH  # 781 full batches
# mode -> (epochs, reports per epoch)
SCHEDULE = {"full": (40, 1), "quick": (6, 2), "tiny": (None, None)}


def runs(mode, args=None):
    epochs, per_epoch = SCHEDULE[mode]
    base = RunConfig(model="jin_cnn", augment="sequential", optimizer="adam", learning_rate=1e-3, validation_split=0.0,
                     mixed_precision=PRECISION)
    if mode == "tiny":
        base = replace(base, train_steps=4, report_freq=2, batch_size=5)
    else:  # whole report windows: the last report covers as many steps as the others
        report = STEPS_PER_EPOCH // per_epoch
        base = replace(base, train_steps=report * per_epoch * epochs, report_freq=report, batch_size=BATCH)
    return [common.Run(f"k{k}", "plain CNN (k=0)" if k == 0 else f"CNN + {k} residual block{'s' if k > 1 else ''}",
                       replace(base, model_options={"residual_blocks": k}), group="k")
            for k in BLOCKS]


def notes(mode):
    epochs, _ = SCHEDULE[mode]
    result = [
        "The paper gives no optimiser, learning rate, batch size, widths or epochs: Adam 1e-3, batch 64, 64 filters "
        "per conv, no learning-rate decay, 40 epochs are our choices.",
        "Residual blocks are He 2016a's basic block (conv-BN-ReLU, conv-BN, identity add, ReLU) at 64 filters.",
        "Test metrics are on the 10,000 test images (the paper's curves do not say which split); train metrics are "
        "means over each report window, with augmentation on.",
        common.CIFAR10_DATA_NOTE,
    ]
    if mode != "full":
        result.append(f"REDUCED ({mode}): {epochs or 'a few steps'} epochs instead of 40, so a rebound near epoch 20 "
                      f"cannot show; the rows about it report what the shorter curves do.")
    return result


# Adam at a constant rate makes the test curves swing between reports (by 0.1-0.3 in loss, 0.05 in accuracy at
# k = 1 here), so the rows below read windows of reports, not single ones.
LATE_EPOCHS = 5  # "late accuracy": the mean of the reports in the last 5 epochs
SMOOTH_REPORTS = 5  # the lowest test loss is looked for on a centred mean of 5 reports
REBOUND_WINDOW = 10  # the loss near epoch 20 (epochs 16-25) against the loss in the last 10 epochs
REBOUND_START = PAPER_REBOUND_EPOCH - REBOUND_WINDOW // 2 + 1  # 16


def _window_mean(rows, column, epochs):
    """The mean of ``column`` over one seed's reports in its last ``epochs`` epochs."""
    epoch = rows["epoch"].round()
    return rows.loc[epoch > epoch.max() - epochs, column].mean()


def _late_mean(metrics, run, column):
    """Per seed: the mean of ``column`` over the reports of the last LATE_EPOCHS epochs."""
    return stats.per_seed(metrics, run, column, lambda rows, c: _window_mean(rows, c, LATE_EPOCHS))


def _epoch_of_min_loss(metrics, run):
    """Per seed: the epoch of the lowest test loss on the curve smoothed over SMOOTH_REPORTS reports."""
    return stats.per_seed(metrics, run, "val_loss", lambda rows, c: rows.loc[
        rows[c].rolling(SMOOTH_REPORTS, center=True, min_periods=1).mean().idxmin(), "epoch"])


def _loss_rebound(metrics, run):
    """Per seed: the mean test loss of the last REBOUND_WINDOW epochs minus its mean in the REBOUND_WINDOW epochs
    around the paper's epoch 20 (> 0: the loss rose again); NaN when the run ends before both windows exist."""

    def rebound(rows, c):
        epoch = rows["epoch"].round()
        if epoch.max() < REBOUND_START + 2 * REBOUND_WINDOW - 1:  # the two windows would overlap or be cut short
            return np.nan
        around = (epoch >= REBOUND_START) & (epoch < REBOUND_START + REBOUND_WINDOW)
        return _window_mean(rows, c, REBOUND_WINDOW) - rows.loc[around, c].mean()

    return stats.per_seed(metrics, run, "val_loss", rebound)


def _epoch_converged(metrics, run, share=0.95):
    """Per seed: the first epoch at which test accuracy reaches ``share`` of its late mean (not of its best report,
    which is one swing up)."""

    def converged(rows, c):
        return rows.loc[rows[c] >= share * _window_mean(rows, c, LATE_EPOCHS), "epoch"].iloc[0]

    return stats.per_seed(metrics, run, "val_accuracy", converged)


def _schedule(mode):
    """The schedule column of the README's table, from the runs' own settings."""
    config, (epochs, _) = runs(mode)[0].config, SCHEDULE[mode]
    return (f"{f'{epochs} epochs, ' if epochs else ''}{config.train_steps:,} steps x {config.batch_size}, "
            f"Adam lr {config.learning_rate:g} constant, flips")


def _name(k):
    return "plain CNN" if k == 0 else f"k = {k}"


def report_rows(metrics, mode, args):
    budget = "" if mode == "full" else f"{mode}: {SCHEDULE[mode][0] or 'a few steps of'} epochs, not 40; "
    schedule = _schedule(mode)

    def row(quantity, ours, settings, runs, paper=None, **extra):
        return {"quantity": quantity, "paper": paper, "ours": ours, "runs": runs, "schedule": schedule,
                "settings": budget + settings, **extra}

    rows = [row(f"final test accuracy, {_name(k)}", stats.last(metrics, f"k{k}", "val_accuracy"),
                "the paper reports curves, no numbers", [f"k{k}"], test_images=10000) for k in BLOCKS]
    rows += [row(f"best test accuracy at any report, {_name(k)}", stats.best(metrics, f"k{k}", "val_accuracy"),
                 "Adam at a constant learning rate: test accuracy swings between reports, so the last report alone "
                 "can misrank k", [f"k{k}"]) for k in BLOCKS]
    late = f"mean of the reports in the last {LATE_EPOCHS} epochs, so one report's swing does not decide"
    rows += [row(f"late test accuracy (last {LATE_EPOCHS} epochs), {_name(k)}",
                 _late_mean(metrics, f"k{k}", "val_accuracy"), late, [f"k{k}"]) for k in BLOCKS]
    for k in BLOCKS[1:]:  # the paper's claim, k by k: residual blocks help, by how much, beyond noise or not
        gain = stats.paired(_late_mean(metrics, f"k{k}", "val_accuracy"), _late_mean(metrics, "k0", "val_accuracy"))
        rows.append(row(f"late test accuracy, k = {k} minus the plain CNN (seed by seed)", gain,
                        f"the paper: residual blocks make the model 'much better'; {late}; "
                        + stats.verdict(gain, 10000), [f"k{k}", "k0"]))
    # The loss rebound (Fig. 2) and the convergence (Fig. 3) near epoch 20, for every model; a shorter schedule
    # cannot be set against the paper's epoch 20, so its difference is left empty.
    for k in BLOCKS:
        runs_k = [f"k{k}"]
        rows.append(row(f"epoch of the lowest test loss (centred mean of {SMOOTH_REPORTS} reports), {_name(k)}",
                        _epoch_of_min_loss(metrics, f"k{k}"), "the paper's 20 is read off its Fig. 2", runs_k,
                        PAPER_REBOUND_EPOCH, format="{:.1f}", comparable=mode == "full"))
        rows.append(row(f"test loss of the last {REBOUND_WINDOW} epochs minus that of epochs {REBOUND_START}-"
                        f"{REBOUND_START + REBOUND_WINDOW - 1} (the rebound), {_name(k)}",
                        _loss_rebound(metrics, f"k{k}"),
                        "the paper: the loss rises again after about 20 epochs (Fig. 2); > 0 = it rose; n/a when "
                        "the run is too short for both windows", runs_k))
        rows.append(row(f"epoch test accuracy reaches 95% of its late mean, {_name(k)}",
                        _epoch_converged(metrics, f"k{k}"), "the paper: 'converges around 20 epochs' (Fig. 3)",
                        runs_k, PAPER_REBOUND_EPOCH, format="{:.1f}", comparable=mode == "full"))
    return rows


def figures(metrics, out_dir, mode, args):
    plt = plots.pyplot()
    paths = []
    for column, name, title in (("loss", "fig2_loss.png", "Fig. 2: loss"),
                                ("accuracy", "fig3_accuracy.png", "Fig. 3: accuracy")):
        figure, (train_axis, test_axis) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for run in runs(mode):
            plots.plot_mean(train_axis, metrics, run.name, f"train_{column}", x="epoch", label=run.label)
            plots.plot_mean(test_axis, metrics, run.name, f"val_{column}", x="epoch", label=run.label)
        plots.label_axis(train_axis, "epoch", column, "training (report-window mean)")
        plots.label_axis(test_axis, "epoch", column, "test set")
        figure.suptitle(f"Jin 2023, {title}: CNN + k residual blocks on CIFAR-10 ({mode})")
        paths.append(plots.save_figure(figure, os.path.join(out_dir, name)))

    figure, axis = plt.subplots(figsize=(6, 4))
    width = 0.27
    for offset, label, pick in ((-width, "last report", stats.last),
                                (0, f"mean of the last {LATE_EPOCHS} epochs", _late_mean),
                                (width, "best report", stats.best)):
        summaries = [stats.summary(pick(metrics, f"k{k}", "val_accuracy")) for k in BLOCKS]
        values = [mean for mean, _, _ in summaries]
        positions = [index + offset for index in range(len(BLOCKS))]
        spreads = [sd for _, sd, _ in summaries]
        axis.bar(positions, values, width, label=label, capsize=3,
                 yerr=[sd if sd == sd else 0 for sd in spreads] if any(sd == sd for sd in spreads) else None)
        for position, value, sd in zip(positions, values, spreads):  # above the error bar, not across it
            axis.text(position, value + (sd if sd == sd else 0), f"{value:.3f}", ha="center", va="bottom", fontsize=6)
    axis.set_xticks(range(len(BLOCKS)), [str(k) for k in BLOCKS])
    plots.label_axis(axis, "residual blocks k (0 = plain CNN)", "test accuracy",
                     f"Jin 2023: test accuracy by k ({mode}; error bars: sd over seeds)")
    axis.set_ylim(0, 1)
    axis.legend(loc="upper left", fontsize=8)
    paths.append(plots.save_figure(figure, os.path.join(out_dir, "accuracy_by_k.png")))
    return paths


def main(argv=None):
    return common.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
