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
import glob
import json
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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import augment  # noqa: E402
import cifar10_input  # noqa: E402
import cifar10_test  # noqa: E402
import cifar10_train  # noqa: E402
import datasets  # noqa: E402
import resnet  # noqa: E402
import run_config  # noqa: E402
import fileio  # noqa: E402
import run_folder  # noqa: E402
import summaries  # noqa: E402

MODES = ("train", "test", "predict", "augment_preview")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker")
# Flags passed to the model builder only when given, so each model keeps its own defaults.
DEFAULTS = run_config.RunConfig()  # every flag of a run setting defaults to the RunConfig's own
USER_ERRORS = (
    run_config.ConfigError,
    resnet.ModelInputError,
    resnet.WeightsError,
    cifar10_input.DataError,
    run_folder.RunFolderError,
    cifar10_test.CheckpointError,
)


class UsageError(Exception):
    """Flags that do not fit together; the message says which."""


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
                            "included, as Caffe, fb.resnet.torch and akamaster's PyTorch code do"),

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
                      help="test/predict: a run folder (uses its latest.keras) or a .keras file in a run folder")
    test.add_argument("--output", default=None,
                      help="test: folder for test_probabilities.npy, test_predictions.csv, test_metrics.json and "
                           "test_confusion_matrix.png (default: the run folder); predict: a CSV file of every "
                           "image's class probabilities; augment_preview: the PNG file "
                           "(default augment_preview_<dataset>_<augment>.png)")
    test.add_argument("--images", nargs="+", default=None, metavar="PATH",
                      help="predict: image files and/or folders of images")
    test.add_argument("--top_k", type=positive_int, default=3, help="predict: classes shown per image")
    return parser


def check_tf_config(text):
    """TF_CONFIG as multi_worker needs it: JSON with a cluster of workers and this process's task."""
    if not text:
        raise UsageError("--distribution_strategy multi_worker needs TF_CONFIG (see README: several machines)")
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise UsageError(f"TF_CONFIG is not JSON ({error})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict) or not isinstance(spec.get("task"), dict):
        raise UsageError('TF_CONFIG must be {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": N}}')


def make_strategy(name, num_gpus=None):
    """Builds the tf.distribute strategy; call it before anything else touches TensorFlow's devices."""
    if name == "multi_worker":
        # Must come first: collective ops can only be configured before the
        # runtime initialises, which listing logical devices does.
        check_tf_config(os.environ.get("TF_CONFIG"))
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except ValueError as error:
            raise UsageError(f"TF_CONFIG: {str(error).splitlines()[0]}") from None
    choose_gpus(num_gpus)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    # mirrored: without GPUs, mirror over the logical CPUs (one, unless split with
    # tf.config.set_logical_device_configuration, as the tests do).
    devices = [g.name for g in gpus] or [c.name for c in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def choose_gpus(num_gpus):
    """``--num_gpus N``: only the first N GPUs are made visible, before TensorFlow's runtime starts (listing
    logical devices starts it), so the others are neither used nor have memory reserved; 0 trains on the CPU."""
    if num_gpus is None:
        return
    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus < 0 or num_gpus > len(gpus):
        raise UsageError(f"--num_gpus {num_gpus} but {len(gpus)} GPU(s) are visible")
    try:
        tf.config.set_visible_devices(gpus[:num_gpus], "GPU")
    except RuntimeError:
        raise UsageError(f"--num_gpus {num_gpus}: TensorFlow had already started with other GPUs visible; "
                         "set CUDA_VISIBLE_DEVICES instead") from None


def nvidia_device_present():
    """True when the machine has an NVIDIA driver loaded (whether or not TensorFlow can use it)."""
    return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))


def gpu_warning():
    """The one-line warning for a machine with an NVIDIA GPU that TensorFlow does not see, or None."""
    if tf.config.list_physical_devices("GPU") or not nvidia_device_present():
        return None
    return ("warning: this machine has an NVIDIA GPU but TensorFlow sees none (its CUDA libraries are not installed), "
            "so training runs on the CPU; install them with: pip install -r requirements-gpu.txt")


