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
import math
import os
import sys

import tf_setup  # noqa: F401  (before TensorFlow: oneDNN on, quiet C++ log; see tf_setup.py)


def _import_tensorflow_quietly():
    """Imports TensorFlow with file descriptor 2 muted, unless TF_CPP_MIN_LOG_LEVEL is 0.

    TF's C++ start-up lines (oneDNN notice, CUDA stub lookup) are written before
    its log level applies, so a bad flag would otherwise come after four lines
    of chatter. Only the import is muted: device set-up messages still show.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow


tf = _import_tensorflow_quietly()

import api  # noqa: E402
import augment  # noqa: E402
import cifar10_train  # noqa: E402
import resnet  # noqa: E402
import run_config  # noqa: E402

MODES = ("train", "test", "predict", "augment_preview")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker")
# Flags passed to the model builder only when given, so each model keeps its own defaults.
DEFAULTS = run_config.RunConfig()  # every flag of a run setting defaults to the RunConfig's own


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


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def auto_or_positive_int(text):
    return "auto" if text == "auto" else positive_int(text)


def build_parser():
    parser = OneLineParser(
        prog="cifar10_main.py",
        description="Train, test or query ResNets and their baselines on CIFAR-10, MNIST or a folder of images "
                    "(He et al.'s CIFAR recipe by default).",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--mode", choices=MODES, default="train",
                        help="train: train a model and write a run folder; test: evaluate a run's model on the test set; "
                             "predict: print the top classes of --images with a run's model; augment_preview: write a "
                             "PNG grid of originals and augmented versions (Liang's Fig. 5)")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=run_config.DATASETS, default=DEFAULTS.dataset,
                      help="cifar10; mnist (the four official idx .gz files); folder (one subfolder per class, "
                           "or train/ and test/ folders of them, e.g. flower_photos)")
    data.add_argument("--data_dir", default=None,
                      help="cifar10: folder holding cifar-10-python.tar.gz (or any .tar.gz of cifar-10-batches-py/), the "
                           "extracted cifar-10-batches-py/ or cifar-10-batches-bin/, or the archive itself; mnist: the "
                           "folder of idx files; missing files are downloaded there (default under ~/.keras/datasets). "
                           "folder: the image folder (required). In test mode defaults to the run's")
    data.add_argument("--validation_split", type=fraction, default=None,
                      help="fraction of the training images held out for validation (He et al. hold out 0.1); "
                           "0 validates on the test set, as Liang's curves do (default 0; for --dataset folder without "
                           "train/ and test/ it is the test split instead, default 0.2 as Yuan's 8:2)")
    data.add_argument("--image_size", type=positive_int, nargs=2, metavar=("H", "W"), default=None,
                      help="--dataset folder: the model's input size (default: the size the model is meant for). "
                           "With --augment imagenet images are kept at size/0.875 (256 for 224) and cropped to it")
    augment_help = "; ".join(f"{name} ({recipe.paper}): {recipe.summary}" for name, recipe in augment.RECIPES.items())
    data.add_argument("--augment", choices=tuple(augment.RECIPES), default=None,
                      help=f"preprocessing recipe (normalisation + augmentation), saved with the run so --mode test "
                           f"applies the same. {augment_help}. Default: he for cifar10, none for mnist, imagenet for "
                           f"folder. keras.applications models (*_imagenet) always use their own preprocess_input")
    data.add_argument("--preview_images", type=positive_int, default=6, help="augment_preview: rows (images) in the grid")
    data.add_argument("--preview_versions", type=positive_int, default=5,
                      help="augment_preview: augmented versions per image")

    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=tuple(resnet.MODELS), default=None, metavar="NAME",
                       help="architecture (default resnet20): one of the names --list_models prints; in test mode, if "
                            "given, must match the run's")
    model.add_argument("--list_models", action="store_true",
                       help="print every model: name, input shape it is meant for, parameters, paper; then exit")
    model.add_argument("--shortcut", choices=resnet.SHORTCUTS, default=None,
                       help="CIFAR ResNet v1 (resnet20...resnet1202) stride-2 shortcut: A = He et al.'s option A, "
                            "stride-2 subsampling + zero channels (the default); A_avgpool = Liang 2020's 2x2 average "
                            "pool + zero channels; B = 1x1 projection")
    model.add_argument("--preactivation", action="store_true", default=None,
                       help="CIFAR ResNet v1 block as Liang 2020 draws it (BN-ReLU-conv) instead of He 2016a's conv-BN-ReLU")
    model.add_argument("--stem", choices=("auto", "imagenet", "cifar"), default=None,
                       help="ImageNet-family ResNets (resnet18...resnet152): 7x7/2 conv + max-pool, or a 3x3/1 conv "
                            "for small images; auto (the default) picks by input size")
    model.add_argument("--residual_blocks", type=int, default=None,
                       help="jin_cnn: number of residual blocks k after the Conv2D + MaxPooling2D stem (default 0: the plain CNN)")
    model.add_argument("--conv_padding", choices=resnet.CONV_PADDINGS, default=None,
                       help="CIFAR and ImageNet ResNets: where a stride-2 convolution pads. same = TensorFlow's "
                            "(bottom and right only, so its output sits one pixel off option A's subsampled "
                            "shortcut; the default, as every run before 2026-12-04); symmetric = one pixel on every "
                            "side, as Caffe and PyTorch (He's and akamaster's code)")
    model.add_argument("--weight_decay", type=float, default=DEFAULTS.weight_decay,
                       help="SGD-style weight decay (gradient += wd * w), He et al.'s 1e-4")
    model.add_argument("--weight_decay_scope", choices=resnet.WEIGHT_DECAY_SCOPES, default=DEFAULTS.weight_decay_scope,
                       help="what --weight_decay decays: kernels = the conv and dense kernels only (every run before "
                            "2026-12-04); all = every trainable parameter, batch-norm scales and offsets and biases "
                            "included, as Caffe, fb.resnet.torch and akamaster's PyTorch code do")

    transfer = parser.add_argument_group("transfer learning (the keras.applications models, *_imagenet)")
    transfer.add_argument("--weights", default=None,
                          help="imagenet (downloaded by Keras; the default for *_imagenet models), none (random "
                               "initialisation: labelled as not a reproduction), or a local weights file of the "
                               "backbone without its top")
    transfer.add_argument("--freeze_backbone", action="store_true", default=None,
                          help="train only the new head; the backbone's batch-norm layers run in inference mode")
    transfer.add_argument("--fine_tune_at", default=None,
                          help="after the --train_steps/--epochs of head training, unfreeze the backbone from this layer "
                               "(a name, an index, or a fraction such as 0.1 = its top 10%%) for a second stage")
    transfer.add_argument("--fine_tune_steps", type=positive_int, default=None,
                          help="steps of the fine-tuning stage (default: as many as the first stage)")
    transfer.add_argument("--fine_tune_epochs", type=positive_float, default=None,
                          help="length of the fine-tuning stage in epochs (instead of --fine_tune_steps)")
    transfer.add_argument("--fine_tune_learning_rate", type=positive_float, default=None,
                          help="constant learning rate of the fine-tuning stage (default: --learning_rate / 10)")

    train = parser.add_argument_group("training")
    train.add_argument("--train_steps", type=positive_int, default=None,
                       help=f"optimizer steps in total (default {run_config.DEFAULT_TRAIN_STEPS}, He et al.'s 64k)")
    train.add_argument("--epochs", type=positive_float, default=None,
                       help="train for this many passes over the training images instead of --train_steps")
    train.add_argument("--batch_size", type=positive_int, default=DEFAULTS.batch_size,
                       help="GLOBAL batch size: summed over all replicas and workers, split evenly among them")
    train.add_argument("--optimizer", choices=("sgd", "adam"), default=DEFAULTS.optimizer, help="sgd uses --momentum")
    train.add_argument("--learning_rate", type=positive_float, default=None,
                       help="initial learning rate (default 0.1, He et al.; 0.01 for lenet5 and alexnet, which "
                            "have no BN in their dense layers and do not train at 0.1)")
    train.add_argument("--momentum", type=float, default=DEFAULTS.momentum, help="SGD momentum")
    train.add_argument("--lr_decay_at", type=fraction, nargs="*", default=None,
                       help="fractions of the training steps at which the learning rate is divided (default 0.5 0.75 "
                            "for sgd, He's 32k/64k and 48k/64k; none for adam)")
    train.add_argument("--lr_decay_factor", type=positive_float, default=DEFAULTS.lr_decay_factor,
                       help="multiplier applied at each decay")
    train.add_argument("--lr_schedule_steps", type=positive_int, default=None,
                       help="the steps --lr_decay_at's fractions refer to (default: --train_steps): stop part-way "
                            "through a longer schedule, e.g. --train_steps 9775 --lr_schedule_steps 80000")
    train.add_argument("--report_freq", type=positive_int, default=DEFAULTS.report_freq,
                       help="every this many steps: validate, print a line, write TensorBoard summaries, CSV rows, "
                            "latest.keras / best.keras and a checkpoint")
    train.add_argument("--report_at_start", action="store_true", default=None,
                       help="also validate and report at step 0, before the first update (Liang's starting values)")
    train.add_argument("--save_freq", type=positive_int, default=None,
                       help="checkpoint every this many steps (default: --report_freq); an interrupted run, started "
                            "again with the same command, loses at most this many steps")
    train.add_argument("--eval_batch_size", type=positive_int, default=DEFAULTS.eval_batch_size, help="batch size for validation and test")
    train.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seeds weights, shuffling, augmentation and the validation split")
    train.add_argument("--deterministic", action="store_true",
                       help="TF op determinism: with the same --seed two runs on one machine write identical "
                            "metrics.csv files (a little slower)")
    train.add_argument("--log_dir", default=None, help="run folder (default runs/<model>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --log_dir even though its settings differ from these (the same "
                            "command continues its own run without this flag)")
    train.add_argument("--overwrite", action="store_true",
                       help="delete the run already in --log_dir (its models, checkpoints, logs and test results; "
                            "nothing else) and start afresh")

    hardware = parser.add_argument_group("hardware and speed")
    hardware.add_argument("--distribution_strategy", choices=STRATEGIES, default=DEFAULTS.distribution_strategy,
                          help="auto: MirroredStrategy when GPUs are visible, else the default strategy; multi_worker: "
                               "MultiWorkerMirroredStrategy configured from TF_CONFIG")
    hardware.add_argument("--num_gpus", type=int, default=None,
                          help="use the first N GPUs (default: all visible; 0: the CPU only)")
    hardware.add_argument("--mixed_precision", choices=cifar10_train.PRECISIONS, default=DEFAULTS.mixed_precision,
                          help="compute in 16 bits, weights in 32: float16 (GPU, with loss scaling) or bfloat16 (GPUs, "
                               "and CPUs with AVX512_BF16/AMX: 1.06-2.56x faster on a 2-core such CPU, see "
                               "benchmarks/README.md). auto (the default): the faster of those that can pay here, timed once "
                               "per model, batch and machine and cached (README: Speed)")
    hardware.add_argument("--jit_compile", choices=("auto", "on", "off"), default=DEFAULTS.jit_compile,
                          help="compile the training step with XLA. Helps on GPUs for many models; made ResNet-20 2x "
                               "slower on a CPU. auto (the default): off")
    hardware.add_argument("--steps_per_execution", type=auto_or_positive_int, default=DEFAULTS.steps_per_execution,
                          help="training steps per tf.function call: more saves Python overhead for small models "
                               "(LeNet-5, MNIST). auto (the default): sized from the measured step time to about 0.25 s "
                               "per call")
    hardware.add_argument("--profile_steps", type=positive_int, nargs=2, default=None, metavar=("FIRST", "LAST"),
                          help="trace training steps FIRST to LAST with the TensorFlow profiler into the run folder's "
                               "train/ (TensorBoard's Profile tab: where each step's time goes). Default: none")

    test = parser.add_argument_group("testing and prediction")
    test.add_argument("--checkpoint", default=None,
                      help="test/predict: a run folder (uses its latest.keras), a shipped folder (pretrained/<name>: "
                           "the model its manifest names) or a .keras file in either")
    test.add_argument("--output", default=None,
                      help="test: folder for test_probabilities.npy, test_predictions.csv, test_metrics.json and "
                           "test_confusion_matrix.png (default: the run folder); predict: a CSV file of every "
                           "image's class probabilities; augment_preview: the PNG file "
                           "(default augment_preview_<dataset>_<augment>.png)")
    test.add_argument("--images", nargs="+", default=None, metavar="PATH",
                      help="predict: image files and/or folders of images")
    test.add_argument("--top_k", type=positive_int, default=3, help="predict: classes shown per image")
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list_models:
        list_models()
        return 0
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
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
