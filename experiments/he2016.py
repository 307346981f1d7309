r"""He et al. 2016a, "Deep Residual Learning for Image Recognition", Section 4.2: CIFAR-10, Table 6 and Fig. 6.

Trains the CIFAR ResNets of Table 6 (ResNet-20, 32, 44, 56 and 110: 8.75, 7.51, 7.17, 6.97 and 6.43% test
error) with the paper's recipe exactly: option A shortcuts (stride-2 subsampling + zero channels), batch
128, SGD momentum 0.9, learning rate 0.1 divided by 10 at 32k and 48k steps (ResNet-110 first warmed up at 0.01
for 400 steps, the model's default), 64k steps, weight decay 1e-4,
4-pixel zero pad + random 32x32 crop + horizontal flip, trained on all 50,000 training images, and the test
error of the last model measured once (``--mode test`` on ``latest.keras``). The curves (He's Fig. 6,
left) show the test error every ``report_freq`` steps, as the paper's figure does; only the last point is
the result; a second figure draws the test error against depth beside Table 6.

Computed in float32 (``--mixed_precision off``), as He et al. did: the result does not depend on
which CPU resumes the run. The five depths at 64k steps are a GPU's work (ResNet-110 alone is 5.5x
ResNet-20's compute); ``--quarter`` trains them at a quarter of the schedule (16k steps, the rate divided
at 8k and 12k) for a CPU, into results/he2016_quarter, labelled as such everywhere.

  python -m experiments.he2016 --cifar10_dir ../shared/datasets/cifar10 --results_dir experiments/results/he2016
  python -m experiments.he2016 --quarter --cifar10_dir ../shared/datasets/cifar10 \
      --results_dir experiments/results/he2016_quarter
"""

import functools
import glob
import os
import sys

from dataclasses import replace

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import common, gather, peer, plots, stats
import run_folder
from run_config import RunConfig

TITLE = "He et al. 2016a"
PAPER = ('K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, '
         "Section 4.2 and Table 6")
PRECISION = "off"  # float32, as He et al.; the matched runs measured bfloat16 0.16 points worse at 8k steps
HE_TABLE6_ERROR = {20: 0.0875, 32: 0.0751, 44: 0.0717, 56: 0.0697, 110: 0.0643}  # Table 6, test error
# mode -> (steps, report every, checkpoint every, batch); quarter: --quarter, a quarter of He's steps for a CPU
SCHEDULE = {"full": (64000, 1000, 500, 128), "quarter": (16000, 500, 500, 128), "quick": (2000, 250, 250, 128),
            "tiny": (4, 2, 2, 8)}
# The depths each mode trains: every row of Table 6 on the paper's schedule or a quarter of it; a quick check has
# time for ResNet-20 only, and the tiny check takes two depths through the depth figure.
DEPTHS = {"full": (20, 32, 44, 56, 110), "quarter": (20, 32, 44, 56, 110), "quick": (20,), "tiny": (20, 32)}
RECIPE = RunConfig(model="resnet20", model_options={"shortcut": "A"}, augment="he", optimizer="sgd", learning_rate=0.1,
                   momentum=0.9, lr_decay_at=(0.5, 0.75), weight_decay=1e-4, validation_split=0.0,
                   mixed_precision=PRECISION)
# The PyTorch peer (benchmarks/pytorch_peer_train.py) on the same data files and recipe: what the data explains of
# the gap to the paper (the peer against the paper) and what our code explains (ours against the peer).
PEER, PEER_LABEL = "peer", "PyTorch peer"


def peer_command(mode, seed, results_dir, data_dir="DATA"):
    """The peer's run of this recipe, one seed, into ``results_dir/peer/seed<seed>`` (its own virtual environment):
    the same weight-decay scope and stride-2 padding as RECIPE."""
    steps, report, _, batch = SCHEDULE[mode]
    flags = (f"--weight_decay_scope {RECIPE.weight_decay_scope} "
             f"--conv_padding {RECIPE.model_options.get('conv_padding', 'same')}")
    return peer.command(os.path.join(results_dir, PEER, f"seed{seed}"), steps, report, batch, seed, data_dir, flags)


