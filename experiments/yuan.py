"""Yuan, "ECE371 Assignment 1": an ImageNet-pretrained ResNet-152 fine-tuned on the 5-class flower photos.

Reproduces the validation accuracy (0.947368) of Yuan's setup: ``keras.applications.ResNet152``
without its top and with its own ``preprocess_input``, a new randomly initialised 5-unit head, the
backbone frozen (batch norm in inference mode), 224x224 inputs, random resized crop + flip + colour
jitter for training and resize + centre crop for validation, Adam at 1e-4, 50 epochs, batch 64, an
8:2 split of the folder; plus the accuracy and loss curves and a validation confusion matrix.

Pretrained weights: ``--weights imagenet`` (Keras downloads them), or a local copy of
``resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5``. Without them (``--weights none``, the
only choice offline) the run is labelled in the report as NOT a reproduction: it checks the
pipeline, on random features.

  python -m experiments.yuan --folder_dir flower_photos/                  # full, ImageNet weights
  python -m experiments.yuan --quick --folder_dir ../shared/datasets/flower_photos_mini --weights none
"""

import fractions
import os
import sys


if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import common, plots, stats
from run_config import RunConfig

TITLE = "Yuan"
PAPER = 'Z. Yuan, "ECE371 Neural Networks and Deep Learning, Assignment 1" (Sun Yat-sen University)'
PRECISION = "off"  # float32: a few minutes of training, the same on every machine
PAPER_VAL_ACCURACY = 0.947368
FULL_SET_VALIDATION = 734  # 20% of the 3,670 flower photos, as an 8:2 split leaves them


def _as_fraction(value, largest_denominator=100):
    fraction = fractions.Fraction(value).limit_denominator(largest_denominator)
    return f"{fraction.numerator}/{fraction.denominator}"


def _nearest_counts():
    """The two correct-image counts on the 734 validation photos whose accuracies bracket the paper's."""
    below = int(PAPER_VAL_ACCURACY * FULL_SET_VALIDATION)
    return below, below + 1


# mode -> (model, epochs or steps flag, report every, batch)
SCHEDULE = {
    "full": ("resnet152_imagenet", {"epochs": 50}, None, 64),
    "quick": ("resnet50_imagenet", {"epochs": 4}, 5, 32),
    "tiny": ("resnet50_imagenet", {"train_steps": 2, "image_size": (32, 32)}, 2, 4),
}


def add_arguments(parser):
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet, none (random backbone: not a reproduction), or a local weights file of the "
                             "backbone without its top")


def runs(mode, args=None):
    model, length, report, batch = SCHEDULE[mode]
    weights = getattr(args, "weights", "imagenet")
    config = RunConfig(dataset="folder", model=model, model_options={"weights": weights, "freeze_backbone": True},
                       optimizer="adam", learning_rate=1e-4, validation_split=0.2, augment="imagenet", batch_size=batch,
                       mixed_precision=PRECISION,
                       # full mode: once per epoch, computed from the folder's size
                       report_freq=report or steps_per_epoch(args, batch), **length)
    return [common.Run("flowers", f"{model} ({'ImageNet weights' if weights == 'imagenet' else 'weights: ' + weights})",
                       config)]


def steps_per_epoch(args, batch):
    """Training images / batch for the folder given (80% of the images): one report per epoch."""
    import datasets

    folder = getattr(args, "folder_dir", None)
    if not folder or not os.path.isdir(folder):
        return 46  # 3,670 flower photos: 2,936 for training, 46 batches of 64
    count = len(datasets.list_images([folder]))
    return max(1, int(count * 0.8) // batch)


def _length(length):
    """A schedule such as {"epochs": 4} in words: "4 epochs"."""
    return ", ".join(f"{value} {name.replace('_', ' ')}" if name != "image_size" else f"{value[0]}x{value[1]} images"
                     for name, value in length.items())


def notes(mode):
    model, length, report, batch = SCHEDULE[mode]
    result = [
        "Setup as the paper: frozen backbone (batch norm in inference mode), new 5-unit head, Adam 1e-4, batch 64, "
        "224x224, random resized crop + flip + colour jitter (0.4) for training, resize to 256 + centre crop 224 for "
        "validation, 8:2 split (stratified, seed 0). Validation accuracy is on the held-out 20%.",
        f"Yuan's {PAPER_VAL_ACCURACY} is {_as_fraction(PAPER_VAL_ACCURACY)} to six decimals, which a validation set of "
        f"{FULL_SET_VALIDATION} images (20% of 3,670) cannot give: the nearest it can are "
        f"{', '.join(f'{k}/{FULL_SET_VALIDATION} = {k / FULL_SET_VALIDATION:.6f}' for k in _nearest_counts())}. The "
        f"paper's split, or the set it measured on, differs from an 8:2 split of the whole dataset.",
    ]
    if mode != "full":
        result.append(f"REDUCED ({mode}): {model} instead of resnet152_imagenet, {_length(length)} at batch {batch}; "
                      f"with --weights none the backbone is random and frozen, so the number is NOT comparable with "
                      f"the paper's: the run checks the pipeline end to end.")
    return result


def report_rows(metrics, mode, args):
    model, length, _, _ = SCHEDULE[mode]
    settings = "" if mode == "full" else f"{mode}: {model}, {_length(length)}; "
    pretrained = runs(mode, args)[0].config.pretrained
    if not pretrained:
        settings += "NO pretrained weights (--weights none): NOT a reproduction; "
    full = mode == "full"
    return [
        {"quantity": "validation accuracy (final epoch)", "paper": PAPER_VAL_ACCURACY, "comparable": full,
         "ours": stats.last(metrics, "flowers", "val_accuracy"), "settings": settings + "see notes on the split"},
        {"quantity": "best validation accuracy over the epochs", "paper": PAPER_VAL_ACCURACY, "comparable": full,
         "ours": stats.best(metrics, "flowers", "val_accuracy"),
         "settings": settings.rstrip("; ")},
    ]


def figures(metrics, out_dir, mode, args):
    import api
    import run_folder

    plt = plots.pyplot()
    rows = metrics[metrics["run"] == "flowers"]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for split, name in (("train", "training (report-window mean)"), ("val", "validation (held-out 20%)")):
        for axis, column in ((loss_axis, f"{split}_loss"), (accuracy_axis, f"{split}_accuracy")):
            plots.plot_mean(axis, metrics, "flowers", column, x="epoch", label=name, marker="o", markersize=3)
    accuracy_axis.axhline(PAPER_VAL_ACCURACY, color="gray", linestyle=":", label="Yuan: validation accuracy")
    plots.label_axis(loss_axis, "epoch", "loss")
    plots.label_axis(accuracy_axis, "epoch", "accuracy")
    figure.suptitle(f"Yuan: {rows['label'].iloc[0] if len(rows) else ''} fine-tuned on flower photos ({mode})")
    paths = [plots.save_figure(figure, os.path.join(out_dir, "curves.png"))]
    # The validation confusion matrix, by the suite's own test on the run's held-out images.
    api.test(os.path.join(out_dir, "flowers", "seed0"), output=out_dir)
    return paths + [os.path.join(out_dir, run_folder.TEST_CONFUSION_MATRIX)]


def main(argv=None):
    return common.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
