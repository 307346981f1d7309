"""Train or test a CIFAR-10 classifier: the suite's command line.

  python cifar10_main.py --mode train                 # ResNet-20, He et al.'s recipe
  python cifar10_main.py --mode test --checkpoint runs/resnet20

Defaults follow He et al. 2016a, Section 4.2: batch 128, SGD momentum 0.9,
learning rate 0.1 divided by 10 at 50% and 75% of training (32k and 48k of
64k steps), weight decay 1e-4, 4-pixel pad + random crop + horizontal flip,
per-channel normalisation. Bad input ends with one ``error:`` line and exit
code 2.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import cifar10_input  # noqa: E402
import cifar10_test  # noqa: E402
import datasets  # noqa: E402
import cifar10_train  # noqa: E402
import resnet  # noqa: E402
import run_folder  # noqa: E402

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker")
# Flags passed to the model builder only when given, so each model keeps its own defaults.
MODEL_OPTION_FLAGS = ("shortcut", "preactivation", "stem", "residual_blocks")
USER_ERRORS = (
    resnet.ModelInputError,
    cifar10_input.DataError,
    run_folder.RunFolderError,
    cifar10_test.CheckpointError,
)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) and exits with 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def build_parser():
    parser = OneLineParser(
        prog="cifar10_main.py",
        description="Train or test ResNets on CIFAR-10 (He et al.'s recipe by default).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--mode", choices=("train", "test", "augment_preview"), default="train",
                        help="train: train a model and write a run folder; test: evaluate a run's model on the test set; "
                             "augment_preview: write a PNG grid of originals and augmented versions (Liang's Fig. 5)")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=datasets.DATASETS, default="cifar10",
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
                      help="--dataset folder: resize images to H W (default: the size the model is meant for)")
    augment_help = "; ".join(f"{name}: {text}" for name, (_, text) in cifar10_input.RECIPES.items())
    data.add_argument("--augment", choices=cifar10_input.AUGMENTATIONS, default=None,
                      help=f"preprocessing recipe (normalisation + augmentation), saved with the run so --mode test "
                           f"applies the same. {augment_help}. Default: he for cifar10, none for mnist, imagenet for folder")
    data.add_argument("--preview_images", type=positive_int, default=6, help="augment_preview: rows (images) in the grid")
    data.add_argument("--preview_versions", type=positive_int, default=5,
                      help="augment_preview: augmented versions per image")

    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=tuple(resnet.MODELS), default=None,
                       help="architecture (default resnet20); in test mode, if given, must match the run's")
    model.add_argument("--list_models", action="store_true",
                       help="print every model: name, input shape it is meant for, parameters, paper; then exit")
    model.add_argument("--shortcut", choices=("A", "B"), default=None,
                       help="CIFAR ResNet v1 (resnet20...resnet1202) stride-2 shortcut: A = average pool + zero "
                            "channels (He on CIFAR, Liang; the default), B = 1x1 projection")
    model.add_argument("--preactivation", action="store_true", default=None,
                       help="CIFAR ResNet v1 block as Liang 2020 draws it (BN-ReLU-conv) instead of He 2016a's conv-BN-ReLU")
    model.add_argument("--stem", choices=("auto", "imagenet", "cifar"), default=None,
                       help="ImageNet-family ResNets (resnet18...resnet152): 7x7/2 conv + max-pool, or a 3x3/1 conv "
                            "for small images; auto (the default) picks by input size")
    model.add_argument("--residual_blocks", type=int, default=None,
                       help="jin_cnn: number of residual blocks k after the Conv2D + MaxPooling2D stem (0 = plain CNN)")
    model.add_argument("--weight_decay", type=float, default=1e-4,
                       help="SGD-style weight decay on kernels (gradient += wd * w), He et al.'s 1e-4")

    train = parser.add_argument_group("training")
    train.add_argument("--train_steps", type=positive_int, default=64000, help="optimizer steps in total (He et al.: 64k)")
    train.add_argument("--batch_size", type=positive_int, default=128,
                       help="GLOBAL batch size: summed over all replicas and workers, split evenly among them")
    train.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="sgd uses --momentum")
    train.add_argument("--learning_rate", type=positive_float, default=None,
                       help="initial learning rate (default 0.1, He et al.; 0.01 for lenet5 and alexnet, which "
                            "have no BN in their dense layers and do not train at 0.1)")
    train.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    train.add_argument("--lr_decay_at", type=fraction, nargs="*", default=[0.5, 0.75],
                       help="fractions of --train_steps at which the learning rate is divided (He: 32k/64k, 48k/64k)")
    train.add_argument("--lr_decay_factor", type=positive_float, default=0.1, help="multiplier applied at each decay")
    train.add_argument("--report_freq", type=positive_int, default=500,
                       help="every this many steps: validate, print a line, write TensorBoard summaries, CSV row, checkpoints")
    train.add_argument("--steps_per_execution", type=positive_int, default=1,
                       help="training steps run per tf.function call (less Python overhead; helps small models and GPUs)")
    train.add_argument("--eval_batch_size", type=positive_int, default=500, help="batch size for validation and test")
    train.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling, augmentation and the validation split")
    train.add_argument("--log_dir", default=None, help="run folder (default runs/<model>)")
    train.add_argument("--resume", action="store_true", help="continue the run already in --log_dir from its last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="delete the run already in --log_dir and start afresh")

    dist = parser.add_argument_group("hardware")
    dist.add_argument("--distribution_strategy", choices=STRATEGIES, default="auto",
                      help="auto: MirroredStrategy when GPUs are visible, else the default strategy; multi_worker: "
                           "MultiWorkerMirroredStrategy configured from TF_CONFIG")
    dist.add_argument("--num_gpus", type=int, default=None, help="GPUs to use with mirrored/one_device (default: all visible)")
    dist.add_argument("--mixed_precision", action="store_true",
                      help="mixed_float16 policy with loss scaling; GPU only (ignored with a note on CPU, where it is slower)")

    test = parser.add_argument_group("testing")
    test.add_argument("--checkpoint", default=None, help="run folder (uses its latest.keras) or a .keras file in a run folder")
    test.add_argument("--output", default=None,
                      help="test: folder for test_probabilities.npy, test_predictions.csv, test_metrics.json (default: the "
                           "run folder); augment_preview: the PNG file (default augment_preview_<dataset>_<augment>.png)")
    return parser


def make_strategy(name, num_gpus=None):
    """Builds the tf.distribute strategy; call it before anything else touches TensorFlow's devices."""
    if name == "multi_worker":
        # Must come first: collective ops can only be configured before the
        # runtime initialises, which listing logical devices does.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus is not None:
        if num_gpus < 0 or num_gpus > len(gpus):
            raise cifar10_input.DataError(f"--num_gpus {num_gpus} but {len(gpus)} GPU(s) are visible")
        gpus = gpus[:num_gpus]
    if name == "auto":
        name = "mirrored" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        # Without GPUs, mirror over the logical CPUs (one, unless split with
        # tf.config.set_logical_device_configuration, as the tests do).
        devices = [g.name for g in gpus] or [c.name for c in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)