def input_sizes(config):
    """(stored image size, model input size) for --dataset folder; (None, None) for the fixed-size datasets.

    The recipe says how large images are kept: the imagenet recipe stores them at
    input/0.875 (256 for 224) and crops them to the input size, as Resize(256) + CenterCrop(224).
    """
    if config.dataset != "folder":
        return None, None
    size = tuple(config.image_size or resnet.MODELS[config.model].input_shape[:2])
    return augment.recipe(run_config.recipe(config)).stored_size(size), size


def load_data(config):
    """The dataset adapted to the model, and the split it validates on.

    Returns (data, info): ``data`` holds the images as TensorFlow tensors, so that
    training keeps one uint8 copy of them (the NumPy arrays the loaders made are
    dropped here); ``info`` has the source and, for image folders, the file names.
    """
    if config.dataset == "folder" and not config.data_dir:
        raise UsageError("--dataset folder needs --data_dir pointing at the image folder")
    stored_size, _ = input_sizes(config)
    split = run_config.default_split(config)
    folder_split = config.dataset == "folder"
    dataset = datasets.load_dataset(
        config.dataset, config.data_dir, resnet.MODELS[config.model].input_shape,
        validation_split=split if folder_split else 0.0, seed=config.seed, image_size=stored_size,
        keep_aspect=augment.recipe(run_config.recipe(config)).crop_to_evaluate)
    data = {"class_names": dataset.pop("class_names")}
    if split and not folder_split:
        (x_train, data["y_train"]), (x_val, data["y_val"]) = cifar10_input.split_validation(
            dataset.pop("x_train"), dataset.pop("y_train"), split, config.seed)
        data["validation"] = (f"{len(x_val)} images held out of the training set (--validation_split {split}, "
                              f"seed {config.seed})")
    else:
        x_train, data["y_train"] = dataset.pop("x_train"), dataset.pop("y_train")
        x_val, data["y_val"] = dataset.pop("x_test"), dataset.pop("y_test")
        data["validation"] = dataset.get("test_description", f"the test set ({len(x_val)} images)")
    data["x_train"], data["x_val"] = tf.convert_to_tensor(x_train), tf.convert_to_tensor(x_val)
    return data, dataset


def config_from_flags(args):
    """The RunConfig the flags describe (unresolved: what is not given keeps the RunConfig's default)."""
    names = {field.name for field in dataclasses.fields(run_config.RunConfig)} - {"model_options"}
    values = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    options = {name: getattr(args, name) for name in run_config.OPTION_FLAGS if getattr(args, name) is not None}
    return run_config.RunConfig(**values, model_options=options)


def train(config, on_report=None, verbose=1, resume=False, overwrite=False):
    """Trains a RunConfig: loads its data, resolves it, runs the engine; the CLI, experiments and benchmarks call it.

    ``on_report(row) -> bool`` may stop training early (see ``cifar10_train.train``).
    """
    run_config.check(config)
    strategy = make_strategy(config.distribution_strategy, config.num_gpus)
    warning = gpu_warning()
    if warning:
        print(warning, file=sys.stderr)
    data, dataset = load_data(config)
    requested_precision = config.mixed_precision
    config = run_config.resolve(config, len(data["x_train"]), strategy.num_replicas_in_sync, dataset["source"])
    precision_note, session_notes = "", {}
    if requested_precision == "auto":
        input_shape = (*(config.image_size or data["x_train"].shape[1:3]), data["x_train"].shape[-1])
        choice, rates, source = cifar10_train.auto_precision(config, input_shape, strategy.num_replicas_in_sync)
        config = dataclasses.replace(config, mixed_precision=choice)
        measured = ", ".join(f"{name} {rate:.0f}" for name, rate in (rates or {}).items())
        precision_note = f" (auto: {measured} images/s, {source})" if rates else " (auto, by the hardware's rule)"
        session_notes = {"auto_precision": {"images_per_sec": rates, "source": source}}
    weights_note = ""
    if resnet.is_transfer(config.model) and not config.pretrained:
        weights_note = " NOTE: --weights none: random initialisation, not a reproduction of a pretrained result."
    fine_tune = f" + {config.fine_tune_steps} fine-tuning" if config.fine_tune_steps else ""
    print(f"Training {config.model} on {config.dataset} from {config.data_dir}: {len(data['x_train'])} training images "
          f"{list(data['x_train'].shape[1:])} -> model input size {list(config.image_size or data['x_train'].shape[1:3])}, "
          f"augment {config.augment}, validating on {data['validation']}; {strategy.num_replicas_in_sync} replica(s), "
          f"global batch {config.batch_size}, {config.train_steps} steps{fine_tune}, precision "
          f"{config.mixed_precision}{precision_note}; run folder {config.log_dir}.{weights_note}")
    try:
        result = cifar10_train.train(config, data, strategy, verbose=verbose, on_report=on_report, resume=resume,
                                     overwrite=overwrite, session_notes=session_notes)
    except ValueError as error:  # the engine's own checks (batch per input pipeline, --fine_tune_at layer)
        raise UsageError(str(error).splitlines()[0]) from None
    test = (f"Test with: python cifar10_main.py --mode test --checkpoint {config.log_dir}" if result["model"] else
            "Its models were removed with its checkpoint: only its reports are left")
    print(f"Done: val accuracy {result.get('val_accuracy', float('nan')):.4f} at step {result.get('step')}, "
          f"best {result['best_val_accuracy']:.4f}. {test}")
    return result