def add_arguments(parser):
    parser.add_argument("--quarter", action="store_true",
                        help="a quarter of He's schedule, for a CPU: 16,000 steps x 128 (41 epochs), the rate divided "
                             "by 10 at 8,000 and 12,000, every depth of Table 6 (default results folder "
                             "results/he2016_quarter); its rows say they are not the paper's schedule")


def full_mode(args):
    return "quarter" if args.quarter else "full"


def runs(mode, args=None):
    steps, report, save, batch = SCHEDULE[mode]
    return [common.Run(f"resnet{depth}", f"ResNet-{depth}",
                       replace(RECIPE, model=f"resnet{depth}", train_steps=steps, batch_size=batch, report_freq=report,
                               save_freq=save), group="table6")
            for depth in DEPTHS[mode]]


FULL_COMMAND = "python -m experiments.he2016 --seeds 3 --cifar10_dir DATA --results_dir experiments/results/he2016"
QUARTER_COMMANDS = (
    "python -m experiments.he2016 --quarter --cifar10_dir DATA --results_dir experiments/results/he2016_quarter",
    "python -m experiments.he2016 --quarter --seeds 2 --only resnet20 resnet56 --cifar10_dir DATA "
    "--results_dir experiments/results/he2016_quarter")


def notes(mode):
    steps, _, _, batch = SCHEDULE[mode]
    result = [
        "Recipe: He et al. Section 4.2 as written (see the module docstring); the learning-rate boundaries are 50% and "
        f"75% of the steps, i.e. {steps // 2:,} and {steps * 3 // 4:,} of {steps:,}. ResNet-110 is warmed up as He "
        "did: its first 400 steps at 0.01, then 0.1 (He: until the training error is below 80%, about 400 "
        "iterations; a fixed 400 here, the model's default `--lr_warmup_steps`, the same at a quarter of the "
        "schedule, as the warm-up is about the start).",
        f"Weight decay 1e-4 applies to {_decayed()} (the paper does not say; Caffe/Torch implementations differ).",
        "Test error: the last model on the 10,000 test images, the run's final report (the same number as "
        "`--mode test` on latest.keras, written to test_metrics.json). The curve's earlier points are for the figure.",
        "CIFAR-10 here is a JPEG-q75-derived copy (../shared/datasets/README.md): the pixels differ from the official "
        "ones by 5.7/255 on average, so our error is not directly comparable with the paper's.",
        "The PyTorch peer (benchmarks/pytorch_peer_train.py, akamaster's ResNet-20 and initialisers) trains the same "
        "recipe on the same files in its own virtual environment; its rows split ResNet-20's gap to the paper into "
        "what the data explains and what our code explains. One seed: "
        f"`{peer_command(mode, 0, 'experiments/results/he2016', '../shared/datasets/cifar10')}` "
        "(the same command resumes).",
        f"Commands: the paper's schedule, every depth, three seeds (a GPU's work): `{FULL_COMMAND}`; a quarter of it "
        f"for a CPU, one seed of every depth, then a second of ResNet-20 and 56: `{QUARTER_COMMANDS[0]}`, then "
        f"`{QUARTER_COMMANDS[1]}`. `--plan` prints the hours each needs on the machine it runs on.",
    ]
    if mode == "full":
        result.append("Compute: 64,000 steps x 128 images = 8.19M images per run, and each depth costs about "
                      "(depth - 2) / 18 ResNet-20s (ResNet-110: 6x). ResNet-20's seeds ran in float32 on 2-core "
                      "machines, each across sessions (every session's machine and commit and every seed's wall time "
                      "are under Provenance, each report's speed in timing.csv). The deeper rows are not run on these "
                      "CPUs; their commands are in the table, and results/he2016_quarter has the depth trend at a "
                      "quarter of the schedule.")
        result.append(
            "If ours is more than 1 point of error from the paper's 8.75% (the table says), what differs: the data "
            "(a JPEG-q75 copy with 4:2:0 chroma: fine detail and colour resolution lost in the training and test "
            "images alike; the paper used the official pixels), the seeds, and the implementation; the PyTorch peer's "
            "rows and experiments/results/he2016_matched measure the last two. What was checked, without changing "
            "the recipe: the learning rate in metrics.csv (0.1, 0.01 from step 32k, 0.001 from 48k, to 64k, all "
            "50,000 training images); weight decay as a gradient of 1e-4 * w (tests/test_models.py); He's option-A "
            "shortcut (stride-2 subsampling + zero channels) and 0.27M parameters; pad-4 crop and flip drawn per "
            "image, a new permutation every epoch (tests/test_input.py); the test error is the last model's, in "
            "inference mode, and `--mode test` on latest.keras gives the same number (test_metrics.json).")
    elif mode == "quarter":
        result.append(f"REDUCED (quarter): {steps:,} steps x {batch} ({steps * batch / 50000:.0f} epochs) instead of "
                      "64,000 (164 epochs), the rate divided at 8,000 and 12,000: the depth trend at a quarter of the "
                      "schedule, not the paper's end points, so no row is compared with Table 6 as a reproduction. "
                      "ResNet-20 on the full schedule (results/he2016) says how much the quarter costs.")
    else:
        result.append(f"REDUCED ({mode}): {steps} steps instead of 64,000 (boundaries at 50%/75% of them): a check "
                      f"of the path, not the paper's end point.")
    return result


