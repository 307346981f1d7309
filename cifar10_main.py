"""Train, test or query an image classifier: the suite's command line.

  python cifar10_main.py --mode train                 # ResNet-20 on CIFAR-10, He et al.'s recipe
  python cifar10_main.py --mode test --checkpoint runs/resnet20
  python cifar10_main.py --mode predict --checkpoint runs/resnet20 --images cat.jpg

Defaults follow He et al. 2016a, Section 4.2: batch 128, SGD momentum 0.9,
learning rate 0.1 divided by 10 at 50% and 75% of training (32k and 48k of
64k steps), weight decay 1e-4, 4-pixel pad + random crop + horizontal flip,
per-channel normalisation. Bad input ends with one ``error:`` line and exit
code 2; Ctrl-C keeps the last checkpoint and exits with 130.
"""

import argparse
import dataclasses
import os
import sys
import warnings

import tf_setup  # noqa: F401  (before TensorFlow: oneDNN on, a quiet import; see tf_setup.py)

import api  # noqa: E402
import cifar10_train  # noqa: E402
import resnet  # noqa: E402
import run_config  # noqa: E402

MODES = ("train", "test", "predict", "augment_preview")
GROUPS = {"data": "data", "model": "model", "transfer": "transfer learning (the keras.applications models, *_imagenet)",
          "training": "training", "hardware": "hardware and speed", "test": "testing and prediction"}
