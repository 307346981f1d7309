"""Liang 2020, "Image classification based on RESNET": ResNet-20 v1 with ImageDataGenerator on CIFAR-10.

Reproduces:
- Figs. 6-7: training and validation error, and accuracy, against steps, for ResNet-20 in the
  paper's variant (pre-activation BN-ReLU-conv blocks, option A shortcuts as his code has them: 2x2
  average pooling and zero-padded channels, ``--shortcut A_avgpool``), trained with Keras' ImageDataGenerator (shift 0.1 + horizontal flip);
- the numbers at step 9775 (train error 0.117188, validation error 0.1280, validation loss 0.348188);
- Fig. 5: the augmentation grid;
- the depth sweep 20/32/44/56/110 (the paper: 110 best) as test error against depth, beside
  He et al.'s Table 6;
- Inception-ResNet-v1 (small-input variant) trained the same way, for comparison.

The paper gives no optimiser or schedule: we use He et al.'s (SGD momentum 0.9, lr 0.1 divided
by 10 at 32k and 48k of 64k steps, batch 128, weight decay 1e-4). Validation is on the test set.
9775 = 25 x 391: Liang validated once per epoch of 391 batches of 128, so the full mode reports
every 391 steps and step 9775 is a report step.

  python -m experiments.liang2020 --cifar10_dir ../shared/datasets/cifar10            # full: GPU-sized
  python -m experiments.liang2020 --quick --cifar10_dir ../shared/datasets/cifar10    # 2-core CPU
"""

import os
import sys

from dataclasses import replace

from experiments import common
from run_config import RunConfig

TITLE = "Liang 2020"
PAPER = 'J. Liang, "Image classification based on RESNET", J. Phys.: Conf. Ser. 1634 012110 (2020)'

PAPER_STEP = 9775
PAPER_AT_STEP = {"train_error": 0.117188, "val_error": 0.1280, "val_loss": 0.348188}  # Section 6
PAPER_BEST_DEPTH = 110
HE_TABLE6_ERROR = {20: 0.0875, 32: 0.0751, 44: 0.0717, 56: 0.0697, 110: 0.0643}  # He et al. 2016a, Table 6
DEPTHS = (20, 32, 44, 56, 110)
LIANG_VARIANT = RunConfig(model_options={"preactivation": True, "shortcut": "A_avgpool"}, augment="imagedatagenerator",
                          validation_split=0.0)

# mode -> (main steps, sweep steps, Inception-ResNet steps, report every, Inception-ResNet batch)
SCHEDULE = {
    "full": (64000, 64000, 64000, 391, 128),
    "quick": (2000, 300, 120, 100, 32),
    "tiny": (4, 2, 2, 2, 8),
}


