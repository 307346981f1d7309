"""Liang 2020, "Image classification based on RESNET": ResNet-20 with ImageDataGenerator on CIFAR-10.

Reproduces:
- Figs. 6-7: training and validation error, and accuracy, against steps, for ResNet-20 in the
  paper's variant;
- the numbers at step 0 (train error 0.898438, validation error 0.912, validation loss 2.3543) and at
  step 9775 (0.117188, 0.1280, 0.348188);
- Fig. 5: the augmentation grid;
- the depth sweep 20/32/44/56/110 (the paper: 110 best) as test error against depth, beside
  He et al.'s Table 6;
- Inception-ResNet-v1 (small-input variant) trained the same way, for comparison.

Settings, and where each comes from. Liang's text describes the code of wenxinxu/resnet-in-tensorflow
(its ``train()``, ``FLAGS.train_steps``, ``report_freq``, ``test()`` returning softmax probabilities,
its file names). Where the text says something, the text wins; where it is silent, that code's
defaults (``hyper_parameters.py``, ``cifar10_train.py``) fill in:
- block: BN-ReLU-conv twice, then the add (text, Fig. 2: ``--preactivation``); stride-2 shortcut: 2x2
  average pooling, then zero channels (text: "average pooling ... filling layer"; code:
  ``avg_pool`` + ``tf.pad``): ``--shortcut A_avgpool``.
- augmentation: Keras ImageDataGenerator (text; the code pads 2 pixels, crops and flips instead),
  width/height shift 0.1 + horizontal flip (our choice: the text gives no parameters).
- normalisation: each image standardised on its own (code: ``whitening_image``; text silent):
  ``--augment liang``.
- batch 128, SGD momentum 0.9, learning rate 0.1 divided by 10 at steps 40k and 60k of 80k, weight
  decay 2e-4 on an ``l2_loss`` (gradient 2e-4 * w) (code; text silent). Up to step 9775 the rate is
  a constant 0.1, so a run stopped there follows the 80k schedule exactly
  (``--lr_schedule_steps 80000``).
- a report every 391 steps (one epoch of 128) and one at step 0, before training (code: it
  validates "once before training"); 9775 = 25 x 391 is a report step.
- validation on the full 10,000-image test set (code: ``is_full_validation`` True), with the suite's
  batch-norm moving averages; his code has none (``tf.nn.moments`` of the current batch, in batches of
  ``validation_batch_size`` 250), so the report also re-validates the step-9775 model his way
  (``his_validation``).
- train error: the code prints the error of the current batch of 128 (its sampling error is about
  2.8 points at 12% error); we report that (``train_batch_error``, the last batch before the report)
  beside the mean over the report window (``train_error``).

  python -m experiments.liang2020 --cifar10_dir ../shared/datasets/cifar10            # full: GPU-sized
  python -m experiments.liang2020 --quick --cifar10_dir ../shared/datasets/cifar10    # 2-core CPU
  python -m experiments.liang2020 --only resnet20_liang --main_steps 9775 --seeds 3 --cifar10_dir ...
"""

import json
import os
import sys

from dataclasses import replace

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import common, plots, stats
from run_config import RunConfig

TITLE = "Liang 2020"
PAPER = 'J. Liang, "Image classification based on RESNET", J. Phys.: Conf. Ser. 1634 012110 (2020)'

PRECISION = "bfloat16"  # every run (the three seeds of 2026-11-24 were too); --mixed_precision off where it is emulated
PAPER_STEP = 9775
PAPER_AT_STEP = {0: {"train_batch_error": 0.898438, "val_error": 0.912, "val_loss": 2.3543},  # Section 6
                 PAPER_STEP: {"train_batch_error": 0.117188, "val_error": 0.1280, "val_loss": 0.348188}}