DEFAULT_AUGMENT = {"cifar10": "he", "mnist": "none", "folder": "imagenet"}


def load_data(args, model_name, seed):
    """The dataset adapted to the model, and the split it validates on."""
    if args.dataset == "folder" and not args.data_dir:
        raise cifar10_input.DataError("--dataset folder needs --data_dir pointing at the image folder")
    split = args.validation_split
    folder_split = args.dataset == "folder"
    dataset = datasets.load_dataset(
        args.dataset, args.data_dir, resnet.MODELS[model_name][1],
        validation_split=(0.2 if split is None else split) if folder_split else 0.0, seed=seed,
        image_size=args.image_size)
    data = {"class_names": dataset["class_names"], "source": dataset["source"]}
    if split and not folder_split:
        (data["x_train"], data["y_train"]), (data["x_val"], data["y_val"]) = cifar10_input.split_validation(
            dataset["x_train"], dataset["y_train"], split, seed)
        data["validation"] = f"{len(data['x_val'])} images held out of the training set (--validation_split {split}, seed {seed})"
    else:
        data.update(x_train=dataset["x_train"], y_train=dataset["y_train"], x_val=dataset["x_test"], y_val=dataset["y_test"])
        data["validation"] = dataset.get("test_description", f"the test set ({len(data['x_val'])} images)")
    return data, dataset


