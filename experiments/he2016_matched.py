"""He et al. 2016a's recipe compressed to 8,000 steps: the data or the code? (issue 33)

Every CIFAR-10 number of the suite lands below its paper; the CIFAR-10 copy here went through JPEG. This
experiment measures, on the same data files and the same compressed schedule (8,000 steps x 128, learning rate
0.1 divided by 10 at 4,000 and 6,000, everything else He's recipe as ``experiments/he2016.py`` runs it), how
much each code difference costs, one arm per difference, each against "ours as it was":

- ``ours``: the suite as it ran every CIFAR-10 reproduction before (weight decay on the kernels only,
  TensorFlow's "same" padding, float32);
- ``decay_all``: weight decay on every parameter, batch-norm scales and offsets and the dense bias too
  (``--weight_decay_scope all``: Caffe, fb.resnet.torch, akamaster);
- ``symmetric``: stride-2 convolutions padded on every side (``--conv_padding symmetric``: Caffe, PyTorch), so the
  residual branch and option A's shortcut sample the same pixels;
- ``bfloat16``: ``ours`` in bfloat16 mixed precision (what the faster CPU runs use);
- ``peer``: the same recipe in PyTorch (``benchmarks/pytorch_peer_train.py``, its own virtual environment), the
  evidence that tells the data from the code: it is trained outside the engine, by the command the notes give,
  and read from its run folders.

Seeds pair the TensorFlow arms (the same seed: the same initial weights and batches); the peer's seeds are its own.

  python -m experiments.he2016_matched --seeds 2 --cifar10_dir ../shared/datasets/cifar10 \\
      --results_dir experiments/results/he2016_matched
"""

import json
import os
import sys

from dataclasses import replace

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fileio
import run_folder
from experiments import common, peer, plots, stats
from experiments.he2016 import PRECISION, RECIPE  # noqa: F401  (He's precision is this experiment's too)

TITLE = "He et al. 2016a, matched short runs"
PAPER = ('K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, Section 4.2, '
         "with the schedule compressed to 8,000 steps: the data or the code?")
# mode -> (steps, report every, batch)
SCHEDULE = {"full": (8000, 500, 128), "quick": (1000, 250, 128), "tiny": (4, 2, 8)}
BASELINE = replace(RECIPE, weight_decay_scope="kernels", model_options={"shortcut": "A", "conv_padding": "same"})
ARMS = {  # name -> (label, what differs from ours, settings)
    "ours": ("ours as it was", "", BASELINE),
    "decay_all": ("decay on every parameter", "--weight_decay_scope all", replace(BASELINE, weight_decay_scope="all")),
    "symmetric": ("symmetric stride-2 padding", "--conv_padding symmetric",
                  replace(BASELINE, model_options={"shortcut": "A", "conv_padding": "symmetric"})),
    "bfloat16": ("bfloat16", "--mixed_precision bfloat16", replace(BASELINE, mixed_precision="bfloat16")),
}
PEER, PEER_LABEL = "peer", "PyTorch peer, same recipe"
PEER_MATCH = "symmetric"  # the TensorFlow arm with the peer's settings: PyTorch pads every side, decay on kernels
TEST_IMAGES = 10000


def runs(mode, args=None):
    steps, report, batch = SCHEDULE[mode]
    return [common.Run(name, label, replace(config, train_steps=steps, report_freq=report, batch_size=batch))
            for name, (label, _, config) in ARMS.items()]


def peer_command(mode, seed, results_dir, data_dir="DATA"):
    """The command that trains the peer's seed into this experiment's folder (in the peer's virtual environment)."""
    steps, report, batch = SCHEDULE[mode]
    return peer.command(os.path.join(results_dir, PEER, f"seed{seed}"), steps, report, batch, seed, data_dir)


def notes(mode):
    steps, report, batch = SCHEDULE[mode]
    return [
        f"Schedule: {steps:,} steps x {batch}, learning rate 0.1 divided by 10 at 50% and 75% of them, a test "
        f"evaluation every {report} steps; everything else He et al. Section 4.2 as experiments/he2016.py runs it "
        "(option A, pad 4 with the mean colour + crop + flip, SGD 0.9, weight decay 1e-4, all 50,000 training "
        "images, the last model tested on the 10,000 test images). Not the paper's 64k steps: no row has a paper "
        "value; He's 8.75% is for 64k.",
        "The TensorFlow arms differ from `ours` in the one setting their row names; a seed gives them the same "
        "initial weights and batches, so their differences are paired by seed.",
        "The peer (benchmarks/pytorch_peer_train.py) shares the data files, the normalisation statistics (equal to "
        "the engine's: the same arithmetic), the mean-colour padding, crops, flips, schedule, optimizer and "
        "kernel-only decay; its stride-2 convolutions pad every side (PyTorch's own), so its TensorFlow "
        "counterpart is the `symmetric` arm, and its difference is given against both. It differs in PyTorch's "
        "kernels and random streams and in akamaster's initialisers (kaiming-normal kernels, uniform dense bias; "
        "ours: truncated He-normal, zero bias). Its seeds are not paired with ours: its differences are judged "
        "unpaired. Train it in its own virtual environment, one command per seed: "
        + "; ".join(f"`{peer_command(mode, seed, 'experiments/results/he2016_matched')}`" for seed in (0, 1)),
        "CIFAR-10 here is the JPEG-q75-derived copy (../shared/datasets/README.md), for every arm alike.",
    ] + ([] if mode == "full" else [f"REDUCED ({mode}): {steps} steps instead of 8,000: a check of the path."])


