"""Lu & Song, "Research on image classification based on ResNet": ResNet against LeNet and AlexNet,
on MNIST and on CIFAR-10.

Reproduces Figs. 4 and 6 (training and test accuracy curves, MNIST and CIFAR-10) and Table 1 (the
highest training and test accuracy reached by each model on each dataset). The paper names the
models only: "ResNet" is our CIFAR ResNet-20 (He et al.), LeNet is LeNet-5 (ReLU, max-pooling),
AlexNet is the small-input AlexNet documented in resnet.py. MNIST digits are zero-padded to 32x32
and repeated to 3 channels for ResNet-20 and AlexNet; LeNet-5 takes them at 28x28x1. The paper gives
no optimiser or schedule: SGD momentum 0.9 on He et al.'s step schedule, lr 0.1 for ResNet-20 and
0.01 for LeNet-5 and AlexNet (they do not train at 0.1), 30 epochs per model and dataset.

  python -m experiments.lu_song --cifar10_dir ../shared/datasets/cifar10 --mnist_dir ../shared/datasets/mnist
  python -m experiments.lu_song --quick --cifar10_dir ../shared/datasets/cifar10 --mnist_dir ../shared/datasets/mnist
"""

import os
import sys


if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import common, plans, plots, stats
from run_config import RunConfig

TITLE = "Lu & Song"
PAPER = 'H. Lu, H. Song, "Research on image classification based on ResNet"'
MODELS = {"resnet20": "ResNet (ResNet-20)", "lenet5": "LeNet-5", "alexnet": "AlexNet"}
DATASETS = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
# float32 for every run (issue 34, 2026-12-07): 7 of the 8 finished runs are float32, and a float32 run resumes at
# full speed on every machine sessions land on (bfloat16 is emulated, far slower, on the AVX2 EPYC and the Xeon
# without BF16); bfloat16 would make AlexNet 1.7x faster, on the AVX512_BF16 EPYC only.
PRECISION = "off"
# Table 1: the highest accuracy on the training and test sets (percent / 100).
PAPER_TABLE1 = {
    ("resnet20", "mnist"): (1.00000, 0.99665), ("lenet5", "mnist"): (0.99523, 0.99110),
    ("alexnet", "mnist"): (1.00000, 0.99440), ("resnet20", "cifar10"): (0.92890, 0.86600),
    ("lenet5", "cifar10"): (0.80594, 0.63470), ("alexnet", "cifar10"): (0.99974, 0.84140),
}
# mode -> {dataset: (train steps or epochs flag, report every)}
SCHEDULE = {
    "full": {"mnist": ({"epochs": 30}, 469), "cifar10": ({"epochs": 30}, 391)},
    "quick": {"mnist": ({"train_steps": 300}, 50), "cifar10": ({"train_steps": 800}, 100)},
    "tiny": {"mnist": ({"train_steps": 2}, 2), "cifar10": ({"train_steps": 2}, 2)},
}


def runs(mode, args=None):
    batch = 5 if mode == "tiny" else 128
    result = []
    for dataset in DATASETS:
        length, report = SCHEDULE[mode][dataset]
        for model in MODELS:
            # No augmentation: the paper describes none, and its AlexNet's 99.974% training accuracy on
            # CIFAR-10 fits training on the plain images (see notes).
            result.append(common.Run(f"{model}_{dataset}", MODELS[model], RunConfig(
                dataset=dataset, model=model, augment="none", validation_split=0.0, batch_size=batch,
                mixed_precision=PRECISION, report_freq=report, **length), group=dataset))
    return result


def notes(mode):
    result = [
        "Models, optimiser and schedule are ours (the paper names LeNet, AlexNet and ResNet only): ResNet-20 v1 "
        "(0.27M parameters), LeNet-5, small-input AlexNet; SGD momentum 0.9, lr 0.1 (ResNet-20) or 0.01 (LeNet-5, "
        "AlexNet) divided by 10 at 50% and 75% of training, weight decay 1e-4.",
        "No augmentation on either dataset: the paper describes none, and its AlexNet reaching 99.974% training "
        "accuracy on CIFAR-10 fits training on the plain images. Its ResNet's 92.890% does not fit as well (a "
        "ResNet-20 without augmentation usually fits CIFAR-10's training set almost perfectly); the paper may have "
        "stopped it earlier or treated it differently, which it does not say.",
        "'Highest accuracy' is the maximum over our reports: test accuracy on the 10,000 test images at each report, "
        "training accuracy as the mean over each report window (dropout on for AlexNet).",
        "Plateau rule: a run has plateaued when the best test accuracy of its last 20% of steps beats the best before "
        "by less than one binomial standard error on 10,000 images (0.005); each run's gain is in the table and its "
        "curve in the figures. A run that is still rising is said so: its highest accuracy is not its end point.",
        common.CIFAR10_DATA_NOTE + " MNIST is the exact official data.",
    ]
    if mode != "full":
        result.append(f"REDUCED ({mode}): {SCHEDULE[mode]['mnist'][0]['train_steps']} steps per MNIST run and "
                      f"{SCHEDULE[mode]['cifar10'][0]['train_steps']} per CIFAR-10 run (batch 128) instead of "
                      f"30 epochs; the highest accuracies are those of these short runs.")
    return result