def run_train(args):
    return train(config_from_flags(args), resume=args.resume, overwrite=args.overwrite)


def load_run(args):
    """The model, settings and data facts of --checkpoint, checked against --model."""
    if args.checkpoint is None:
        raise cifar10_test.CheckpointError(f"--mode {args.mode} needs --checkpoint RUN_FOLDER_OR_.keras")
    model_path, run_dir, config, info = cifar10_test.resolve_checkpoint(args.checkpoint)
    if args.model and args.model != config.model:
        raise cifar10_test.CheckpointError(
            f"--checkpoint {args.checkpoint} holds a {config.model} run, not --model {args.model}")
    model = cifar10_test.load_model(model_path)
    expected = (None, *info.input_shape)
    if tuple(model.input_shape) != expected:
        raise cifar10_test.CheckpointError(f"{model_path} takes inputs {model.input_shape}, the run's config says {expected}")
    return model, model_path, run_dir, config, info


def evaluate_run(model, config, info, data_dir=None, eval_batch_size=500):
    """A run's model on its dataset's test images, read and preprocessed as in training: (dataset, result)."""
    dataset = datasets.load_dataset(
        config.dataset, data_dir or config.data_dir, info.input_shape,
        validation_split=run_config.default_split(config) or run_config.FOLDER_TEST_SPLIT, seed=config.seed,
        image_size=info.stored_size if config.dataset == "folder" else None,
        keep_aspect=augment.recipe(config.augment).crop_to_evaluate)
    stored = (*info.stored_size, info.input_shape[-1])
    if tuple(dataset["x_test"].shape[1:]) != tuple(stored):
        raise cifar10_input.DataError(
            f"test images are {dataset['x_test'].shape[1:]} but the run was trained on {tuple(stored)}")
    return dataset, cifar10_test.evaluate(model, dataset["x_test"], dataset["y_test"], config.augment, info.norm,
                                          eval_batch_size, output_size=info.input_shape[:2])


def run_test(args):
    model, model_path, run_dir, config, info = load_run(args)
    dataset, result = evaluate_run(model, config, info, args.data_dir, args.eval_batch_size)
    output = args.output or run_dir
    written = cifar10_test.write_predictions(
        result["probabilities"], dataset["y_test"], info.class_names, output, files=dataset.get("files_test"))
    metrics = {k: result[k] for k in ("loss", "accuracy", "error")}
    step = trained_step(run_dir, model_path)
    metrics.update(model_file=os.path.abspath(model_path), trained_step=step, num_images=int(len(dataset["y_test"])),
                   pretrained=config.pretrained)
    fileio.write_json(os.path.join(output, run_folder.TEST_METRICS), metrics)
    # TensorBoard's test/ goes beside the run's train/, or into --output (the run folder is then left alone).
    summaries.write_evaluation_images(output, "test", step, dataset["x_test"], dataset["y_test"],
                                      result["probabilities"], info.class_names)
    summaries.write_test_scalars(output, step, metrics)
    print(f"Test on {len(dataset['y_test'])} images with {model_path}: loss {result['loss']:.4f}, "
          f"accuracy {result['accuracy']:.4f}, error {result['error']:.4f}")
    print(f"Wrote {written['probabilities']} {list(result['probabilities'].shape)}, {written['predictions']} and "
          f"{written['confusion_matrix']}")
    return metrics