def run_train(args):
    model_name = args.model or "resnet20"
    if args.report_freq > args.train_steps:
        raise cifar10_input.DataError(f"--report_freq {args.report_freq} is larger than --train_steps {args.train_steps}")
    strategy = make_strategy(args.distribution_strategy, args.num_gpus)
    mixed = args.mixed_precision and bool(tf.config.list_physical_devices("GPU"))
    if args.mixed_precision and not mixed:
        print("note: no GPU visible, --mixed_precision ignored (float16 is slower on CPU)")
    if mixed:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    if args.batch_size % strategy.num_replicas_in_sync:
        raise cifar10_input.DataError(
            f"--batch_size {args.batch_size} does not divide among {strategy.num_replicas_in_sync} replicas")
    augment = args.augment or DEFAULT_AUGMENT[args.dataset]
    data, dataset = load_data(args, model_name, args.seed)
    log_dir = args.log_dir or os.path.join("runs", model_name)
    model_options = {k: getattr(args, k) for k in MODEL_OPTION_FLAGS if getattr(args, k) is not None}
    config = {
        "mode": "train",
        "dataset": args.dataset,
        "data_dir": dataset["source"],
        "validation_split": args.validation_split,
        "image_size": list(dataset["x_train"].shape[1:3]),
        "model": model_name,
        "model_options": model_options,
        "train_steps": args.train_steps,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "learning_rate": args.learning_rate or resnet.default_learning_rate(model_name),
        "momentum": args.momentum,
        "lr_decay_at": list(args.lr_decay_at),
        "lr_decay_factor": args.lr_decay_factor,
        "weight_decay": args.weight_decay,
        "augment": augment,
        "report_freq": args.report_freq,
        "steps_per_execution": args.steps_per_execution,
        "eval_batch_size": args.eval_batch_size,
        "seed": args.seed,
        "log_dir": log_dir,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "distribution_strategy": args.distribution_strategy,
        "num_replicas": strategy.num_replicas_in_sync,
        "mixed_precision": mixed,
    }
    print(f"Training {model_name} on {args.dataset} from {dataset['source']}: {len(data['x_train'])} training images "
          f"{list(data['x_train'].shape[1:])}, augment {augment}, "
          f"validating on {data['validation']}; {strategy.num_replicas_in_sync} replica(s), global batch {args.batch_size}; "
          f"run folder {log_dir}")
    result = cifar10_train.train(config, data, strategy)
    print(f"Done: val accuracy {result.get('val_accuracy', float('nan')):.4f} at step {result.get('step')}, "
          f"best {result['best_val_accuracy']:.4f}. Test with: python cifar10_main.py --mode test --checkpoint {log_dir}")


