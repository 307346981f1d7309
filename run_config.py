"""The run contract: one typed, frozen record of every setting of a training run.

``RunConfig`` is what a user asks for (the CLI's flags, an experiment's run, a test's
tiny run); ``resolve`` fills in, once, everything that depends on other settings or on
the data (steps from epochs, decay points, the default recipe and split, the fine-tuning
rate, the save frequency, the precision). The engine reads the resolved record and never
changes it. ``DataInfo`` is what the engine learned from the data (classes, sizes,
normalisation statistics). Both are saved together in the run's ``config.json``; loading
it gives the same records back, so ``--mode test``, ``--mode predict`` and resuming use
exactly what trained. ``command`` prints a config as the ``cifar10_main.py`` command
that reproduces it.

Each setting is declared once, on its field (``setting``): default, help, flag type or
choices, and role (part of a run's identity, resumable across, shown in HParams); the
command line's flags, the value checks and the role sets are generated from that.
"""

import argparse
import dataclasses
import functools
import json
import math
import os
from typing import Optional, Union

# 5: lr_warmup_steps and lr_warmup_rate recorded (version 4 and before: no warm-up);
# 4: weight_decay_scope and conv_padding recorded (version 3 and before: kernels, same);
# 3: the run/data layout; 2: the flat dict of 2026-11-23 with option A renamed; 1 (no version): option "A" was the
# average pool
VERSION = 5
DEFAULT_CONV_PADDING = "same"  # TensorFlow's, what every run before version 4 used
DATASETS = ("cifar10", "mnist", "folder")  # --dataset; datasets.load_dataset reads each
DEFAULT_AUGMENT = {"cifar10": "he", "mnist": "none", "folder": "imagenet"}
DEFAULT_TRAIN_STEPS = 64000  # He et al. 2016a: stop at 64k iterations
FOLDER_TEST_SPLIT = 0.2  # an image folder without train/ and test/: Yuan's 8:2 split
CIFAR_RESNET_V1 = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202")


class ConfigError(ValueError):
    """Settings that do not fit together, or a config.json that cannot be read; one line says which."""


# ----------------------------------------------------------------------------
# How a setting is declared: its default, help, flag and role, once, beside its field