def _decayed():
    return ("every trainable parameter, batch-norm scales and offsets and the dense bias included"
            if RECIPE.weight_decay_scope == "all" else
            "the conv and dense kernels, not to batch-norm scales and offsets or the dense bias")


def _last_errors(metrics):
    """Each depth of Table 6: its last model's test error, per seed (empty where not run)."""
    return {depth: stats.last(metrics, f"resnet{depth}", "val_error") for depth in DEPTHS["full"]}


def report_rows(metrics, mode, args):
    errors = _last_errors(metrics)
    results_dir = getattr(args, "results_dir", None)
    depth_rows = [_depth_row(errors[depth], mode, depth, results_dir) for depth in DEPTHS["full"]]
    loss = {"quantity": f"{_prefix(mode)}ResNet-20 test loss, last model", "paper": None,
            "ours": stats.last(metrics, "resnet20", "val_loss"), "schedule": _schedule(mode), "runs": ["resnet20"],
            "settings": _budget(mode).rstrip("; ")}
    extra_rows = _quarter_cost_rows(errors[20], args) if mode == "quarter" else _peer_rows(metrics, mode)
    return depth_rows[:1] + [loss] + extra_rows + depth_rows[1:] + _ordering_rows(errors, mode)


def _full_schedule_resnet20(results_dir):
    """(path, last test error per seed) of ResNet-20 on He's full schedule, from the full experiment's metrics.csv
    beside a quarter's results folder (results/he2016): the calibration of what the quarter costs."""
    path = os.path.join(os.path.dirname(os.path.normpath(results_dir)), "he2016", "metrics.csv") if results_dir else ""
    if not os.path.exists(path):
        return path, []
    metrics = run_folder.read_csv(path, numeric=("seed", "step", "val_error"), present=("run",), increasing_step=False)
    return path, stats.last(metrics, "resnet20", "val_error")


def _quarter_cost_rows(quarter, args):
    """What the quarter schedule costs, calibrated on ResNet-20: the quarter's last test error against He's full
    schedule's."""
    path, full = _full_schedule_resnet20(getattr(args, "results_dir", None))
    cost, said = peer.unpaired(quarter, full, 10000)
    return [{"quantity": "Quarter schedule: what it costs ResNet-20, quarter minus He's full schedule, test error",
             "paper": None, "ours": cost, "format": "{:+.4f}", "runs": ["resnet20"],
             "settings": f"{said}; the full schedule's runs: {path or 'results/he2016'}"}]


def _prefix(mode):
    """Quarter-schedule rows are named as such, so that no table or summary takes them for the paper's."""
    return "Quarter schedule: " if mode == "quarter" else ""


def _budget(mode):
    if mode == "full":
        return ""
    if mode == "quarter":
        return "a quarter of He's 64k steps: the trend, not the paper's end point; "
    return f"{mode}: {SCHEDULE[mode][0]} steps, not 64k; "