def run_test(args):
    if args.checkpoint is None:
        raise cifar10_test.CheckpointError("--mode test needs --checkpoint RUN_FOLDER_OR_.keras")
    model_path, run_dir, config = cifar10_test.resolve_checkpoint(args.checkpoint)
    if args.model and args.model != config.get("model"):
        raise cifar10_test.CheckpointError(
            f"--checkpoint {args.checkpoint} holds a {config.get('model')} run, not --model {args.model}")
    model = cifar10_test.load_model(model_path)
    dataset = datasets.load_dataset(
        config.get("dataset", "cifar10"), args.data_dir or config["data_dir"], config["input_shape"],
        validation_split=config.get("validation_split") or 0.2, seed=config.get("seed", 0),
        image_size=config.get("image_size"))
    expected = (None, *config["input_shape"])
    if tuple(model.input_shape) != expected:
        raise cifar10_test.CheckpointError(f"{model_path} takes inputs {model.input_shape}, the run's config says {expected}")
    if tuple(dataset["x_test"].shape[1:]) != tuple(config["input_shape"]):
        raise cifar10_input.DataError(
            f"test images are {dataset['x_test'].shape[1:]} but the run was trained on {tuple(config['input_shape'])}")
    preprocessing = config["preprocessing"]
    result = cifar10_test.evaluate(model, dataset["x_test"], dataset["y_test"], preprocessing["mean"], preprocessing["std"],
                                   args.eval_batch_size, preprocessing["augment"])
    output = args.output or run_dir
    npy_path, csv_path = cifar10_test.write_predictions(
        result["probabilities"], dataset["y_test"], config["class_names"], output)
    metrics = {k: result[k] for k in ("loss", "accuracy", "error")}
    metrics.update(model_file=os.path.abspath(model_path), num_images=int(len(dataset["y_test"])))
    run_folder.write_json(os.path.join(output, "test_metrics.json"), metrics)
    print(f"Test on {len(dataset['y_test'])} images with {model_path}: loss {result['loss']:.4f}, "
          f"accuracy {result['accuracy']:.4f}, error {result['error']:.4f}")
    print(f"Wrote {npy_path} {list(result['probabilities'].shape)} and {csv_path}")


def list_models():
    """One line per registered model, with its parameters counted at the shape it is meant for."""
    print(f"{'name':<28s}{'input':<16s}{'classes':>8s}{'params':>13s}  paper")
    for name, (_, shape, paper) in resnet.MODELS.items():
        classes = 1000 if shape[0] >= 224 else 10
        params = "not built" if name == "resnet1202" else f"{resnet.trainable_params(resnet.build_model(name, shape, classes)):,}"
        print(f"{name:<28s}{'x'.join(map(str, shape)):<16s}{classes:>8d}{params:>13s}  {paper}")
    print("(resnet1202 is not built here: it takes a minute; He et al. give 19.4M.)")


def run_augment_preview(args):
    """Writes Liang's Fig. 5 for any recipe: originals in the first column, augmented versions beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    augment = args.augment or DEFAULT_AUGMENT[args.dataset]
    model_name = args.model or "resnet20"
    data, _ = load_data(args, model_name, args.seed)
    # Spread over the training set, so a class-sorted image folder shows several classes.
    picked = np.linspace(0, len(data["x_train"]) - 1, min(args.preview_images, len(data["x_train"]))).astype(int)
    images = data["x_train"][picked]
    mean, std = cifar10_input.normalization(augment, data["x_train"])
    grid = cifar10_input.augmentation_grid(images, augment, mean, std, args.preview_versions, args.seed)
    output = args.output or f"augment_preview_{args.dataset}_{augment}.png"
    height, width = images.shape[1:3]
    figure, axis = plt.subplots(figsize=(1.4 * (args.preview_versions + 1), 1.4 * len(images) + 0.6))
    axis.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", interpolation="nearest")
    axis.set_xticks([width * (i + 0.5) for i in range(args.preview_versions + 1)],
                    ["original"] + [f"aug {i + 1}" for i in range(args.preview_versions)])
    axis.set_yticks([height * (i + 0.5) for i in range(len(images))],
                    [data["class_names"][label] for label in data["y_train"][picked]])
    axis.set_title(f"--augment {augment} on {args.dataset} (cf. Liang 2020, Fig. 5)")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    run_folder.atomic_write(output, lambda temp: figure.savefig(temp, dpi=120))
    plt.close(figure)
    print(f"Wrote {output}: {len(images)} images x (1 original + {args.preview_versions} augmented), --augment {augment}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list_models:
        list_models()
        return 0
    try:
        if args.mode == "train":
            run_train(args)
        elif args.mode == "test":
            run_test(args)
        else:
            run_augment_preview(args)
    except USER_ERRORS as error:
        print(f"cifar10_main.py: error: {error}", file=sys.stderr)
        return 2
    except cifar10_train.TrainingError as error:
        print(f"cifar10_main.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
