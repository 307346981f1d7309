"""Xu, "Image Classification Based on ResNet Models": ResNet18 against ResNet50 on CIFAR-10.

Reproduces Tables 1-2 (training loss and accuracy at epochs 1, 11, ..., 91), Figs. 1-2 (the same as
curves) and the test accuracies (ResNet18 0.8294, ResNet50 0.7604). Preprocessing is the paper's:
normalisation with mean 0.5 and std 0.5, random crop and horizontal flip (``--augment xu``), cross-
entropy, 100 epochs. The paper describes the ImageNet stem (7x7 convolution, stride 2) and nothing
about the optimiser: we keep that stem (``--stem imagenet``; ``--stem cifar`` runs the 3x3/1 stem
instead) and use SGD momentum 0.9 at a constant lr 0.01, batch 128.

  python -m experiments.xu --cifar10_dir ../shared/datasets/cifar10
  python -m experiments.xu --quick --cifar10_dir ../shared/datasets/cifar10
"""

import os
import sys

from dataclasses import replace

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import common, plans, plots, stats
from run_config import RunConfig

TITLE = "Xu"
PAPER = 'Y. Xu, "Image Classification Based on ResNet Models"'
TABLE_EPOCHS = (1, 11, 21, 31, 41, 51, 61, 71, 81, 91)
# Tables 1-2: epoch -> (training loss, training accuracy)
PRECISION = "bfloat16"  # every run, as ResNet18's seed 0
PAPER_TABLES = {
    "resnet18": dict(zip(TABLE_EPOCHS, [(1.8464, 0.3311), (0.7212, 0.7497), (0.5342, 0.8123), (0.4382, 0.8449),
                                        (0.3681, 0.8695), (0.3245, 0.8841), (0.2831, 0.8986), (0.2503, 0.9108),
                                        (0.2249, 0.9194), (0.2006, 0.9286)])),
    "resnet50": dict(zip(TABLE_EPOCHS, [(5.3736, 0.0989), (1.8222, 0.2828), (1.3513, 0.5106), (1.0735, 0.6174),
                                        (0.8822, 0.6905), (0.7540, 0.7358), (0.6581, 0.7689), (0.5926, 0.7924),
                                        (0.5149, 0.8192), (0.4618, 0.8377)])),
}
PAPER_TEST_ACCURACY = {"resnet18": 0.8294, "resnet50": 0.7604}
NAMES = {"resnet18": "ResNet18", "resnet50": "ResNet50"}
STEPS_PER_EPOCH = 391  # ceil(50000 / 128): one report per epoch
SCHEDULE = {"full": 100, "quick": 4, "tiny": None}  # epochs


def add_arguments(parser):
    parser.add_argument("--stem", choices=("imagenet", "cifar"), default="imagenet",
                        help="imagenet: the 7x7/2 conv + max-pool the paper describes; cifar: a 3x3/1 conv for 32x32 "
                             "images (about 16x the compute)")


def runs(mode, args=None):
    stem = getattr(args, "stem", "imagenet")
    base = RunConfig(augment="xu", optimizer="sgd", learning_rate=0.01, lr_decay_at=(), validation_split=0.0,
                     mixed_precision=PRECISION, model_options={"stem": stem})
    if mode == "tiny":
        base = replace(base, train_steps=4, report_freq=2, batch_size=5)
    else:
        base = replace(base, epochs=SCHEDULE[mode], report_freq=STEPS_PER_EPOCH, batch_size=128)
    return [common.Run(model, NAMES[model], replace(base, model=model)) for model in NAMES]


def notes(mode):
    result = [
        "The paper gives no optimiser, learning rate or batch size: SGD momentum 0.9, constant lr 0.01, batch 128, "
        "weight decay 1e-4 are ours.",
        "Stem: the paper's ResNet18 starts with a 7x7 stride-2 convolution (and, as in He et al., a 3x3/2 max-pool), "
        "which leaves 8x8 maps from a 32x32 image. Run with --stem cifar for the 3x3/1 stem usually used on CIFAR.",
        "Xu's ResNet50 averages a training loss of 5.37 over epoch 1, far above ln(10) = 2.30 (a uniform 10-way "
        "guess) and nearer ln(1000) = 6.91: its head may have kept ImageNet's 1000 outputs, though a badly scaled "
        "start can also push the first epoch above ln(10) (compare our epoch-1 row). Ours has 10 outputs.",
        "Training loss and accuracy are means over each epoch (augmented images), as a per-epoch training log gives; "
        "our loss is the cross-entropy without the weight-decay term. Test accuracy is on the 10,000 test images "
        "at the end.",
        common.CIFAR10_DATA_NOTE,
    ]
    if mode != "full":
        result.append(f"REDUCED ({mode}): {SCHEDULE[mode] or 'a few steps, not'} epochs instead of 100: only the "
                      f"table rows for epochs we reached are compared; the test accuracy is after our last epoch.")
    return result