def report_rows(metrics, mode, args):
    steps = SCHEDULE[mode][0]
    names = [*ARMS, PEER]
    labels = {**{name: label for name, (label, _, _) in ARMS.items()}, PEER: PEER_LABEL}
    flags = {**{name: flag for name, (_, flag, _) in ARMS.items()}, PEER: "PyTorch (see notes)"}
    rows = []
    for name in names:
        for column, what in (("val_error", "test error"), ("val_loss", "test loss")):
            rows.append({"quantity": f"{labels[name]}: {what} at step {steps:,}", "paper": None, "runs": [name],
                         "ours": stats.last(metrics, name, column), "schedule": _schedule(mode),
                         "settings": flags[name], **({"test_images": TEST_IMAGES} if column == "val_error" else {})})
    pairs = [(name, "ours") for name in names[1:]] + [(PEER, PEER_MATCH)]
    for name, against in pairs:
        other, base = stats.last(metrics, name, "val_error"), stats.last(metrics, against, "val_error")
        if name == PEER:
            difference, said = peer.unpaired(other, base, TEST_IMAGES)
        else:
            difference = stats.paired(other, base)
            said = stats.verdict(difference, TEST_IMAGES)
        rows.append({"quantity": f"{labels[name]} minus {labels[against]}: test error", "paper": None,
                     "runs": [name, against], "ours": difference, "schedule": _schedule(mode),
                     "settings": f"{flags[name]}; {said}"})
    for name in ARMS:  # what decay on every parameter restrains: the batch-norm scales (He's 64k run: up to 3.4)
        seeds = sorted(metrics.loc[metrics["run"] == name, "seed"].unique()) if args else []
        scales = [s for s in (bn_scales(os.path.join(args.results_dir, f"{name}/seed{seed}")) for seed in seeds) if s]
        largest = f"largest {max(s['max_abs'] for s in scales):.2f}; " if scales else ""
        rows.append({"quantity": f"{labels[name]}: batch-norm scale, mean absolute gamma over every layer of the "
                                 "last model",
                     "paper": None, "runs": [name], "ours": [s["mean_abs"] for s in scales], "format": "{:.3f}",
                     "settings": f"{largest}cached in each seed's {BN_SCALES}"})
    return rows


BN_SCALES = "batch_norm_scales.json"  # in a run folder: its last model's batch-norm scales, summarised


def bn_scales(run_dir):
    """The mean and largest |gamma| of the batch-norm layers of a run's last model, cached in the run folder (the
    committed results keep no model), or None where neither the cache nor the model is there."""
    path = os.path.join(run_dir, BN_SCALES)
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)
    model_path = os.path.join(run_dir, run_folder.LATEST_MODEL)
    if not os.path.exists(model_path):
        return None
    import cifar10_test
    import numpy as np

    model = cifar10_test.load_model(model_path)
    gammas = np.abs(np.concatenate([layer.gamma.numpy().ravel() for layer in model.layers if hasattr(layer, "gamma")]))
    result = {"mean_abs": float(gammas.mean()), "max_abs": float(gammas.max()), "model": run_folder.LATEST_MODEL}
    fileio.write_json(path, result)
    return result


def _schedule(mode):
    steps, _, batch = SCHEDULE[mode]
    return f"{steps:,} steps x {batch} ({steps * batch / 50000:.0f} epochs), lr 0.1, /10 at 50% and 75%"


def figures(metrics, out_dir, mode, args):
    plt = plots.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in [*ARMS, PEER]:
        label = ARMS[name][0] if name in ARMS else PEER_LABEL
        plots.plot_mean(axes[0], metrics, name, "val_error", label=label)
        plots.plot_mean(axes[1], metrics, name, "val_loss", label=label)
    axes[0].set_ylim(0.05, 0.45)
    plots.label_axis(axes[0], "step", "test error", f"He's recipe at {SCHEDULE[mode][0]:,} steps: test error")
    plots.label_axis(axes[1], "step", "test loss", "test loss")
    return [plots.save_figure(figure, os.path.join(out_dir, "matched_runs.png"))]


def main(argv=None):
    return common.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