def trained_step(run_dir, model_path):
    """The training step a run's saved model was taken at: the last report for latest.keras; for best.keras
    the first report with the highest validation accuracy (it is saved only when the accuracy improves)."""
    path = os.path.join(run_dir, run_folder.METRICS)
    if not os.path.exists(path):
        return 0
    metrics = pd.read_csv(path)
    if not len(metrics):
        return 0
    if os.path.basename(model_path) == run_folder.BEST_MODEL:
        return int(metrics["step"].iloc[int(metrics["val_accuracy"].fillna(-1.0).to_numpy().argmax())])
    return int(metrics["step"].iloc[-1])


def run_predict(args):
    if not args.images:
        raise UsageError("--mode predict needs --images FILE_OR_FOLDER ...")
    model, model_path, _, config, info = load_run(args)
    files = datasets.list_images(args.images)
    images, readable = datasets.read_images(files, info.stored_size, info.input_shape[-1],
                                            augment.recipe(config.augment).crop_to_evaluate)
    probabilities = cifar10_test.evaluate(
        model, images, None, config.augment, info.norm, args.eval_batch_size,
        output_size=info.input_shape[:2])["probabilities"]
    names = info.class_names
    top_k = min(args.top_k, len(names))
    print(f"{model_path} ({config.model}, {len(names)} classes):")
    for path, row in zip(readable, probabilities):
        best = np.argsort(-row)[:top_k]
        print(f"{path}: " + ", ".join(f"{names[i]} {row[i]:.3f}" for i in best))
    if args.output:
        cifar10_test.write_image_predictions(args.output, readable, probabilities, names)
        print(f"Wrote every class's probability for {len(readable)} image(s) to {args.output}")


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


def run_augment_preview(args):
    """Writes Liang's Fig. 5 for any recipe: originals in the first column, augmented versions beside them."""
    config = config_from_flags(args)
    recipe_name = run_config.recipe(config)
    data, _ = load_data(config)
    _, model_size = input_sizes(config)
    # Spread over the training set, so a class-sorted image folder shows several classes.
    picked = np.linspace(0, len(data["x_train"]) - 1, min(args.preview_images, len(data["x_train"]))).astype(int)
    images = tf.gather(data["x_train"], picked).numpy()
    norm = augment.normalization(recipe_name, data["x_train"], resnet.keras_preprocessing(config.model))
    grid = augment.augmentation_grid(images, recipe_name, norm, args.preview_versions, args.seed, model_size)
    output = args.output or f"augment_preview_{args.dataset}_{recipe_name}.png"
    height, width = grid.shape[0] // len(images), grid.shape[1] // (args.preview_versions + 1)
    figure, axis = fileio.pyplot().subplots(figsize=(1.4 * (args.preview_versions + 1), 1.4 * len(images) + 0.6))
    axis.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", interpolation="nearest")
    axis.set_xticks([width * (i + 0.5) for i in range(args.preview_versions + 1)],
                    ["original"] + [f"aug {i + 1}" for i in range(args.preview_versions)])
    axis.set_yticks([height * (i + 0.5) for i in range(len(images))],
                    [data["class_names"][label] for label in data["y_train"][picked]])
    axis.set_title(f"--augment {recipe_name} on {args.dataset} (cf. Liang 2020, Fig. 5)")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fileio.save_figure(figure, output)
    print(f"Wrote {output}: {len(images)} images x (1 original + {args.preview_versions} augmented), --augment {recipe_name}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list_models:
        list_models()
        return 0
    run = {"train": run_train, "test": run_test, "predict": run_predict, "augment_preview": run_augment_preview}
    try:
        run[args.mode](args)
    except (UsageError, *USER_ERRORS) as error:
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