BATCH = 128
PAPER_BEST_DEPTH = 110
HE_TABLE6_ERROR = {20: 0.0875, 32: 0.0751, 44: 0.0717, 56: 0.0697, 110: 0.0643}  # He et al. 2016a, Table 6
DEPTHS = (20, 32, 44, 56, 110)
SCHEDULE_STEPS = 80000  # wenxinxu's train_steps; decays at 40k and 60k
LIANG = RunConfig(model="resnet20", model_options={"preactivation": True, "shortcut": "A_avgpool"}, augment="liang",
                  batch_size=BATCH, optimizer="sgd", learning_rate=0.1, momentum=0.9, lr_decay_at=(0.5, 0.75),
                  lr_schedule_steps=SCHEDULE_STEPS, weight_decay=2e-4, validation_split=0.0, report_freq=391,
                  report_at_start=True, mixed_precision=PRECISION)

# mode -> (main steps, sweep steps, Inception-ResNet steps, report every, Inception-ResNet batch)
SCHEDULE = {
    "full": (SCHEDULE_STEPS, SCHEDULE_STEPS, SCHEDULE_STEPS, 391, BATCH),
    "quick": (5 * 391, 300, 120, 391, 32),
    "tiny": (4, 2, 2, 2, 8),
}


def add_arguments(parser):
    parser.add_argument("--main_steps", type=int, default=None,
                        help="steps of the main ResNet-20 run (default: the mode's; 9775 stops at Liang's figure, on "
                             "the same 80k schedule)")


def _main_steps(mode, args):
    return getattr(args, "main_steps", None) or SCHEDULE[mode][0]