def _at_epoch(metrics, run, column, epoch):
    """Per seed: ``column`` at the report of epoch ``epoch`` (NaN for a seed that did not reach it)."""
    def pick(rows, c):
        rows = rows[(rows["epoch"] - epoch).abs() < 0.5]
        return rows[c].iloc[0] if len(rows) else float("nan")

    return stats.per_seed(metrics, run, column, pick)


def _schedule(mode):
    """The schedule column of the README's table, from the runs' own settings."""
    config = runs(mode)[0].config
    steps = plans.total_steps(config)
    epochs = f"{config.epochs} epochs, " if config.epochs else ""
    return f"{epochs}{steps:,} steps x {config.batch_size}, SGD lr {config.learning_rate:g} constant, crop + flip"


def report_rows(metrics, mode, args):
    full = mode == "full"
    budget = "" if full else f"{mode}: {SCHEDULE[mode] or 'a few steps, not'} epochs, not 100; "
    schedule = _schedule(mode)
    rows = []
    for model, name in NAMES.items():
        rows.append({"quantity": f"{name} test accuracy", "paper": PAPER_TEST_ACCURACY[model], "paper_format": "{:.4f}",
                     "ours": stats.last(metrics, model, "val_accuracy"), "comparable": full, "test_images": 10000,
                     "settings": budget + "10-way head", "runs": [model], "schedule": schedule})
    for model, name in NAMES.items():
        table = 1 if model == "resnet18" else 2
        for epoch in TABLE_EPOCHS:  # all 20 pairs; n/a where our run did not reach the epoch
            paper_loss, paper_accuracy = PAPER_TABLES[model][epoch]
            for quantity, paper, column in (("training loss", paper_loss, "train_loss"),
                                            ("training accuracy", paper_accuracy, "train_accuracy")):
                rows.append({"quantity": f"Table {table}: {name} epoch {epoch} {quantity}", "paper": paper,
                             "paper_format": "{:.4f}", "ours": _at_epoch(metrics, model, column, epoch),
                             "settings": budget.rstrip("; "), "runs": [model], "schedule": schedule})
    return rows


def figures(metrics, out_dir, mode, args):
    plt = plots.pyplot()
    paths = []
    for number, model in enumerate(NAMES, start=1):
        paper_epochs = list(PAPER_TABLES[model])
        figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
        plots.plot_mean(loss_axis, metrics, model, "train_loss", x="epoch", label="ours: training loss", marker="o",
                        markersize=3)
        loss_axis.plot(paper_epochs, [PAPER_TABLES[model][e][0] for e in paper_epochs], "s--",
                       label="Xu: training loss")
        for column, label in (("train_accuracy", "ours: training accuracy"), ("val_accuracy", "ours: test accuracy")):
            plots.plot_mean(accuracy_axis, metrics, model, column, x="epoch", label=label, marker="o", markersize=3)
        accuracy_axis.plot(paper_epochs, [PAPER_TABLES[model][e][1] for e in paper_epochs], "s--",
                           label="Xu: training accuracy")
        accuracy_axis.axhline(PAPER_TEST_ACCURACY[model], color="gray", linestyle=":", label="Xu: final test accuracy")
        plots.label_axis(loss_axis, "epoch", "loss")
        plots.label_axis(accuracy_axis, "epoch", "accuracy")
        figure.suptitle(f"Xu, Fig. {number}: {NAMES[model]} on CIFAR-10 ({mode})")
        paths.append(plots.save_figure(figure, os.path.join(out_dir, f"fig{number}_{model}.png")))
    return paths


def main(argv=None):
    return common.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