def _depth_row(errors, mode, depth, results_dir=None):
    """A row of Table 6: the last model's test error per seed, or the command that would train (or continue) it."""
    run = f"resnet{depth}"
    settings = _budget(mode) + "JPEG CIFAR-10"
    if not len(errors):
        quarter = " --quarter" if mode == "quarter" else ""
        command = f"python -m experiments.he2016{quarter} --only {run} --cifar10_dir DATA"
        if depth not in DEPTHS[mode]:
            settings += f"; not trained in {mode} mode"
        elif started := _unfinished_seeds(results_dir, run):
            settings += f"; UNFINISHED ({started}), no result until it finishes; `{command}` continues it"
        else:
            settings += f"; not run here: about {(depth - 2) / 18:.1f}x ResNet-20's hours; `{command}`"
    return {"quantity": f"{_prefix(mode)}ResNet-{depth} ({_params(depth)} parameters) test error, last model "
                        "(Table 6)", "paper": HE_TABLE6_ERROR[depth], "ours": errors, "comparable": mode == "full",
            "test_images": 10000, "schedule": _schedule(mode), "runs": [run], "settings": settings}


def _unfinished_seeds(results_dir, run):
    """'seed0 at step 2,000 of 16,000' for each seed folder of ``run`` begun but not finished; '' for none."""
    folders = sorted(glob.glob(os.path.join(results_dir, run, "seed*"))) if results_dir else []
    return ", ".join(f"{os.path.basename(folder)} {reached}" for folder in folders
                     if (reached := gather.unfinished(folder)) is not None)


def _ordering_rows(errors, mode):
    """Table 6's claim, "the deeper, the better", pair by pair of consecutive depths (unpaired: different nets),
    each judged against the seed spread (or the test set's sampling noise at one seed)."""
    measured = [depth for depth in DEPTHS["full"] if len(errors[depth])]
    rows, deeper_better = [], 0
    for shallow, deep in zip(measured, measured[1:]):
        difference, said = peer.unpaired(errors[deep], errors[shallow], 10000)
        deeper_better += int(difference[0] < 0)
        rows.append({"quantity": f"{_prefix(mode)}ResNet-{deep} minus ResNet-{shallow}, test error",
                     "paper": HE_TABLE6_ERROR[deep] - HE_TABLE6_ERROR[shallow], "paper_format": "{:+.4f}",
                     "ours": difference, "format": "{:+.4f}", "comparable": mode == "full",
                     "runs": [f"resnet{shallow}", f"resnet{deep}"], "settings": said})
    if len(measured) > 1:
        rows.append({"quantity": f"{_prefix(mode)}consecutive depths where the deeper net has the lower test error",
                     "paper": len(measured) - 1, "ours": [deeper_better], "format": "{:.0f}",
                     "comparable": mode == "full", "runs": [f"resnet{depth}" for depth in measured],
                     "settings": f"of {len(measured) - 1} pairs measured (Table 6: every deeper net is better); "
                                 "each pair's row says whether its difference is beyond noise"})
    return rows


def _peer_rows(metrics, mode):
    """The peer beside ours and the paper, and the gap split: the data (peer minus paper) and the code (ours minus
    peer, judged unpaired: the two implementations' seeds are not paired)."""
    full, paper = mode == "full", HE_TABLE6_ERROR[20]
    ours, theirs = stats.last(metrics, "resnet20", "val_error"), stats.last(metrics, PEER, "val_error")
    code, said = peer.unpaired(ours, theirs, 10000)
    peer_mean, _, n = stats.summary(theirs)
    command = f"`{peer_command(mode, 0, 'experiments/results/he2016')}`"
    return [
        {"quantity": "PyTorch peer, same recipe and data: ResNet-20 test error, last model", "paper": paper,
         "ours": theirs, "comparable": full, "test_images": 10000, "schedule": _schedule(mode), "runs": [PEER],
         "settings": "benchmarks/pytorch_peer_train.py" + ("" if n else f"; not run here: {command}")},
        {"quantity": "gap the data explains, with what both implementations do unlike He's: peer minus paper, "
                     "test error", "paper": None, "ours": [peer_mean - paper] if n and full else None, "runs": [PEER],
         "settings": "the peer on the JPEG copy against He's 8.75% on the official data"},
        {"quantity": "gap the code explains: ours minus peer, test error", "paper": None, "ours": code,
         "runs": ["resnet20", PEER], "settings": said},
    ]


def _schedule(mode):
    steps, _, _, batch = SCHEDULE[mode]
    return f"{steps:,} steps x {batch} ({steps * batch / 50000:.0f} epochs), lr 0.1, /10 at 50% and 75%"