def runs(mode, args=None):
    _, sweep_steps, inception_steps, report, inception_batch = SCHEDULE[mode]
    main_steps = _main_steps(mode, args)
    batch = 8 if mode == "tiny" else BATCH
    base = replace(LIANG, batch_size=batch, report_freq=min(report, main_steps),
                   lr_schedule_steps=SCHEDULE_STEPS if mode != "tiny" else None)
    result = [common.Run("resnet20_liang", "ResNet-20 (Liang's variant)", replace(base, train_steps=main_steps),
                         group="figs6-7")]
    for depth in DEPTHS:
        if sweep_run(depth, mode, args) == "resnet20_liang":
            continue  # the full mode's depth-20 point is the main run itself
        result.append(common.Run(sweep_run(depth, mode, args), f"ResNet-{depth}", replace(
            base, model=f"resnet{depth}", train_steps=sweep_steps, report_freq=min(report, sweep_steps),
            lr_schedule_steps=None, report_at_start=False), group="depth"))
    result.append(common.Run(
        "inception_resnet_v1_small", "Inception-ResNet-v1 (32x32)",
        RunConfig(model="inception_resnet_v1_small", augment="liang", validation_split=0.0, weight_decay=2e-4,
                  mixed_precision=PRECISION,
                  batch_size=inception_batch, train_steps=inception_steps,
                  # Validating this model on 10,000 images costs a minute on a CPU: the quick mode does it twice.
                  report_freq=inception_steps // 2 if mode == "quick" else min(report, inception_steps)),
        group="inception"))
    return result


def sweep_run(depth, mode, args=None):
    """The run that gives the sweep's point at ``depth``: depth 20 is the main run when it has the sweep's steps
    (the full mode, unless ``--main_steps`` stops it early)."""
    return "resnet20_liang" if depth == 20 and SCHEDULE[mode][1] == _main_steps(mode, args) else f"depth{depth}"


def notes(mode):
    main_steps, sweep_steps, inception_steps, report, inception_batch = SCHEDULE[mode]
    result = [
        "Settings: Liang's text where it speaks, wenxinxu/resnet-in-tensorflow's defaults where it is silent; every "
        "choice and its source is in the module docstring (experiments/liang2020.py). `--main_steps N` stops the "
        "main run at step N of the same 80k schedule (9775: the end of Liang's figures; the report's command and the "
        "runs' own commands below show it); the depth sweep's ResNet-20 is then a run of its own.",
        f"Train error: Liang's 0.898438 and 0.117188 are errors of one batch of {BATCH} (multiples of 1/{BATCH}; "
        f"sampling error about {_batch_se(PAPER_AT_STEP[PAPER_STEP]['train_batch_error']):.3f} at 0.117). Ours: "
        f"`train_batch_error` is the last batch before the report, `train_error` the mean over the report window. "
        f"At step 0 we have no training batch yet (the report comes before the first update).",
        "Validation is on the 10,000 test images, as his code's full validation. His batch norm always normalises "
        "with the current batch's own statistics, in validation too (tf.nn.moments in batches of 250; it keeps no "
        "moving averages), so its step-0 validation loss is near ln 10 = 2.30, while ours validates with moving "
        "averages, which before training are the initial 0 and 1 (a far larger step-0 loss). At step 9775 the "
        "report gives both: the run's own validation (moving averages) and its last model re-validated his way "
        "(rows 'batch norm on each batch of 250'; with --main_steps 9775 the last model is the step-9775 one). "
        "Other known differences from that code, not changed: its stem is conv-BN-ReLU and its first block's "
        "first conv has no BN-ReLU before it; Xavier initialisation (ours He normal); BN epsilon 1e-3 (ours "
        "1e-5); zero channels split before and after.",
        common.CIFAR10_DATA_NOTE,
        "Depth sweep: He et al.'s Table 6 trained v1 blocks with option A (subsampling), flips and crops for 64k "
        "steps; ours are Liang's variant on his schedule.",
        "Inception-ResNet-v1 small: stride-1 stem for 32x32 inputs, 1/2/1 A/B/C blocks (not 5/10/5), same recipe.",
    ]
    if mode != "full":
        result.append(f"REDUCED ({mode}): main run {main_steps} steps of the 80k schedule (unless --main_steps), "
                      f"depth sweep {sweep_steps} steps per depth with decays at 50%/75% of them, Inception-ResNet "
                      f"{inception_steps} steps at batch {inception_batch}. The sweep shows early training, not the "
                      f"paper's end point: compare the spread across depths with the differences.")
    return result


def _batch_se(error, batch=BATCH):
    """Binomial standard error of an error rate measured on one batch."""
    return (error * (1 - error) / batch) ** 0.5


def _final_errors(metrics, mode, args):
    return {d: stats.last(metrics, sweep_run(d, mode, args), "val_error") for d in DEPTHS}


def _step_rows(metrics, step):
    main = "resnet20_liang"
    reached = step in set(metrics[metrics["run"] == main]["step"])
    where = "" if reached else "our run has no report at this step; "
    paper = PAPER_AT_STEP[step]
    columns = (("train error, one batch", "train_batch_error",
                f"paper's own sampling error +-{_batch_se(paper['train_batch_error']):.3f}"),
               ("train error, report-window mean", "train_error",
                "ours only: the mean of the steps since the last report (paper column: his one batch)"),
               ("validation error", "val_error", "full test set, batch-norm moving averages (his code: "
                                                 "each batch's statistics, rows below); JPEG CIFAR-10"),
               ("validation loss", "val_loss", "cross-entropy only"))
    rows = []
    for name, column, note in columns:
        key = column if column in paper else "train_batch_error"
        values = stats.at_step(metrics, main, column, step) if reached else []
        rows.append({"quantity": f"ResNet-20 {name} at step {step}", "paper": paper[key], "ours": values,
                     "comparable": column != "train_error", "format": "{:.6f}" if "train" in column else "{:.4f}",
                     "schedule": f"step {step:,} of the 80k-step schedule (lr 0.1 to 40k) x {BATCH}",
                     "settings": where + note})
    return rows


HIS_VALIDATION = "validation_batch_statistics.json"  # in a main run's folder: its last model validated his way


def his_validation(run_dir, data_dir=None):
    """The run's last model validated as his code validates: every batch norm on each test batch of 250's own
    statistics (his ``batch_normalization_layer`` keeps no moving averages). Cached in the run folder."""
    import cifar10_input
    import cifar10_test
    import fileio
    import pandas as pd
    import run_folder

    path = os.path.join(run_dir, HIS_VALIDATION)
    step = int(pd.read_csv(os.path.join(run_dir, run_folder.METRICS))["step"].iloc[-1])
    if os.path.exists(path):
        with open(path) as handle:
            cached = json.load(handle)
        if cached.get("step") == step:
            return cached
    model_path, _, config, info = cifar10_test.resolve_checkpoint(run_dir)
    data = cifar10_input.load_cifar10(data_dir or config.data_dir, download=False)
    result = cifar10_test.evaluate_with_batch_statistics(cifar10_test.load_model(model_path), data["x_test"],
                                                         data["y_test"], config.augment, info.norm)
    result.update(step=step, model_file=os.path.basename(model_path))
    fileio.write_text(path, json.dumps(result, indent=2) + "\n")
    return result


def _his_validation_rows(metrics, args):
    """Step 9775 validated his way, for each seed whose last model is the step-9775 one (``--main_steps 9775``)."""
    main = "resnet20_liang"
    rows = metrics[metrics["run"] == main]
    seeds = [seed for seed, steps in rows.groupby("seed")["step"] if steps.max() == PAPER_STEP]
    results = [his_validation(os.path.join(args.results_dir, f"{main}/seed{seed}"), args.cifar10_dir)
               for seed in seeds]
    where = "" if results else "only with --main_steps 9775 (the run's last model must be the step-9775 one); "
    return [{"quantity": f"ResNet-20 {name} at step {PAPER_STEP}, batch norm on each batch of 250 (his code's "
                         f"validation)", "paper": PAPER_AT_STEP[PAPER_STEP][column],
             "ours": [result[key] for result in results], "format": "{:.4f}",
             "schedule": f"step {PAPER_STEP:,} of the 80k-step schedule (lr 0.1 to 40k) x {BATCH}",
             "settings": where + f"the last model, re-validated: {HIS_VALIDATION} in each seed's folder"}
            for name, column, key in (("validation error", "val_error", "error"),
                                      ("validation loss", "val_loss", "loss"))]


def report_rows(metrics, mode, args):
    rows = _step_rows(metrics, 0) + _step_rows(metrics, PAPER_STEP) + _his_validation_rows(metrics, args)
    errors = _final_errors(metrics, mode, args)
    sweep_note = "He et al.: 64k steps, v1 blocks, flip+crop"
    sweep_note += "" if mode == "full" else f"; ours: {SCHEDULE[mode][1]} steps"
    for depth in DEPTHS:
        rows.append({"quantity": f"ResNet-{depth} test error (paper column: He et al. Table 6)", "comparable": False,
                     "paper": HE_TABLE6_ERROR[depth], "ours": errors[depth], "test_images": 10000,
                     "settings": sweep_note})
    means = {d: stats.summary(e)[0] for d, e in errors.items() if stats.summary(e)[2]}
    rows.append({"quantity": "depth with the lowest mean test error", "paper": PAPER_BEST_DEPTH, "comparable": False,
                 "ours": min(means, key=means.get) if means else None, "format": "{:.0f}",
                 "settings": sweep_note})
    rows.append({"quantity": "spread of mean test error across depths, max - min (paper column: He et al.)",
                 "paper": max(HE_TABLE6_ERROR.values()) - min(HE_TABLE6_ERROR.values()), "comparable": False,
                 "ours": max(means.values()) - min(means.values()) if means else None, "settings": sweep_note})
    rows.append({"quantity": "Inception-ResNet-v1 (small) final test error", "paper": None,
                 "ours": stats.last(metrics, "inception_resnet_v1_small", "val_error"),
                 "settings": "the paper shows the blocks, gives no number"})
    return rows


def figures(metrics, out_dir, mode, args):
    plt = plots.pyplot()
    paths = []
    for column, name, title in (("error", "fig6_error.png", "Fig. 6: error"),
                                ("accuracy", "fig7_accuracy.png", "Fig. 7: accuracy")):
        figure, axis = plt.subplots(figsize=(6.4, 4.2))
        plots.plot_mean(axis, metrics, "resnet20_liang", f"train_{column}",
                        label=f"train {column} (report-window mean)")
        plots.plot_mean(axis, metrics, "resnet20_liang", f"val_{column}", label=f"validation {column} (test set)")
        if column == "error":
            plots.plot_mean(axis, metrics, "resnet20_liang", "train_batch_error", label="train error (one batch)",
                            linestyle="", marker=".", markersize=4)
            steps = sorted(PAPER_AT_STEP)
            axis.scatter(steps + steps, [PAPER_AT_STEP[s]["train_batch_error"] for s in steps]
                         + [PAPER_AT_STEP[s]["val_error"] for s in steps],
                         marker="x", color="black", zorder=3, label="Liang 2020 (steps 0 and 9775)")
        plots.label_axis(axis, "step", column,
                         f"Liang 2020, {title}\nResNet-20 (pre-activation, A_avgpool), ImageDataGenerator ({mode})")
        paths.append(plots.save_figure(figure, os.path.join(out_dir, name)))

    by_depth = {d: stats.summary(e) for d, e in _final_errors(metrics, mode, args).items()}
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    plots.plot_summaries(axis, DEPTHS, [by_depth[d] for d in DEPTHS], fmt="o-",
                         label=f"ours, Liang's variant ({mode})")
    axis.plot(DEPTHS, [HE_TABLE6_ERROR[d] for d in DEPTHS], "s--", label="He et al. 2016a, Table 6 (64k steps)")
    axis.set_xscale("log")
    axis.xaxis.set_minor_locator(plt.NullLocator())  # no minor tick labels over the depths
    axis.set_xticks(DEPTHS, [str(d) for d in DEPTHS])
    plots.label_axis(axis, "depth (layers)", "test error", "Liang 2020, depth sweep: test error against depth")
    paths.append(plots.save_figure(figure, os.path.join(out_dir, "depth_sweep.png")))

    # Epochs on a log axis, every report marked: the quick mode's Inception-ResNet sees a tenth of an epoch (it
    # trains at ~25 images/s here), which a linear axis drew as an invisible sliver beside ResNet-20's five epochs.
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    trained = metrics[metrics["epoch"] > 0]
    for run, label in (("resnet20_liang", "ResNet-20"), ("inception_resnet_v1_small", "Inception-ResNet-v1 (small)")):
        plots.plot_mean(axis, trained, run, "val_error", x="epoch", label=f"{label}: test error", marker="o",
                        markersize=3)
        plots.plot_mean(axis, trained, run, "train_error", x="epoch", label=f"{label}: train error", linestyle=":",
                        marker="o", markersize=3)
    axis.set_xscale("log")
    plots.label_axis(axis, "epoch (log scale; step 0 not shown)", "error",
                     f"Liang 2020: ResNet-20 vs Inception-ResNet-v1\nsame augmentation ({mode})")
    paths.append(plots.save_figure(figure, os.path.join(out_dir, "inception_vs_resnet.png")))
    return paths + augmentation_figure(out_dir, args.cifar10_dir)


def augmentation_figure(out_dir, cifar10_dir):
    """Fig. 5 through the suite's own preview (``--mode augment_preview``): originals, then ImageDataGenerator
    versions."""
    import api

    return [api.augment_preview(RunConfig(augment="liang", data_dir=cifar10_dir),
                                output=os.path.join(out_dir, "fig5_augmentation.png"))]


def main(argv=None):
    return common.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