def _parsed(text, convert, valid, expected, out_of_range=None):
    """``convert(text)`` if ``valid``, else argparse's error "must be <expected>, got <text>" (``out_of_range``:
    its words for a number outside the range)."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"must be {out_of_range or expected}, got {text}")
    return value


def positive_int(text):
    return _parsed(text, int, lambda value: value > 0, "a positive integer")


def non_negative_int(text):
    return _parsed(text, int, lambda value: value >= 0, "an integer >= 0")


def positive_float(text):
    return _parsed(text, float, lambda value: value > 0 and math.isfinite(value), "a positive number")


def fraction(text):
    return _parsed(text, float, lambda value: 0.0 <= value < 1.0, "a number in [0, 1)", "in [0, 1)")


def auto_or_positive_int(text):
    return "auto" if text == "auto" else positive_int(text)


def setting(default, group, help, *, identity=True, resumable=True, hparam=False, flag_default=dataclasses.MISSING,
            **flag):
    """A ``RunConfig`` field with everything else about it: ``group`` and ``help`` (a string, or a function
    returning one) for ``--help``; ``flag``: argparse's type, choices (or a function returning them),
    nargs, metavar, action, which also check values given from Python (``check``); ``identity`` False for a
    setting that changes how a run executes, not what it computes; ``resumable`` False where a checkpoint
    cannot carry over a change; ``hparam`` for TensorBoard's HParams dashboard; ``flag_default`` where the
    flag's default differs from the field's (None: "not given", so a test keeps the run's own)."""
    metadata = {"group": group, "help": help, "identity": identity, "resumable": resumable, "hparam": hparam,
                "flag": flag}
    if flag_default is not dataclasses.MISSING:
        metadata["flag_default"] = flag_default
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option(group, help, **flag):
    """A model builder option with a flag of its own (given: passed on; not given: the builder's default)."""
    return {"group": group, "help": help, "flag": flag}


def _resnet_names(table):
    """The names in one of resnet.py's tables (MODELS, SHORTCUTS, ...): choices read when a parser is built,
    so that this module imports no TensorFlow."""
    import resnet
    return tuple(getattr(resnet, table))


def _recipe_names():
    import augment
    return tuple(augment.RECIPES)


def _augment_help():
    import augment
    recipes = "; ".join(f"{name} ({recipe.paper}): {recipe.summary}" for name, recipe in augment.RECIPES.items())
    return (f"preprocessing recipe (normalisation + augmentation), saved with the run so --mode test applies the "
            f"same. {recipes}. Default: he for cifar10, none for mnist, imagenet for folder. keras.applications "
            f"models (*_imagenet) always use their own preprocess_input")


PRECISIONS = ("auto", "off", "float16", "bfloat16")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker")

# The builder options that are flags of their own, in --help's order; booleans are flags without a value.
MODEL_OPTIONS = {
    "shortcut": option(
        "model", "CIFAR ResNet v1 (resnet20...resnet1202) stride-2 shortcut: A = He et al.'s option A, stride-2 "
        "subsampling + zero channels (the default); A_avgpool = Liang 2020's 2x2 average pool + zero channels; "
        "B = 1x1 projection", choices=functools.partial(_resnet_names, "SHORTCUTS")),
    "preactivation": option(
        "model", "CIFAR ResNet v1 block as Liang 2020 draws it (BN-ReLU-conv) instead of He 2016a's conv-BN-ReLU",
        action="store_true"),
    "stem": option(
        "model", "ImageNet-family ResNets (resnet18...resnet152): 7x7/2 conv + max-pool, or a 3x3/1 conv for small "
        "images; auto (the default) picks by input size", choices=("auto", "imagenet", "cifar")),
    "residual_blocks": option(
        "model", "jin_cnn: number of residual blocks k after the Conv2D + MaxPooling2D stem (default 0: the plain CNN)",
        type=int),
    "conv_padding": option(
        "model", "CIFAR and ImageNet ResNets: where a stride-2 convolution pads. same = TensorFlow's (bottom and right "
        "only, so its output sits one pixel off option A's subsampled shortcut; the default, as every run before "
        "2026-12-04); symmetric = one pixel on every side, as Caffe and PyTorch (He's and akamaster's code)",
        choices=functools.partial(_resnet_names, "CONV_PADDINGS")),
    "weights": option(
        "transfer", "imagenet (downloaded by Keras; the default for *_imagenet models), none (random initialisation: "
        "labelled as not a reproduction), or a local weights file of the backbone without its top"),
    "freeze_backbone": option(
        "transfer", "train only the new head; the backbone's batch-norm layers run in inference mode",
        action="store_true"),
}
OPTION_FLAGS = tuple(MODEL_OPTIONS)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run. ``None`` means "resolved from the others" (see ``resolve``).

    Each field declares its flag too (``setting``): ``cifar10_main.py``'s flags are generated from these.
    """

    # data
    dataset: str = setting(
        "cifar10", "data", "cifar10; mnist (the four official idx .gz files); folder (one subfolder per class, or "
        "train/ and test/ folders of them, e.g. flower_photos)", resumable=False, hparam=True, choices=DATASETS)
    data_dir: Optional[str] = setting(  # resolved: the file or folder read
        None, "data", "cifar10: folder holding cifar-10-python.tar.gz (or any .tar.gz of cifar-10-batches-py/), the "
        "extracted cifar-10-batches-py/ or cifar-10-batches-bin/, or the archive itself; mnist: the folder of idx "
        "files; missing files are downloaded there (default under ~/.keras/datasets). folder: the image folder "
        "(required). In test mode defaults to the run's", identity=False)
    validation_split: Optional[float] = setting(
        None, "data", "fraction of the training images held out for validation (He et al. hold out 0.1); 0 "
        "validates on the test set, as Liang's curves do (default 0; for --dataset folder without train/ and test/ "
        "it is the test split instead, default 0.2 as Yuan's 8:2)", type=fraction)
    image_size: Optional[tuple] = setting(
        None, "data", "--dataset folder: the model's input size (default: the size the model is meant for). With "
        "--augment imagenet images are kept at size/0.875 (256 for 224) and cropped to it", type=positive_int,
        nargs=2, metavar=("H", "W"))
    augment: Optional[str] = setting(None, "data", _augment_help, hparam=True, choices=_recipe_names)
    # model
    model: str = setting(
        "resnet20", "model", "architecture (default resnet20): one of the names --list_models prints; in test mode, "
        "if given, must match the run's", resumable=False, hparam=True, flag_default=None,
        choices=functools.partial(_resnet_names, "MODELS"), metavar="NAME")
    model_options: dict = setting({}, "model", "", resumable=False, hparam=True)  # flags: MODEL_OPTIONS
    weight_decay: float = setting(1e-4, "model", "SGD-style weight decay (gradient += wd * w), He et al.'s 1e-4",
                                  hparam=True, type=float)
    weight_decay_scope: str = setting(
        "kernels", "model", "what --weight_decay decays: kernels = the conv and dense kernels only (every run before "
        "2026-12-04); all = every trainable parameter, batch-norm scales and offsets and biases included, as Caffe, "
        "fb.resnet.torch and akamaster's PyTorch code do", hparam=True,
        choices=functools.partial(_resnet_names, "WEIGHT_DECAY_SCOPES"))
    # optimisation
    train_steps: Optional[int] = setting(
        None, "training", f"optimizer steps in total (default {DEFAULT_TRAIN_STEPS}, He et al.'s 64k)", hparam=True,
        type=positive_int)
    epochs: Optional[float] = setting(
        None, "training", "train for this many passes over the training images instead of --train_steps",
        type=positive_float)
    batch_size: int = setting(
        128, "training", "GLOBAL batch size: summed over all replicas and workers, split evenly among them",
        hparam=True, type=positive_int)
    optimizer: str = setting("sgd", "training", "sgd uses --momentum", resumable=False, hparam=True,
                             choices=("sgd", "adam"))
    learning_rate: Optional[float] = setting(
        None, "training", "initial learning rate (default 0.1, He et al.; 0.01 for lenet5 and alexnet, which have no "
        "BN in their dense layers and do not train at 0.1)", hparam=True, type=positive_float)
    momentum: float = setting(0.9, "training", "SGD momentum", type=float)
    lr_decay_at: Optional[tuple] = setting(
        None, "training", "fractions of the training steps at which the learning rate is divided (default 0.5 0.75 "
        "for sgd, He's 32k/64k and 48k/64k; none for adam)", hparam=True, type=fraction, nargs="*")
    lr_decay_factor: float = setting(0.1, "training", "multiplier applied at each decay", type=positive_float)
    lr_schedule_steps: Optional[int] = setting(
        None, "training", "the steps --lr_decay_at's fractions refer to (default: --train_steps): stop part-way "
        "through a longer schedule, e.g. --train_steps 9775 --lr_schedule_steps 80000", hparam=True,
        type=positive_int)
    lr_warmup_steps: Optional[int] = setting(
        None, "training", "train the first N steps at --lr_warmup_rate before the schedule's rate (default 400 for "
        "resnet110 and resnet1202: He et al. warmed ResNet-110 up at 0.01 until its training error was below 80%%, "
        "about 400 steps; 0, none, for the other models)", hparam=True, type=non_negative_int)
    lr_warmup_rate: Optional[float] = setting(
        None, "training", "the warm-up's learning rate (default --learning_rate / 10: He's 0.01)", type=positive_float)
    # second stage: fine-tuning the top of a frozen keras.applications backbone
    fine_tune_at: Optional[str] = setting(
        None, "transfer", "after the --train_steps/--epochs of head training, unfreeze the backbone from this layer "
        "(a name, an index, or a fraction such as 0.1 = its top 10%%) for a second stage", resumable=False)
    fine_tune_steps: Optional[int] = setting(
        None, "transfer", "steps of the fine-tuning stage (default: as many as the first stage)", type=positive_int)
    fine_tune_epochs: Optional[float] = setting(
        None, "transfer", "length of the fine-tuning stage in epochs (instead of --fine_tune_steps)",
        type=positive_float)
    fine_tune_learning_rate: Optional[float] = setting(
        None, "transfer", "constant learning rate of the fine-tuning stage (default: --learning_rate / 10)",
        type=positive_float)
    # reporting and reproducibility
    report_freq: int = setting(
        500, "training", "every this many steps: validate, print a line, write TensorBoard summaries, CSV rows, "
        "latest.keras / best.keras and a checkpoint", type=positive_int)
    report_at_start: bool = setting(
        False, "training", "also validate and report at step 0, before the first update (Liang's starting values)",
        action="store_true")
    save_freq: Optional[int] = setting(
        None, "training", "checkpoint every this many steps (default: --report_freq); an interrupted run, started "
        "again with the same command, loses at most this many steps", identity=False, type=positive_int)
    eval_batch_size: int = setting(500, "training", "batch size for validation and test", identity=False,
                                   type=positive_int)
    seed: int = setting(0, "training", "seeds weights, shuffling, augmentation and the validation split", hparam=True,
                        type=int)
    deterministic: bool = setting(
        False, "training", "TF op determinism: with the same --seed two runs on one machine write identical "
        "metrics.csv files (a little slower)", identity=False, action="store_true")
    log_dir: Optional[str] = setting(None, "training", "run folder (default runs/<model>)", identity=False)
    # hardware and speed
    distribution_strategy: str = setting(
        "auto", "hardware", "auto: MirroredStrategy when GPUs are visible, else the default strategy; multi_worker: "
        "MultiWorkerMirroredStrategy configured from TF_CONFIG", identity=False, choices=STRATEGIES)
    num_gpus: Optional[int] = setting(None, "hardware", "use the first N GPUs (default: all visible; 0: the CPU only)",
                                      identity=False, type=int)
    mixed_precision: str = setting(  # resolved: off, float16 or bfloat16
        "auto", "hardware", "compute in 16 bits, weights in 32: float16 (GPU, with loss scaling) or bfloat16 (GPUs, "
        "and CPUs with AVX512_BF16/AMX: 1.06-2.56x faster on a 2-core such CPU, see benchmarks/README.md). auto (the "
        "default): the faster of those that can pay here, timed once per model, batch and machine and cached "
        "(README: Speed)", identity=False, hparam=True, choices=PRECISIONS)
    jit_compile: str = setting(
        "auto", "hardware", "compile the training step with XLA. Helps on GPUs for many models; made ResNet-20 2x "
        "slower on a CPU. auto (the default): off", identity=False, choices=("auto", "on", "off"))
    steps_per_execution: Union[int, str] = setting(
        "auto", "hardware", "training steps per tf.function call: more saves Python overhead for small models "
        "(LeNet-5, MNIST). auto (the default): sized from the measured step time to about 0.25 s per call",
        identity=False, type=auto_or_positive_int)
    profile_steps: Optional[tuple] = setting(
        None, "hardware", "trace training steps FIRST to LAST with the TensorFlow profiler into the run folder's "
        "train/ (TensorBoard's Profile tab: where each step's time goes). Default: none", identity=False,
        type=positive_int, nargs=2, metavar=("FIRST", "LAST"))

    def __post_init__(self):
        # JSON and argparse give lists for the settings of several values; the record holds tuples, so equal
        # settings compare equal.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if "nargs" in field.metadata["flag"] and value is not None and not isinstance(value, tuple):
                object.__setattr__(self, field.name, tuple(value))

    @property
    def stages_steps(self):
        """Total optimizer steps over both stages (resolved configs only)."""
        return self.train_steps + (self.fine_tune_steps or 0)

    @property
    def pretrained(self):
        """True when a keras.applications backbone starts from pretrained weights."""
        return self.model_options.get("weights", "none") not in ("none", None)


def _declarations():
    """(name, declaration, field) of every setting in declaration order, the model options (field None) where
    ``model_options`` stands."""
    for field in dataclasses.fields(RunConfig):
        if field.name == "model_options":
            yield from ((name, declaration, None) for name, declaration in MODEL_OPTIONS.items())
        else:
            yield field.name, field.metadata, field


def _resolved(value):
    """A declared help text or choices, or the function that gives them when a parser is built."""
    return value() if callable(value) else value


def flag_arguments():
    """(group, name, argparse keyword arguments) of every setting's flag, in declaration order: what
    ``cifar10_main.build_parser`` adds. A model option's flag defaults to None (not given: the builder's own)."""
    for name, declaration, field in _declarations():
        default = None if field is None else declaration.get("flag_default", field.default)
        kwargs = {key: (_resolved(value) if key == "choices" else value) for key, value in declaration["flag"].items()}
        yield declaration["group"], name, dict(kwargs, default=default, help=_resolved(declaration["help"]))


def _names(role):
    return frozenset(field.name for field in dataclasses.fields(RunConfig) if not field.metadata[role])


# Settings that change how a run is executed or where it reads and writes, not what it computes:
# a folder whose run differs from the command only in these holds the same run.
NOT_IDENTITY = _names("identity")
# Settings whose change gives the model or optimizer other variables: --resume cannot carry a checkpoint across them.
CANNOT_RESUME = _names("resumable")


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a run learned from its data; saved beside the settings so testing repeats it."""

    class_names: tuple  # label -> class name
    stored_size: tuple  # (H, W) the images are kept at in memory
    input_shape: tuple  # (H, W, C) the model takes
    norm: dict  # the recipe's normalisation (cifar10_input.normalization)
    validation: str  # which images validate, in words
    num_train_images: int

    def __post_init__(self):
        for name in ("class_names", "stored_size", "input_shape"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def num_classes(self):
        return len(self.class_names)


def recipe(config):
    """The preprocessing recipe a run uses: its own, or its dataset's default."""
    return config.augment or DEFAULT_AUGMENT[config.dataset]


def default_split(config):
    """The validation split: 0 (validate on the test set) unless given; an image folder's test split is 8:2."""
    if config.validation_split is not None:
        return config.validation_split
    return FOLDER_TEST_SPLIT if config.dataset == "folder" else 0.0


def steps_for_epochs(epochs, num_train_images, batch_size):
    """Steps of `batch_size` images that cover `epochs` passes over the training set (the last one partly)."""
    return math.ceil(epochs * num_train_images / batch_size)


def check_values(config):
    """Each value against its flag's declaration (choices, type), so a config built in Python is checked as
    the command line's flags are."""
    for name, declaration, field in _declarations():
        value = config.model_options.get(name) if field is None else getattr(config, name)
        if value is None:
            continue
        flag = declaration["flag"]
        choices = _resolved(flag.get("choices"))
        for one in (value if "nargs" in flag else (value,)):
            if choices is not None and one not in choices:
                raise ConfigError(f"--{name} {one!r}: choose one of {', '.join(map(str, choices))}")
            if "type" in flag:
                try:
                    flag["type"](str(one))
                except (argparse.ArgumentTypeError, ValueError) as error:
                    raise ConfigError(f"--{name} {one!r}: {error}") from None


def check(config):
    """Combinations of settings that cannot run, each a ConfigError naming the flags (before any data is read)."""
    import resnet

    if config.model not in resnet.MODELS:
        raise ConfigError(f"unknown model {config.model!r}; choose one of: {', '.join(resnet.MODELS)}")
    transfer = resnet.is_transfer(config.model)
    if config.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {config.dataset!r}; choose one of: {', '.join(DATASETS)}")
    check_values(config)
    if config.train_steps and config.epochs:
        raise ConfigError("give --train_steps or --epochs, not both")
    if config.train_steps and config.report_freq > config.train_steps:
        raise ConfigError(f"--report_freq {config.report_freq} is larger than --train_steps {config.train_steps}")
    if config.image_size and config.dataset != "folder":
        raise ConfigError("--image_size applies to --dataset folder only")
    given = [name for name in ("weights", "freeze_backbone") if name in config.model_options]
    if not transfer and (given or config.fine_tune_at is not None):
        flag = given[0] if given else "fine_tune_at"
        raise ConfigError(f"--{flag} applies to the keras.applications models (*_imagenet), not {config.model}")
    unknown = sorted(set(config.model_options) - set(resnet.MODELS[config.model].options))
    if unknown:
        raise ConfigError(f"model {config.model} does not take option(s) {unknown}")
    if config.fine_tune_at is None and (config.fine_tune_steps or config.fine_tune_epochs
                                        or config.fine_tune_learning_rate):
        raise ConfigError("--fine_tune_steps/--fine_tune_epochs/--fine_tune_learning_rate need --fine_tune_at")
    if config.fine_tune_at is not None and not config.model_options.get("freeze_backbone"):
        raise ConfigError("--fine_tune_at unfreezes part of a frozen backbone: it needs --freeze_backbone")
    if config.fine_tune_steps and config.fine_tune_epochs:
        raise ConfigError("give --fine_tune_steps or --fine_tune_epochs, not both")
    if config.profile_steps is not None and not 0 < config.profile_steps[0] <= config.profile_steps[1]:
        raise ConfigError(f"--profile_steps {' '.join(map(str, config.profile_steps))}: give FIRST LAST with "
                          "1 <= FIRST <= LAST")
    if config.deterministic and config.jit_compile == "on":
        raise ConfigError("--deterministic and --jit_compile on do not mix: XLA has no deterministic max-pooling "
                          "gradient (TF 2.21)")


def resolve(config, num_train_images, replicas=1, data_source=None):
    """The config with every derived setting filled in; raises ConfigError for settings that cannot run.

    ``num_train_images`` sizes epochs: a resolved config holds steps only (``epochs`` and
    ``fine_tune_epochs`` become ``train_steps`` and ``fine_tune_steps``), so its command line
    trains the same steps on any copy of the data. ``replicas`` must divide the batch;
    ``data_source`` (the file or folder the loader read) replaces ``data_dir``. A resolved
    config resolves to itself.
    """
    import resnet

    check(config)
    transfer = resnet.is_transfer(config.model)
    train_steps = config.train_steps or (
        steps_for_epochs(config.epochs, num_train_images, config.batch_size) if config.epochs else DEFAULT_TRAIN_STEPS)
    if config.report_freq > train_steps:
        raise ConfigError(f"--report_freq {config.report_freq} is larger than the {train_steps} training steps")
    if config.batch_size % replicas:
        raise ConfigError(f"--batch_size {config.batch_size} does not divide among {replicas} replicas")
    if config.batch_size // replicas > num_train_images:
        raise ConfigError(f"--batch_size {config.batch_size} is larger than the {num_train_images} training images")
    learning_rate = config.learning_rate or resnet.default_learning_rate(config.model)
    warmup_steps, warmup_rate = _warmup(config, train_steps, learning_rate)
    fine_tune_steps = fine_tune_rate = None
    if config.fine_tune_at is not None:
        fine_tune_steps = config.fine_tune_steps or (
            steps_for_epochs(config.fine_tune_epochs, num_train_images, config.batch_size) if config.fine_tune_epochs
            else train_steps)
        fine_tune_rate = config.fine_tune_learning_rate or learning_rate / 10
    if config.profile_steps and config.profile_steps[1] > train_steps + (fine_tune_steps or 0):
        raise ConfigError(f"--profile_steps ends at step {config.profile_steps[1]}, after the run's last step")
    options = dict(config.model_options)
    if transfer:
        options.setdefault("weights", "imagenet")
    if "conv_padding" in resnet.MODELS[config.model].options:  # recorded, so a later default cannot change the run
        options.setdefault("conv_padding", DEFAULT_CONV_PADDING)
    precision = resolve_precision(config.mixed_precision)
    if precision == "float16" and config.jit_compile == "on" and replicas > 1:
        raise ConfigError(f"--jit_compile on with float16 on {replicas} replicas is refused: under XLA, TensorFlow "
                          "lets each GPU decide on its own whether to skip an overflowing step, around a collective "
                          "(a hang); use --jit_compile off, or --mixed_precision bfloat16 (compute capability 8.0+)")
    image_size = None
    if config.dataset == "folder":
        image_size = config.image_size or tuple(resnet.MODELS[config.model].input_shape[:2])
    return dataclasses.replace(
        config,
        data_dir=data_source or config.data_dir,
        validation_split=default_split(config),
        image_size=image_size,
        augment=recipe(config),
        model_options=options,
        train_steps=train_steps,
        epochs=None,
        learning_rate=learning_rate,
        lr_decay_at=_decay_at(config),
        lr_warmup_steps=warmup_steps,
        lr_warmup_rate=warmup_rate,
        fine_tune_steps=fine_tune_steps,
        fine_tune_epochs=None,
        fine_tune_learning_rate=fine_tune_rate,
        save_freq=config.save_freq or config.report_freq,
        log_dir=config.log_dir or os.path.join("runs", config.model),
        mixed_precision=precision,
        jit_compile="on" if config.jit_compile == "on" else "off",
    )


def resolve_precision(requested):
    """``hardware.resolve_mixed_precision``, its refusals (float16 without a GPU, bfloat16 under an
    ONEDNN_MAX_CPU_ISA cap) as ConfigError: one line for the user."""
    import hardware  # imports TensorFlow: only where a run or a plan is about to start

    try:
        return hardware.resolve_mixed_precision(requested)
    except ValueError as error:
        raise ConfigError(str(error)) from None


# ----------------------------------------------------------------------------
# config.json: the settings and the data facts, and the older flat layouts


def decay_steps(fractions, length):
    """The steps at which the rate is divided: ``fractions`` of a schedule of ``length`` steps."""
    return [int(round(f * length)) for f in fractions]


def _decay_at(config):
    """He's 50% and 75% for SGD, no decay for Adam, unless given."""
    if config.lr_decay_at is not None:
        return config.lr_decay_at
    return (0.5, 0.75) if config.optimizer == "sgd" else ()


def _warmup(config, train_steps, learning_rate):
    """(steps, rate) of the warm-up: the model's default steps unless given, at a tenth of the rate unless given;
    it must end before the schedule's first decay."""
    import resnet

    steps = config.lr_warmup_steps if config.lr_warmup_steps is not None else resnet.default_warmup_steps(config.model)
    if not steps:
        if config.lr_warmup_rate is not None:
            raise ConfigError(f"--lr_warmup_rate needs a warm-up: --lr_warmup_steps is 0 for {config.model}")
        return 0, None
    end = min(decay_steps(_decay_at(config), config.lr_schedule_steps or train_steps) + [train_steps])
    if steps >= end:
        given = "" if config.lr_warmup_steps is not None else f" ({config.model}'s default, He et al.'s warm-up)"
        raise ConfigError(f"--lr_warmup_steps {steps}{given} does not end before step {end}, the learning rate's "
                          "first decay or the run's end; give fewer warm-up steps (0 for none)")
    return steps, config.lr_warmup_rate or learning_rate / 10


def to_json(config, info, sessions=()):
    """The dict config.json holds: ``{"config_version", "run": settings, "data": what was learned, "sessions"}``.

    ``sessions`` (provenance.py) say which code, machine and data each start or resume of the run used.
    """
    return {"config_version": VERSION, "run": dataclasses.asdict(config), "data": dataclasses.asdict(info),
            "sessions": list(sessions)}


def from_json(saved):
    """(RunConfig, DataInfo or None) from a config.json dict of any version; ConfigError if it is not one."""
    if not isinstance(saved, dict):
        raise ConfigError("config.json does not hold a JSON object")
    version = saved.get("config_version", 1)
    if version in (3, 4, VERSION):
        run, data = saved.get("run"), saved.get("data")
    elif version in (1, 2) and "model" in saved:
        run, data = _from_flat(saved, version)
    else:
        raise ConfigError(f"config.json has config_version {version}; this code reads 1 to {VERSION}")
    if version < 4 and isinstance(run, dict):
        run = _before_version_4(run)
    if version < 5 and isinstance(run, dict):
        run = dict(run, lr_warmup_steps=0)  # trained with no warm-up
    fields = {field.name for field in dataclasses.fields(RunConfig)}
    try:
        unknown = set(run) - fields
        if unknown:
            raise ConfigError(f"config.json has settings this code does not know: {', '.join(sorted(unknown))}")
        return RunConfig(**run), (DataInfo(**data) if data else None)
    except TypeError as error:
        raise ConfigError(f"config.json is incomplete or malformed ({error})") from None


def _before_version_4(run):
    """A run saved before weight_decay_scope and conv_padding were recorded: kernel decay, TensorFlow's padding."""
    import resnet

    run = dict(run, weight_decay_scope=run.get("weight_decay_scope", "kernels"))
    spec = resnet.MODELS.get(run.get("model"))
    if spec is not None and "conv_padding" in spec.options:
        run["model_options"] = dict(run.get("model_options") or {})
        run["model_options"].setdefault("conv_padding", DEFAULT_CONV_PADDING)
    return run


def _from_flat(saved, version):
    """The flat dict the suite wrote before ``RunConfig`` (versions 1 and 2) -> (settings, data facts)."""
    fields = {field.name for field in dataclasses.fields(RunConfig)}
    run = {key: value for key, value in saved.items() if key in fields}
    run["epochs"] = None  # a flat config's train_steps were already resolved from its epochs
    run["jit_compile"] = "on" if saved.get("jit_compile") in (True, "on") else "off"
    run["image_size"] = saved["input_shape"][:2] if saved.get("dataset") == "folder" else None
    options = dict(saved.get("model_options") or {})
    if version == 1 and saved["model"] in CIFAR_RESNET_V1 and options.get("shortcut", "A") == "A":
        options["shortcut"] = "A_avgpool"  # what "A" (and the default) built before option A was named right
    run["model_options"] = options
    data = None
    if "preprocessing" in saved:
        data = {"class_names": saved["class_names"], "stored_size": saved["image_size"],
                "input_shape": saved["input_shape"], "norm": saved["preprocessing"]["norm"],
                "validation": saved.get("validation", ""), "num_train_images": saved.get("num_train_images", 0)}
    return run, data


def differences(saved, config):
    """Settings of ``config`` that differ from a saved run's, as "name: saved -> new" (execution settings aside).

    Model options are compared with the builder's defaults filled in: ``shortcut: "A"`` given builds what
    leaving it out builds."""
    import resnet

    def value(run, name):
        if name != "model_options" or run.model not in resnet.MODELS:
            return getattr(run, name)
        return {**resnet.option_defaults(run.model), **run.model_options}

    return [f"{field.name}: {getattr(saved, field.name)!r} -> {getattr(config, field.name)!r}"
            for field in dataclasses.fields(RunConfig)
            if field.name not in NOT_IDENTITY and value(saved, field.name) != value(config, field.name)]


# ----------------------------------------------------------------------------
# A config as the command that reproduces it

_NOT_FLAGS = ("model_options",)


def command(config, program="python cifar10_main.py"):
    """The ``cifar10_main.py`` command line (a string) that trains ``config``; defaults are left out."""
    default = RunConfig()
    words = [program, "--mode", "train"]
    settings = {field.name: getattr(config, field.name) for field in dataclasses.fields(RunConfig)
                if field.name not in _NOT_FLAGS and getattr(config, field.name) != getattr(default, field.name)}
    settings.update(config.model_options)
    for name, value in settings.items():
        if value is None or value is False:
            continue
        if value is True:
            words.append(f"--{name}")
        elif isinstance(value, tuple):
            words += [f"--{name}", *(_word(v) for v in value)]
        else:
            words += [f"--{name}", _word(value)]
    return " ".join(words)


def _word(value):
    text = repr(value) if isinstance(value, float) else str(value)
    return text if text and all(c.isalnum() or c in "._-/:=+" for c in text) else json.dumps(text)