@functools.lru_cache(maxsize=None)
def _params(depth):
    """The trainable parameters of He's CIFAR ResNet of this depth, counted from the model (e.g. 0.27M)."""
    import resnet

    model = resnet.build_model(f"resnet{depth}", (32, 32, 3), 10, shortcut="A")
    return f"{resnet.trainable_params(model) / 1e6:.2f}M"


def figures(metrics, out_dir, mode, args):
    plt = plots.pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for index, depth in enumerate(DEPTHS[mode]):
        color = f"C{index}"
        plots.plot_mean(axis, metrics, f"resnet{depth}", "train_error", label=f"ResNet-{depth} train (window mean)",
                        linestyle=":", color=color)
        plots.plot_mean(axis, metrics, f"resnet{depth}", "val_error", label=f"ResNet-{depth} test", color=color)
    if (metrics["run"] == PEER).any():
        plots.plot_mean(axis, metrics, PEER, "val_error", label="ResNet-20 test, PyTorch peer", linestyle="--",
                        color="black")
    axis.axhline(HE_TABLE6_ERROR[20], color="gray", linestyle="--", label="He et al. Table 6, ResNet-20: 8.75%")
    axis.set_ylim(0, 0.5)
    plots.label_axis(axis, "step", "error", f"He et al. Fig. 6 (left): CIFAR ResNets on CIFAR-10 ({mode})",
                     fontsize=7, ncol=2)
    paths = [plots.save_figure(figure, os.path.join(out_dir, "fig6_test_error.png"))]
    full_resnet20 = _full_schedule_resnet20(out_dir)[1] if mode == "quarter" else []
    paths.append(_depth_figure(metrics, out_dir, mode, full_resnet20))
    _test_last_models(out_dir, args)
    return paths


def _depth_figure(metrics, out_dir, mode, full_resnet20):
    """Test error against depth, mean and sd over seeds, beside Table 6: "the deeper, the better". A reduced
    schedule's figure also marks ResNet-20 on He's full schedule (``full_resnet20``, per seed): what it costs."""
    plt = plots.pyplot()
    figure, axis = plt.subplots(figsize=(5.6, 4.0))
    depths = list(HE_TABLE6_ERROR)
    axis.plot(depths, [HE_TABLE6_ERROR[d] for d in depths], "s--", color="gray", label="He et al. Table 6 (64k steps)")
    by_depth = {depth: stats.summary(errors) for depth, errors in _last_errors(metrics).items()}
    seeds = "/".join(str(n) for _, _, n in by_depth.values() if n)
    plots.plot_summaries(axis, list(by_depth), list(by_depth.values()), fmt="o-",
                         label=f"ours, {SCHEDULE[mode][0]:,} steps (mean ± sd; n = {seeds})")
    full = stats.summary(full_resnet20)
    plots.plot_summaries(axis, [20], [full], fmt="D", color="C3",
                         label=f"ours, ResNet-20 at He's 64,000 steps (mean ± sd; n = {full[2]})")
    axis.set_xscale("log")
    axis.set_xticks(depths, [str(d) for d in depths])
    axis.minorticks_off()
    plots.label_axis(axis, "depth (layers)", "test error, last model", f"He et al. Table 6: error by depth ({mode})",
                     fontsize=8)
    return plots.save_figure(figure, os.path.join(out_dir, "table6_depth.png"))


def _test_last_models(out_dir, args):
    """--mode test on each finished seed's last model: test_metrics.json, predictions and TensorBoard's test images.
    A seed whose model went with its checkpoint (a committed result) keeps the test_metrics.json it was tested into;
    an unfinished one (perhaps training now, in another process) is left alone."""
    import api

    for folder in sorted(glob.glob(os.path.join(out_dir, "resnet*", "seed*"))):
        if gather.unfinished(folder) is not None:  # before its first report too: no model yet, but not "not kept"
            print(f"{folder}: UNFINISHED, not tested")
            continue
        if not os.path.exists(os.path.join(folder, run_folder.LATEST_MODEL)):
            print(f"{folder}: no {run_folder.LATEST_MODEL} (its model was not kept): "
                  "its test_metrics.json stays as it was")
            continue
        api.test(folder, data_dir=args.cifar10_dir)


def main(argv=None):
    return common.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