# The flags that are not run settings (those come from run_config.RunConfig's declarations): (group, after, flag,
# argparse keyword arguments); after: the setting they follow in --help, None for the group's end.
COMMAND_FLAGS = (
    ("data", None, "--preview_images", dict(type=run_config.positive_int, default=6,
                                            help="augment_preview: rows (images) in the grid")),
    ("data", None, "--preview_versions", dict(type=run_config.positive_int, default=5,
                                              help="augment_preview: augmented versions per image")),
    ("model", "model", "--list_models", dict(action="store_true", help="print every model: name, input shape it is "
                                             "meant for, parameters, paper; then exit")),
    ("training", None, "--resume", dict(action="store_true", help="continue the run in --log_dir even though its "
                                        "settings differ from these (the same command continues its own run without "
                                        "this flag)")),
    ("training", None, "--overwrite", dict(action="store_true", help="delete the run already in --log_dir (its models, "
                                           "checkpoints, logs and test results; nothing else) and start afresh")),
    ("test", None, "--checkpoint", dict(default=None, help="test/predict: a run folder (uses its latest.keras), a "
                                        "shipped folder (pretrained/<name>: the model its manifest names) or a .keras "
                                        "file in either")),
    ("test", None, "--output", dict(default=None, help="test: folder for test_probabilities.npy, "
                                    "test_predictions.csv, test_metrics.json and test_confusion_matrix.png (default: "
                                    "the run folder; runs/<name>_test for a shipped folder); predict: a CSV file of "
                                    "every image's class probabilities; augment_preview: the PNG file (default "
                                    "augment_preview_<dataset>_<augment>.png)")),
    ("test", None, "--images", dict(nargs="+", default=None, metavar="PATH",
                                    help="predict: image files and/or folders of images")),
    ("test", None, "--top_k", dict(type=run_config.positive_int, default=3, help="predict: classes shown per image")),
)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" where the default is a value; flags whose default depends on other
    flags (None) say so in their own help text."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return f"{action.help} (default: {action.default})"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) and exits with 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    """The run settings' flags as run_config declares them, with the command's own flags among them."""
    parser = OneLineParser(
        prog="cifar10_main.py",
        description="Train, test or query ResNets and their baselines on CIFAR-10, MNIST or a folder of images "
                    "(He et al.'s CIFAR recipe by default).",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--mode", choices=MODES, default="train",
                        help="train: train a model and write a run folder; test: evaluate a run's model on the test "
                             "set; predict: print the top classes of --images with a run's model; augment_preview: "
                             "write a PNG grid of originals and augmented versions (Liang's Fig. 5)")
    groups = {name: parser.add_argument_group(title) for name, title in GROUPS.items()}
    order = list(GROUPS)
    settings = sorted(run_config.flag_arguments(), key=lambda flag: order.index(flag[0]))  # stable: usage by group
    last = {group: name for group, name, _ in settings}  # a group's end flags follow its last setting
    follow = {}
    for group, after, flag, kwargs in COMMAND_FLAGS:
        follow.setdefault(after or last.get(group), []).append((group, flag, kwargs))
    for group, name, kwargs in settings:
        groups[group].add_argument(f"--{name}", **kwargs)
        for extra_group, flag, extra in follow.pop(name, ()):
            groups[extra_group].add_argument(flag, **extra)
    for extra_group, flag, extra in follow.pop(None, ()):  # groups without settings
        groups[extra_group].add_argument(flag, **extra)
    return parser


def config_from_argv(argv):
    """The RunConfig a list of ``cifar10_main.py`` flags describes (a tool that passes flags through to it)."""
    return config_from_flags(build_parser().parse_args(argv))


def config_from_flags(args):
    """The RunConfig the flags describe (unresolved: what is not given keeps the RunConfig's default)."""
    names = {field.name for field in dataclasses.fields(run_config.RunConfig)} - {"model_options"}
    values = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    options = {name: getattr(args, name) for name in run_config.OPTION_FLAGS if getattr(args, name) is not None}
    return run_config.RunConfig(**values, model_options=options)


def run_train(args):
    return api.train(config_from_flags(args), resume=args.resume, overwrite=args.overwrite)


def _checkpoint(args):
    if args.checkpoint is None:
        raise api.UsageError(f"--mode {args.mode} needs --checkpoint RUN_FOLDER_OR_.keras")
    return args.checkpoint


def run_test(args):
    return api.test(_checkpoint(args), args.data_dir, args.output, args.eval_batch_size, args.model)


def run_predict(args):
    return api.predict(_checkpoint(args), args.images, args.top_k, args.output, args.eval_batch_size, args.model)


def run_augment_preview(args):
    return api.augment_preview(config_from_flags(args), args.preview_images, args.preview_versions, args.output)


def list_models():
    """One line per registered model: its parameters counted at the shape it is meant for, and the published count."""
    print(f"{'name':<26s}{'input':<12s}{'classes':>8s}{'params':>13s}{'published':>11s}  paper")
    for name, spec in resnet.MODELS.items():
        classes = 1000 if spec.input_shape[0] >= 224 else 10
        params = ("not built" if name == "resnet1202" else
                  f"{resnet.trainable_params(resnet.build_model(name, spec.input_shape, classes)):,}")
        published = f"{spec.params_m}M" if spec.params_m else "-"
        print(f"{name:<26s}{'x'.join(map(str, spec.input_shape)):<12s}{classes:>8d}{params:>13s}{published:>11s}  "
              f"{spec.paper}")
    print("(resnet1202 is not built here: it takes a minute. *_imagenet: trainable parameters with the whole backbone "
          "trainable. published: the paper's count, or torchvision's for the ImageNet ResNets.)")


PYTHON_FORMATWARNING = warnings.formatwarning


def one_line_warning(message, category, filename, lineno, line=None):
    """The command's own warnings (files skipped as unreadable images, ...) as one line, as its errors are; those of
    other packages as Python shows them (file, line and source)."""
    if os.path.dirname(os.path.abspath(filename)) == os.path.dirname(os.path.abspath(__file__)):
        return f"cifar10_main.py: warning: {message}\n"
    return PYTHON_FORMATWARNING(message, category, filename, lineno, line)


def main(argv=None):
    if argv is None:  # this command is the process (not a test or a notebook calling main)
        warnings.formatwarning = one_line_warning
    args = build_parser().parse_args(argv)
    if args.list_models:
        list_models()
        return 0
    api.stop_on_sigterm()
    run = {"train": run_train, "test": run_test, "predict": run_predict, "augment_preview": run_augment_preview}
    try:
        run[args.mode](args)
    except api.USER_ERRORS as error:
        print(f"cifar10_main.py: error: {error}", file=sys.stderr)
        return 2
    except cifar10_train.TrainingError as error:
        print(f"cifar10_main.py: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncifar10_main.py: interrupted; the last checkpoint is kept: run the same command again to continue",
              file=sys.stderr)
        return api.interrupted(130, own_process=argv is None)  # argv None: this command is the process
    return 0


if __name__ == "__main__":
    sys.exit(main())
