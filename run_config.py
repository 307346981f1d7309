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
"""

import dataclasses
import json
import math
import os
from typing import Optional, Union

# 4: weight_decay_scope and conv_padding recorded (version 3 and before: kernels, same);
# 3: the run/data layout; 2: the flat dict of 2026-11-23 with option A renamed; 1 (no version): option "A" was the
# average pool
VERSION = 4
DEFAULT_CONV_PADDING = "same"  # TensorFlow's, what every run before version 4 used
DATASETS = ("cifar10", "mnist", "folder")  # --dataset; datasets.load_dataset reads each
DEFAULT_AUGMENT = {"cifar10": "he", "mnist": "none", "folder": "imagenet"}
DEFAULT_TRAIN_STEPS = 64000  # He et al. 2016a: stop at 64k iterations
FOLDER_TEST_SPLIT = 0.2  # an image folder without train/ and test/: Yuan's 8:2 split
CIFAR_RESNET_V1 = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202")
# Settings that change how a run is executed or where it reads and writes, not what it computes:
# a folder whose run differs from the command only in these holds the same run.
NOT_IDENTITY = frozenset({
    "data_dir", "log_dir", "save_freq", "steps_per_execution", "eval_batch_size", "distribution_strategy",
    "num_gpus", "mixed_precision", "jit_compile", "deterministic", "profile_steps",
})

# Settings whose change gives the model or optimizer other variables: --resume cannot carry a checkpoint across them.
CANNOT_RESUME = frozenset({"dataset", "model", "model_options", "optimizer", "fine_tune_at"})


class ConfigError(ValueError):
    """Settings that do not fit together, or a config.json that cannot be read; one line says which."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run. ``None`` means "resolved from the others" (see ``resolve``)."""

    # data
    dataset: str = "cifar10"  # cifar10, mnist or folder (one subfolder per class)
    data_dir: Optional[str] = None  # where the data is (None: ~/.keras/datasets); resolved: the file or folder read
    validation_split: Optional[float] = None  # fraction held out of training; 0: validate on the test set
    image_size: Optional[tuple] = None  # folder only: the model's input (H, W); None: the size the model is meant for
    augment: Optional[str] = None  # preprocessing recipe; None: he (cifar10), none (mnist), imagenet (folder)
    # model
    model: str = "resnet20"  # a name of resnet.MODELS
    model_options: dict = dataclasses.field(default_factory=dict)  # builder options (shortcut, stem, weights, ...)
    weight_decay: float = 1e-4  # SGD-style: gradient += weight_decay * w
    weight_decay_scope: str = "kernels"  # kernels (conv and dense) or all (batch-norm scales, offsets, biases too)
    # optimisation
    train_steps: Optional[int] = None  # optimizer steps of the first stage; None: from epochs, else 64000
    epochs: Optional[float] = None  # instead of train_steps: passes over the training images
    batch_size: int = 128  # global batch, split among replicas
    optimizer: str = "sgd"  # sgd (with momentum) or adam
    learning_rate: Optional[float] = None  # initial rate; None: the model's default (0.1, or 0.01 for lenet5/alexnet)
    momentum: float = 0.9  # SGD momentum
    lr_decay_at: Optional[tuple] = None  # fractions of train_steps where the rate is divided; None: (0.5, 0.75) for sgd
    lr_decay_factor: float = 0.1  # multiplier at each decay point
    lr_schedule_steps: Optional[int] = None  # the steps lr_decay_at's fractions refer to; None: train_steps
    # second stage: fine-tuning the top of a frozen keras.applications backbone
    fine_tune_at: Optional[str] = None  # a layer name, index or fraction of the backbone; None: no second stage
    fine_tune_steps: Optional[int] = None  # None: from fine_tune_epochs, else as many as the first stage
    fine_tune_epochs: Optional[float] = None  # instead of fine_tune_steps
    fine_tune_learning_rate: Optional[float] = None  # constant rate of the stage; None: learning_rate / 10
    # reporting and reproducibility
    report_freq: int = 500  # steps between reports (validation, CSV row, summaries, saved models, checkpoint)
    report_at_start: bool = False  # also validate and report at step 0, before training (Liang's code does)
    save_freq: Optional[int] = None  # steps between checkpoints; None: report_freq
    eval_batch_size: int = 500  # batch of validation and test
    seed: int = 0  # weights, shuffling, augmentation, the validation split
    deterministic: bool = False  # TF op determinism: identical metrics.csv for identical runs on one machine
    log_dir: Optional[str] = None  # the run folder; None: runs/<model>
    # hardware and speed
    distribution_strategy: str = "auto"  # auto, default, one_device, mirrored, multi_worker
    num_gpus: Optional[int] = None  # GPUs for mirrored/one_device; None: all visible
    mixed_precision: str = "auto"  # auto, off, float16, bfloat16; resolved: off, float16 or bfloat16
    jit_compile: str = "auto"  # auto, on, off (XLA); resolved: on or off
    steps_per_execution: Union[int, str] = "auto"  # training steps per tf.function call; auto: about 0.25 s per call
    profile_steps: Optional[tuple] = None  # (first, last): trace these training steps for TensorBoard's Profile tab

    def __post_init__(self):
        # JSON and argparse give lists; the record holds tuples, so equal settings compare equal.
        for name in ("image_size", "lr_decay_at", "profile_steps"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @property
    def stages_steps(self):
        """Total optimizer steps over both stages (resolved configs only)."""
        return self.train_steps + (self.fine_tune_steps or 0)

    @property
    def pretrained(self):
        """True when a keras.applications backbone starts from pretrained weights."""
        return self.model_options.get("weights", "none") not in ("none", None)


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


def check(config):
    """Combinations of settings that cannot run, each a ConfigError naming the flags (before any data is read)."""
    import resnet

    if config.model not in resnet.MODELS:
        raise ConfigError(f"unknown model {config.model!r}; choose one of: {', '.join(resnet.MODELS)}")
    transfer = resnet.is_transfer(config.model)
    if config.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {config.dataset!r}; choose one of: {', '.join(DATASETS)}")
    if config.weight_decay_scope not in resnet.WEIGHT_DECAY_SCOPES:
        raise ConfigError(f"--weight_decay_scope {config.weight_decay_scope!r}: choose one of "
                          f"{', '.join(resnet.WEIGHT_DECAY_SCOPES)}")
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
    import hardware  # imports TensorFlow: only where a run is about to start
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
    try:
        precision = hardware.resolve_mixed_precision(config.mixed_precision)
    except ValueError as error:
        raise ConfigError(str(error)) from None
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
        lr_decay_at=config.lr_decay_at if config.lr_decay_at is not None else
        ((0.5, 0.75) if config.optimizer == "sgd" else ()),
        fine_tune_steps=fine_tune_steps,
        fine_tune_epochs=None,
        fine_tune_learning_rate=fine_tune_rate,
        save_freq=config.save_freq or config.report_freq,
        log_dir=config.log_dir or os.path.join("runs", config.model),
        mixed_precision=precision,
        jit_compile="on" if config.jit_compile == "on" else "off",
    )


# ----------------------------------------------------------------------------
# config.json: the settings and the data facts, and the older flat layouts


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
    if version in (3, VERSION):
        run, data = saved.get("run"), saved.get("data")
    elif version in (1, 2) and "model" in saved:
        run, data = _from_flat(saved, version)
    else:
        raise ConfigError(f"config.json has config_version {version}; this code reads 1 to {VERSION}")
    if version < 4 and isinstance(run, dict):
        run = _before_version_4(run)
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
    """Settings of ``config`` that differ from a saved run's, as "name: saved -> new" (execution settings aside)."""
    return [f"{field.name}: {getattr(saved, field.name)!r} -> {getattr(config, field.name)!r}"
            for field in dataclasses.fields(RunConfig)
            if field.name not in NOT_IDENTITY and getattr(saved, field.name) != getattr(config, field.name)]


# ----------------------------------------------------------------------------
# A config as the command that reproduces it

# Model options that are flags of their own; booleans are flags without a value.
OPTION_FLAGS = ("shortcut", "preactivation", "conv_padding", "stem", "residual_blocks", "weights", "freeze_backbone")
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