def runs(mode, args=None):
    main_steps, sweep_steps, inception_steps, report, inception_batch = SCHEDULE[mode]
    base = replace(LIANG_VARIANT, batch_size=8 if mode == "tiny" else 128)
    result = [common.Run("resnet20_liang", "ResNet-20 (Liang's variant)",
                         replace(base, train_steps=main_steps, report_freq=report), group="figs6-7")]
    for depth in DEPTHS:
        if sweep_run(depth, mode) == "resnet20_liang":
            continue  # the full mode's depth-20 point is the main run itself
        result.append(common.Run(sweep_run(depth, mode), f"ResNet-{depth}", replace(
            base, model=f"resnet{depth}", train_steps=sweep_steps, report_freq=min(report, sweep_steps)), group="depth"))
    result.append(common.Run(
        "inception_resnet_v1_small", "Inception-ResNet-v1 (32x32)",
        RunConfig(model="inception_resnet_v1_small", augment="imagedatagenerator", validation_split=0.0,
                  batch_size=inception_batch, train_steps=inception_steps,
                  # Validating this model on 10,000 images costs a minute on a CPU: the quick mode does it twice.
                  report_freq=inception_steps // 2 if mode == "quick" else min(report, inception_steps)),
        group="inception"))
    return result


def sweep_run(depth, mode):
    """The run that gives the sweep's point at ``depth``: in the full mode depth 20 is the main run."""
    main_steps, sweep_steps = SCHEDULE[mode][:2]
    return "resnet20_liang" if depth == 20 and sweep_steps == main_steps else f"depth{depth}"


def notes(mode):
    main_steps, sweep_steps, inception_steps, report, inception_batch = SCHEDULE[mode]
    result = [
        "Optimiser and schedule are He et al.'s (the paper gives none): SGD momentum 0.9, lr 0.1 / 10 at 50% and 75% "
        "of the steps, weight decay 1e-4, batch 128.",
        "Our train error at a report is the average over the steps since the previous report (with augmentation); "
        "Liang's 0.898438 and 0.117188 are multiples of 1/128, the error of a single batch.",
        "Validation is on the 10,000 test images (Liang's curves are labelled validation; his code's source is not given).",
        "CIFAR-10 here is the JPEG-derived copy (../shared/datasets/README.md): numbers are not directly comparable.",
        "Inception-ResNet-v1 small: stride-1 stem for 32x32 inputs, 1/2/1 A/B/C blocks (not 5/10/5), same augmentation.",
    ]
    if mode != "full":
        result.append(f"REDUCED ({mode}): main run {main_steps} steps (paper's numbers at step {PAPER_STEP}; we compare "
                      f"at our last step), depth sweep {sweep_steps} steps per depth (He et al. train 64k), "
                      f"Inception-ResNet {inception_steps} steps at batch {inception_batch}; the learning-rate decays "
                      f"come at 50%/75% of each run's steps. The sweep shows early training with one seed per "
                      f"depth, not the paper's end point: compare the spread across depths with the differences. "
                      f"Inception-ResNet-v1 (small) trains at about 40 images/s on a 2-core CPU (benchmarks/README.md): "
                      f"its {inception_steps} steps of {inception_batch} images check the path and are no comparison.")
    return result


def _final_errors(metrics, mode):
    return {d: common.last(metrics, sweep_run(d, mode), "val_error") for d in DEPTHS}


def report_rows(metrics, mode, args):
    main = "resnet20_liang"
    steps = metrics[metrics["run"] == main]["step"]
    compared_step = PAPER_STEP if PAPER_STEP in set(steps) else (int(steps.iloc[-1]) if len(steps) else PAPER_STEP)
    where = "" if compared_step == PAPER_STEP else f"ours at step {compared_step} ({mode}), not {PAPER_STEP}; "
    rows = [
        {"quantity": f"ResNet-20 train error at step {PAPER_STEP}", "paper": PAPER_AT_STEP["train_error"],
         "ours": common.at_step(metrics, main, "train_error", compared_step),
         "settings": where + "ours: mean over the report window, paper: one batch"},
        {"quantity": f"ResNet-20 validation error at step {PAPER_STEP}", "paper": PAPER_AT_STEP["val_error"],
         "ours": common.at_step(metrics, main, "val_error", compared_step), "settings": where + "test set; JPEG CIFAR-10"},
        {"quantity": f"ResNet-20 validation loss at step {PAPER_STEP}", "paper": PAPER_AT_STEP["val_loss"],
         "ours": common.at_step(metrics, main, "val_loss", compared_step), "settings": where + "cross-entropy only"},
    ]
    errors = _final_errors(metrics, mode)
    sweep_note = "He et al.: 64k steps, v1 blocks, flip+crop" + ("" if mode == "full" else f"; ours: {SCHEDULE[mode][1]} steps")
    for depth in DEPTHS:
        rows.append({"quantity": f"ResNet-{depth} test error (paper column: He et al. Table 6)",
                     "paper": HE_TABLE6_ERROR[depth], "ours": errors[depth], "settings": sweep_note})
    measured = {d: e for d, e in errors.items() if e == e}
    rows.append({"quantity": "depth with the lowest test error", "paper": PAPER_BEST_DEPTH,
                 "ours": min(measured, key=measured.get) if measured else None, "format": "{:.0f}",
                 "settings": sweep_note + "; one seed per depth"})
    rows.append({"quantity": "spread of test error across depths, max - min (paper column: He et al.)",
                 "paper": max(HE_TABLE6_ERROR.values()) - min(HE_TABLE6_ERROR.values()),
                 "ours": max(measured.values()) - min(measured.values()) if measured else None,
                 "settings": sweep_note})
    rows.append({"quantity": "Inception-ResNet-v1 (small) final test error", "paper": None,
                 "ours": common.last(metrics, "inception_resnet_v1_small", "val_error"),
                 "settings": "the paper shows the blocks, gives no number"})
    return rows


def figures(metrics, out_dir, mode, args):
    plt = common.pyplot()
    paths = []
    main = metrics[metrics["run"] == "resnet20_liang"]
    for column, name, title in (("error", "fig6_error.png", "Fig. 6: error"),
                                ("accuracy", "fig7_accuracy.png", "Fig. 7: accuracy")):
        figure, axis = plt.subplots(figsize=(6.4, 4.2))
        axis.plot(main["step"], main[f"train_{column}"], label=f"train {column} (ours, report-window mean)")
        axis.plot(main["step"], main[f"val_{column}"], label=f"validation {column} (ours, test set)")
        if column == "error":
            axis.scatter([PAPER_STEP, PAPER_STEP], [PAPER_AT_STEP["train_error"], PAPER_AT_STEP["val_error"]],
                         marker="x", color="black", zorder=3, label=f"Liang 2020 at step {PAPER_STEP}")
        common.label_axis(axis, "step", column,
                          f"Liang 2020, {title}\nResNet-20 (pre-activation, option A), ImageDataGenerator ({mode})")
        paths.append(common.save_figure(figure, os.path.join(out_dir, name)))

    errors = _final_errors(metrics, mode)
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    axis.plot(DEPTHS, [errors[d] for d in DEPTHS], "o-", label=f"ours, Liang's variant ({mode})")
    axis.plot(DEPTHS, [HE_TABLE6_ERROR[d] for d in DEPTHS], "s--", label="He et al. 2016a, Table 6 (64k steps)")
    axis.set_xscale("log")
    axis.set_xticks(DEPTHS, [str(d) for d in DEPTHS])
    common.label_axis(axis, "depth (layers)", "test error", "Liang 2020, depth sweep: test error against depth")
    paths.append(common.save_figure(figure, os.path.join(out_dir, "depth_sweep.png")))

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for run, label in (("resnet20_liang", "ResNet-20"), ("inception_resnet_v1_small", "Inception-ResNet-v1 (small)")):
        rows = metrics[metrics["run"] == run]
        axis.plot(rows["epoch"], rows["val_error"], label=f"{label}: test error")
        axis.plot(rows["epoch"], rows["train_error"], linestyle=":", label=f"{label}: train error")
    common.label_axis(axis, "epoch", "error", f"Liang 2020: ResNet-20 vs Inception-ResNet-v1\nsame augmentation ({mode})")
    paths.append(common.save_figure(figure, os.path.join(out_dir, "inception_vs_resnet.png")))
    return paths + augmentation_figure(out_dir, args.cifar10_dir)


def augmentation_figure(out_dir, cifar10_dir):
    """Fig. 5 through the CLI's own preview: originals, then ImageDataGenerator versions."""
    import cifar10_main

    path = os.path.join(out_dir, "fig5_augmentation.png")
    argv = ["--mode", "augment_preview", "--augment", "imagedatagenerator", "--output", path]
    cifar10_main.run_augment_preview(cifar10_main.build_parser().parse_args(
        argv + (["--data_dir", cifar10_dir] if cifar10_dir else [])))
    return [path]


def main(argv=None):
    return common.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