def _schedule(model, dataset, mode):
    """The run's schedule in words, for the results table, from the run's own settings."""
    import resnet

    config = next(run.config for run in runs(mode) if run.name == f"{model}_{dataset}")
    steps = plans.total_steps(config)
    lr = resnet.MODELS[model].default_learning_rate
    epochs = f"{config.epochs} epochs, " if config.epochs else ""
    return f"{epochs}{steps:,} steps x {config.batch_size}, SGD lr {lr:g}, /10 at 50% and 75%, no augmentation"


def report_rows(metrics, mode, args):
    budget = "" if mode == "full" else f"{mode} schedule; "
    full = mode == "full"
    rows = []
    for dataset, dataset_name in DATASETS.items():
        for model, model_name in MODELS.items():
            paper_train, paper_test = PAPER_TABLE1[(model, dataset)]
            run = f"{model}_{dataset}"
            window = "ours: report-window mean"
            schedule = _schedule(model, dataset, mode)
            rows.append({"quantity": f"Table 1: {model_name}, {dataset_name}, highest training accuracy",
                         "paper": paper_train, "paper_format": "{:.5f}",
                         "ours": stats.best(metrics, run, "train_accuracy"), "comparable": full,
                         "runs": [run], "schedule": schedule,
                         "settings": budget + window + ("; dropout on" if model == "alexnet" else "")})
            rows.append({"quantity": f"Table 1: {model_name}, {dataset_name}, highest test accuracy",
                         "paper": paper_test, "paper_format": "{:.5f}",
                         "ours": stats.best(metrics, run, "val_accuracy"), "comparable": full,
                         "test_images": 10000, "runs": [run], "schedule": schedule, "settings": budget.rstrip("; ")})
    for dataset, dataset_name in DATASETS.items():
        for model, model_name in MODELS.items():  # the plateau rule: is each run's highest test accuracy its end?
            run = f"{model}_{dataset}"
            gains = stats.late_gain(metrics, run, "val_accuracy")
            rows.append({"quantity": f"{model_name}, {dataset_name}: best test accuracy of the last 20% of steps "
                                     f"minus the best before", "paper": None, "ours": gains, "runs": [run],
                         "settings": budget + stats.plateau_verdict(gains, 10000)})
    for dataset, dataset_name in DATASETS.items():
        for other in ("lenet5", "alexnet"):
            paper = PAPER_TABLE1[("resnet20", dataset)][1] - PAPER_TABLE1[(other, dataset)][1]
            resnet, baseline = (stats.best(metrics, f"{model}_{dataset}", "val_accuracy")
                                for model in ("resnet20", other))
            ours = stats.paired(resnet, baseline)
            rows.append({"quantity": f"{dataset_name}: ResNet's highest test accuracy minus {MODELS[other]}'s",
                         "paper": paper, "ours": ours, "comparable": full,
                         "runs": [f"resnet20_{dataset}", f"{other}_{dataset}"],
                         "settings": budget + stats.verdict(ours, 10000)})
    return rows


def figures(metrics, out_dir, mode, args):
    plt = plots.pyplot()
    paths = []
    for dataset, name in (("mnist", "fig4_mnist_accuracy.png"), ("cifar10", "fig6_cifar10_accuracy.png")):
        figure, (train_axis, test_axis) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for model, label in MODELS.items():
            plots.plot_mean(train_axis, metrics, f"{model}_{dataset}", "train_accuracy", x="epoch", label=label)
            plots.plot_mean(test_axis, metrics, f"{model}_{dataset}", "val_accuracy", x="epoch", label=label)
        plots.label_axis(train_axis, "epoch", "accuracy", "training set (report-window mean)")
        plots.label_axis(test_axis, "epoch", "accuracy", "test set")
        figure_number = 4 if dataset == "mnist" else 6
        figure.suptitle(f"Lu & Song, Fig. {figure_number}: training and test accuracy on {DATASETS[dataset]} ({mode})")
        paths.append(plots.save_figure(figure, os.path.join(out_dir, name)))
    return paths


def main(argv=None):
    return common.main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
