"""The training engine: one custom, step-based loop for the CLI, experiments and benchmarks.

Liang 2020's ``train()`` runs ``train_steps`` steps and, every ``report_freq``
steps, validates, prints and writes TensorBoard summaries. We keep that loop
and run it as a ``tf.function`` under ``strategy.run`` rather than
``model.fit``: with TF 2.21 / Keras 3.15, ``model.fit`` under
``MultiWorkerMirroredStrategy`` fails (``ValueError: Attempt to convert a value
(PerReplica:...)``, keras-team/keras#20585), while this loop trains on any
``tf.distribute`` strategy. Several steps run per ``tf.function`` call
(``steps_per_execution``) to save Python overhead.

Loss: ``SparseCategoricalCrossentropy(from_logits=True)`` averaged over the
global batch, plus the models' L2 terms scaled per replica. The train loss and
error reported are the cross-entropy and error averaged over the steps since
the last report (the regularisation term is left out so they compare with the
validation numbers).

Interruption: every ``save_freq`` steps a ``tf.train.CheckpointManager``
checkpoint holds the model, the optimizer (its step counter drives the
learning-rate schedule) and the partial report window. The training stream is
a pure function of the seed and the step (``cifar10_input.make_train_dataset``),
so a resumed run sees the batches the uninterrupted one would have seen.
"""

import bisect
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from typing import Callable

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

import augment
import cifar10_input
import cifar10_test
import fileio
import hardware
import provenance
import resnet
import summaries
import run_config
import run_folder

CSV_COLUMNS = (
    "step", "epoch", "learning_rate",
    "train_loss", "train_accuracy", "train_error", "train_batch_error",
    "val_loss", "val_accuracy", "val_error",
)
# Wall-clock figures differ between identical runs: they live in their own file,
# so two --deterministic runs write byte-identical metrics.csv files.
TIMING_COLUMNS = ("step", "images_per_sec", "elapsed_sec")
POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


# The sessions of a run started before provenance was recorded (config.json without "sessions").
UNRECORDED = {"from_step": 0, "commit": "unknown: this session ran before the suite recorded provenance"}


class TrainingError(Exception):
    """Training cannot go on (for example the loss became NaN); the message says where."""


def auto_precision(config, input_shape, replicas=1):
    """``--mixed_precision auto`` for a run (``hardware.auto_precision``), timed with the engine's own step."""
    batch = config.batch_size // replicas
    return hardware.auto_precision(config, input_shape, replicas,
                                   lambda precision: images_per_sec(config, input_shape, batch, precision))


def images_per_sec(config, input_shape, batch, precision, rounds=3, seconds=1.0):
    """Training speed of the model in one precision: the engine's step on one in-memory batch (the model alone)."""
    policy = _set_policy(precision)
    try:
        model = resnet.build_model(config.model, input_shape, 10, config.weight_decay, config.weight_decay_scope,
                                   **config.model_options)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    if precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    train_steps_fn, _ = build_step_functions(model, optimizer, tf.distribute.get_strategy(), batch,
                                             loss_scaling=precision == "float16")
    rng = np.random.RandomState(0)
    images = tf.constant(rng.normal(size=(batch, *input_shape)).astype(np.float32))
    batches = iter(tf.data.Dataset.from_tensors((images, tf.constant(rng.randint(0, 10, batch)))).repeat())
    train_steps_fn(batches, tf.constant(2))[0].numpy()  # tracing
    best = 0.0
    for _ in range(rounds):
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / rounds or steps < 2:
            train_steps_fn(batches, tf.constant(1))[0].numpy()
            steps += 1
        best = max(best, steps * batch / (time.perf_counter() - start))
    return best


# ----------------------------------------------------------------------------
# Pieces of the loop


def learning_rate_schedule(config):
    """He et al.: ``learning_rate`` divided by ``lr_decay_factor`` at the given fractions of training, after the
    first ``lr_warmup_steps`` updates at ``lr_warmup_rate`` (He's ResNet-110).

    The fractions are of ``lr_schedule_steps`` when it is set: a run can stop part-way through a longer
    schedule (Liang's step 9775 of wenxinxu's 80k steps) and still follow it exactly.
    """
    boundaries = run_config.decay_steps(config.lr_decay_at, config.lr_schedule_steps or config.train_steps)
    values = [config.learning_rate * config.lr_decay_factor ** i for i in range(len(boundaries) + 1)]
    if config.lr_warmup_steps:  # Keras counts iterations from 0: updates 1 to N are iterations 0 to N - 1
        boundaries, values = [config.lr_warmup_steps - 1] + boundaries, [config.lr_warmup_rate] + values
    if not boundaries:
        return keras.optimizers.schedules.PiecewiseConstantDecay([config.train_steps + 1], values * 2)
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def _rate_of_step(schedule):
    """1-based run step -> the rate ``schedule`` gives its update (Keras' iteration step - 1), in float32 as the
    optimizer applies it; in Python, as the reports ask for it at every step (a TensorFlow call each: ~1 ms)."""
    boundaries, values = list(schedule.boundaries), [float(np.float32(value)) for value in schedule.values]
    return lambda step: values[bisect.bisect_left(boundaries, step - 1)]


def make_optimizer(config, loss_scaling, learning_rate=None):
    """The run's optimizer on He et al.'s schedule, or at a constant ``learning_rate`` (the fine-tuning stage)."""
    rate = learning_rate if learning_rate is not None else learning_rate_schedule(config)
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=rate, momentum=config.momentum)
    elif config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=rate)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}")
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaling else optimizer


def is_chief(strategy):
    """Only the chief writes files under MultiWorkerMirroredStrategy; every other strategy is its own chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def build_step_functions(model, optimizer, strategy, global_batch_size, loss_scaling=False, jit_compile=False):
    """Returns ``(train_steps_fn, eval_batch_fn)``.

    ``train_steps_fn(iterator, n)`` runs up to n training steps in one
    ``tf.function`` call and returns ``(totals, steps_run, last)``: the summed
    ``[cross-entropy, correct, count]``, the number of steps it ran, which
    is less than n only when a step's loss was not finite (that step is the
    last), and the sums of the last step's batch alone (the error Liang's code
    prints). ``eval_batch_fn(batch)`` returns the same sums for one distributed batch.
    An optimizer not yet built is built here on the model's trainable variables.
    """
    if not optimizer.built:  # slots made inside the first call would make tf.function trace it twice
        with strategy.scope():
            optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def sums(labels, logits, per_example_loss):
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return tf.stack([tf.reduce_sum(per_example_loss), tf.reduce_sum(correct), tf.cast(tf.size(labels), tf.float32)])

    def compute(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example_loss = loss_fn(labels, logits)
            loss = tf.nn.compute_average_loss(per_example_loss, global_batch_size=global_batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled_loss = optimizer.scale_loss(loss) if loss_scaling else loss
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        if loss_scaling:
            gradients = _skip_together(optimizer, gradients)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return sums(labels, logits, per_example_loss)

    # XLA compiles the replica's step; the iterator and the loop stay outside it.
    compiled = tf.function(compute, jit_compile=True) if jit_compile else compute

    def train_step(batch):
        images, labels = batch
        return compiled(images, tf.cast(labels, tf.int32))

    @tf.function
    def train_steps_fn(iterator, num_steps):
        totals, last = tf.zeros([3]), tf.zeros([3])
        steps_run = tf.constant(0)
        for _ in tf.range(num_steps):
            last = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(train_step, args=(next(iterator),)),
                                   axis=None)
            totals += last
            steps_run += 1
            if not tf.math.is_finite(last[0]):
                break
        return totals, steps_run, last

    return train_steps_fn, _eval_batch_function(model, strategy, loss_fn)


def _skip_together(optimizer, gradients):
    """Loss scaling across replicas: one overflow anywhere makes every replica skip the step.

    Keras 3's LossScaleOptimizer lets the first replica's own gradients decide
    (before the all-reduce), so an overflow on another replica was summed into
    every copy of the weights; and under XLA each replica decides alone, around
    a collective. Here the replicas agree first (one scalar all-reduce): when
    any has a non-finite gradient, every replica's gradients become NaN, so each
    replica's check, whichever decides, skips the step and lowers the scale.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return gradients
    overflowed = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                    tf.cast(tf.logical_not(optimizer.check_finite(gradients)), tf.float32))
    poison = tf.where(overflowed > 0, float("nan"), 1.0)
    return [None if g is None else g * tf.cast(poison, g.dtype) for g in gradients]


def _eval_batch_function(model, strategy, loss_fn):
    """``eval_batch_fn(batch)``: the summed [cross-entropy, correct, count] of one distributed batch."""

    def eval_step(batch):
        # Label -1 marks padding (see pad_for_replicas): it counts in neither sum.
        images, labels = batch
        labels = tf.cast(labels, tf.int32)
        real = tf.cast(labels >= 0, tf.float32)
        labels = tf.maximum(labels, 0)
        logits = tf.cast(model(images, training=False), tf.float32)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return tf.stack([tf.reduce_sum(loss_fn(labels, logits) * real), tf.reduce_sum(correct * real),
                         tf.reduce_sum(real)])

    @tf.function
    def eval_batch_fn(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(eval_step, args=(batch,)), axis=None)

    return eval_batch_fn


def pad_for_replicas(images, labels, global_batch):
    """Pads an evaluation set (uint8 array or tensor) to whole global batches, padding labelled -1.

    Without it the last partial batch leaves some replicas an empty batch,
    which Keras' BatchNormalization rejects (seen with MirroredStrategy on two
    logical CPUs, TF 2.21).
    """
    missing = (-len(images)) % global_batch
    if not missing:
        return images, labels
    pad_images = tf.zeros((missing, *images.shape[1:]), tf.uint8)
    return tf.concat([images, pad_images], axis=0), np.concatenate([labels, np.full(missing, -1, labels.dtype)])


def _rates(totals):
    """(mean loss, accuracy, error) of summed [loss, correct, count]; NaNs when nothing was counted (step 0)."""
    loss, correct, count = (float(v) for v in totals[:3])
    if not count:
        return float("nan"), float("nan"), float("nan")
    return loss / count, correct / count, 1.0 - correct / count


def _save_model(model, path):
    fileio.atomic_write(path, model.save)


def _save_csv(rows, columns, path):
    frame = pd.DataFrame(rows, columns=columns)
    fileio.atomic_write(path, lambda temp: frame.to_csv(temp, index=False, float_format="%.6g"))


# What to do with a damaged metrics.csv or timing.csv of a run folder.
_DAMAGED_REPORTS = ("restore it (git checkout, a backup) and run the same command again, or pass --overwrite to "
                    "retrain the run from step 0; nothing was changed")


def _load_csv(path, up_to_step):
    """Rows of an earlier (resumed) run up to the restored step; later rows were lost with the crash. A damaged file
    is a one-line RunFolderError (``run_folder.read_csv``)."""
    if not os.path.exists(path):
        return []
    read = run_folder.read_timing if os.path.basename(path) == run_folder.TIMING else run_folder.read_metrics
    frame = read(path, _DAMAGED_REPORTS)
    return frame[frame["step"] <= up_to_step].to_dict("records")


def _set_policy(precision):
    """Sets Keras' global dtype policy; returns the previous one so the caller can restore it."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(POLICIES[precision])
    return previous


def build_for_training(config, input_shape, num_classes):
    """The model of a run, built with the run's precision policy (the policy is restored afterwards)."""
    previous = _set_policy(config.mixed_precision)
    try:
        return resnet.build_model(config.model, input_shape, num_classes, config.weight_decay,
                                  config.weight_decay_scope, **config.model_options)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def learn_data(config, data):
    """The run's DataInfo: what it learns from its training images (normalisation statistics, shapes, classes)."""
    channels = data["x_train"].shape[-1]
    input_shape = (*config.image_size, channels) if config.image_size else tuple(data["x_train"].shape[1:])
    norm = augment.normalization(config.augment, data["x_train"], resnet.keras_preprocessing(config.model))
    return run_config.DataInfo(
        class_names=tuple(data["class_names"]), stored_size=tuple(data["x_train"].shape[1:3]),
        input_shape=input_shape, norm=norm, validation=data["validation"], num_train_images=int(len(data["x_train"])))


@contextlib.contextmanager
def op_determinism(enabled):
    """TF op determinism for one run: every op picks its deterministic kernel (or raises if it has none).

    TF's switch is process-wide; the previous state is put back afterwards so
    an experiment's later runs are not slowed or broken by an earlier one.
    """
    from tensorflow.python.framework import config as tf_config  # the public API can only switch it on

    previous = tf_config.is_op_determinism_enabled()
    if enabled and not previous:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if enabled and not previous:
            tf_config.disable_op_determinism()


# ----------------------------------------------------------------------------
# Set-up: the model, the training stages, the checkpoint


@dataclasses.dataclass
class Stage:
    """A stretch of training with one optimizer: He's schedule, or the fine-tuning of a backbone's top."""

    end_step: int  # the run's step at which the stage ends
    optimizer: keras.optimizers.Optimizer
    learning_rate: Callable  # 1-based run step -> the rate the optimizer used for it
    enter: Callable  # makes the stage's layers trainable; returns a line to print, or None


@dataclasses.dataclass
class Run:
    """What one training run is made of, built before its folder is touched."""

    config: run_config.RunConfig
    info: run_config.DataInfo
    strategy: tf.distribute.Strategy
    model: keras.Model
    stages: list
    parts: dict  # what a checkpoint holds, by name (see _checkpoint_parts)
    window: tf.Variable  # loss, correct, count, steps since the last report: saved with the checkpoint
    step: tf.Variable  # the run's step, counted by the engine: a step the loss scaler skipped counts too

    def restored_step(self):
        return int(self.step.numpy())

    @property
    def checkpoint(self):
        return tf.train.Checkpoint(**self.parts)


def build_run(config, info, strategy):
    """The model, its stages and its checkpoint, with the run's seed and precision, under ``strategy``."""
    keras.utils.set_random_seed(config.seed)  # same seed, same initial weights
    loss_scaling = config.mixed_precision == "float16"
    with strategy.scope():
        model = build_for_training(config, info.input_shape, info.num_classes)
        stages = [Stage(config.train_steps, make_optimizer(config, loss_scaling),
                        _rate_of_step(learning_rate_schedule(config)), lambda: None)]
        if config.fine_tune_at is not None:
            stages.append(_fine_tune_stage(config, model, loss_scaling))
        # Every optimizer is built now on the variables its stage trains, so a checkpoint taken in
        # either stage restores into the same objects; the later stages' layers are frozen again after.
        for stage in stages[1:]:
            stage.enter()
            stage.optimizer.build(model.trainable_variables)
        if len(stages) > 1:
            model.get_layer(resnet.BACKBONE).trainable = False
        stages[0].optimizer.build(model.trainable_variables)
    window = tf.Variable(tf.zeros([4], tf.float64), trainable=False)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    return Run(config, info, strategy, model, stages, _checkpoint_parts(model, stages, window, step), window, step)


def _checkpoint_parts(model, stages, window, step):
    """The checkpoint's contents. A loss-scaled optimizer is saved as its inner optimizer plus its scale, apart,
    so that one checkpoint layout serves every precision: a run started on a CPU (off, bfloat16) resumes with
    float16 on a GPU, and the reverse (the scale then starts afresh or is left out)."""
    parts = dict(model=model, window=window, step=step)
    for name, stage in zip(("optimizer", "fine_tune_optimizer"), stages):
        optimizer = stage.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            parts[f"{name}_loss_scale"] = tf.train.Checkpoint(scale=optimizer.dynamic_scale,
                                                              good_steps=optimizer.step_counter)
            optimizer = optimizer.inner_optimizer
        parts[name] = optimizer
    return parts


def _fine_tune_stage(config, model, loss_scaling):
    """Stage 2: the top of the frozen backbone unfrozen (batch norm stays frozen), at a constant rate."""
    rate = config.fine_tune_learning_rate

    def enter():
        unfrozen = resnet.unfreeze_top(model, config.fine_tune_at)
        return (f"fine-tuning the top {unfrozen} backbone layers at learning rate {rate:g} for "
                f"{config.fine_tune_steps} steps")

    return Stage(config.stages_steps, make_optimizer(config, loss_scaling, rate), lambda step: rate, enter)


def _open_folder(run, resume, overwrite, scratch_dir, session_notes):
    """Readies the run folder (the chief decides, the others follow the shared disk); restores the checkpoint.

    Returns (the folder this process writes to, whether an earlier run was continued, whether it had finished,
    the step it continues or finished at). A finished run whose checkpoint was removed (a committed result keeps
    only its metrics) is finished at its last report; an unfinished one without a checkpoint is refused, as
    restarting it would overwrite its reports.
    """
    config, chief = run.config, is_chief(run.strategy)
    checkpoints = os.path.join(config.log_dir, run_folder.CHECKPOINTS)
    if chief:
        resuming = run_folder.prepare(config.log_dir, config, resume, overwrite)
    else:  # the chief's reports count too: a finished run without its checkpoint must end every worker at once
        resuming = not overwrite and (tf.train.latest_checkpoint(checkpoints) is not None
                                      or os.path.exists(os.path.join(config.log_dir, run_folder.METRICS)))
    reported = 0
    if resuming:  # damaged reports are refused before anything is restored or written
        reported = _reported_step(config.log_dir)
        _load_csv(os.path.join(config.log_dir, run_folder.TIMING), reported)
    latest = tf.train.latest_checkpoint(checkpoints) if resuming else None
    if latest:
        _restore(run, latest)
    step = run.restored_step() if latest or not resuming else reported
    if 0 < step < config.stages_steps and not latest:
        raise run_folder.RunFolderError(
            f"--log_dir {config.log_dir} holds a run reported up to step {step} of {config.stages_steps} but no "
            f"checkpoint ({run_folder.CHECKPOINTS}/) to continue it from; pass --overwrite to retrain it from step 0, "
            f"or choose another --log_dir")
    finished = resuming and step >= config.stages_steps
    # Only once the checkpoint restored: a run that cannot continue leaves the folder as it was.
    if chief and not finished:
        earlier = run_folder.read_config(config.log_dir).get("sessions", [UNRECORDED]) if resuming else []
        # Precision may change between sessions (a CPU run resumed on a GPU): each session records its own.
        sessions = earlier + [dict(provenance.session(config.data_dir, run.restored_step()),
                                   mixed_precision=config.mixed_precision, jit_compile=config.jit_compile,
                                   **session_notes)]
        fileio.write_json(os.path.join(config.log_dir, run_folder.CONFIG),
                          run_config.to_json(config, run.info, sessions))
    return (config.log_dir if chief else scratch_dir), resuming, finished, step


def _reported_step(run_dir):
    """The step of a run folder's last report in metrics.csv (0 without one)."""
    rows = _load_csv(os.path.join(run_dir, run_folder.METRICS), float("inf"))
    return int(rows[-1]["step"]) if rows else 0


def _restore(run, path):
    """Restores a run's checkpoint into this run's objects, or says in one line that they do not fit.

    Two parts may be missing from a checkpoint that still fits: the loss scale (the run was saved in another
    precision: the scale starts afresh) and the step (saved before the engine counted its own steps: the
    optimizers' step counts are the run's step, as they were then).
    """
    optional = {name for name in run.parts if name.endswith("_loss_scale")} | {"step"}
    status = None
    try:
        saved = _saved_parts(path)
        missing = set(run.parts) - saved - optional
        if missing:
            raise ValueError(f"it has no {', '.join(sorted(missing))}")
        status = tf.train.Checkpoint(**{k: v for k, v in run.parts.items() if k in saved}).restore(path)
        status.assert_existing_objects_matched()
        status.expect_partial()  # a loss scale saved by a float16 run is not needed in another precision
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        if status is not None:
            status.expect_partial()  # no page of "unresolved object" warnings at exit
        raise run_folder.RunFolderError(
            f"the checkpoint {path} does not fit this run's model or optimizer (another model, options or stage?): "
            f"{str(error).splitlines()[0][:160]}") from None
    if "step" not in saved:
        run.step.assign(sum(int(stage.optimizer.iterations.numpy()) for stage in run.stages))


def _saved_parts(path):
    """The names of the objects a checkpoint file holds at its top level."""
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return {child.local_name for child in graph.nodes[0].children}


def _datasets(run, data, step):
    """The distributed training stream from ``step`` on, and the padded validation set."""
    config, info, strategy = run.config, run.info, run.strategy
    output_size = info.input_shape[:2]
    train_data = strategy.distribute_datasets_from_function(
        lambda ctx: cifar10_input.make_train_dataset(
            data["x_train"], data["y_train"], config.batch_size, info.norm, config.augment, config.seed, ctx,
            start_step=step, output_size=output_size))
    replicas = strategy.num_replicas_in_sync
    eval_batch = config.eval_batch_size + (-config.eval_batch_size) % replicas
    x_val, y_val = pad_for_replicas(data["x_val"], np.asarray(data["y_val"], np.int32), eval_batch)
    val_data = strategy.distribute_datasets_from_function(
        lambda ctx: cifar10_input.make_eval_dataset(x_val, y_val, eval_batch, info.norm, ctx, config.augment,
                                                    output_size))
    return train_data, val_data


# ----------------------------------------------------------------------------
# Reporting: CSV rows, TensorBoard, the printed line, the saved models


class Reporter:
    """Everything written at a report; the chief alone keeps files (others write to a scratch folder)."""

    def __init__(self, run, write_dir, resuming, step, verbose, grid_images):
        self.run, self.verbose, self.write_dir, self.chief = run, verbose, write_dir, write_dir == run.config.log_dir
        self.metrics_path = os.path.join(write_dir, run_folder.METRICS)
        self.timing_path = os.path.join(write_dir, run_folder.TIMING)
        self.rows = _load_csv(self.metrics_path, step) if resuming else []
        self.timing_rows = _load_csv(self.timing_path, step) if resuming else []
        self.best_accuracy = max((r["val_accuracy"] for r in self.rows), default=-1.0)
        self.start_time = time.time() - (self.timing_rows[-1]["elapsed_sec"] if self.timing_rows else 0.0)
        self.writers = {folder: tf.summary.create_file_writer(os.path.join(write_dir, folder))
                        for folder in ("train", "validation")}
        self.logged_rate = run.stages[0].learning_rate(step) if step else None
        if step == 0 and self.chief:
            self._augmentation_grid(grid_images)
            summaries.write_hparams(run.config.log_dir, run.config, run.strategy.num_replicas_in_sync)

    def _augmentation_grid(self, images):
        """Liang's Fig. 5 in TensorBoard's Images tab: originals, then augmented versions."""
        config, info = self.run.config, self.run.info
        grid = augment.augmentation_grid(images, config.augment, info.norm, versions=5, seed=config.seed,
                                         output_size=info.input_shape[:2])
        with self.writers["train"].as_default():
            tf.summary.image("augmentation", grid[np.newaxis], step=0)

    def report(self, step, learning_rate, window, last_batch, validation, images_per_sec):
        """Writes one report; returns its row (metrics plus timing)."""
        train_loss, train_accuracy, train_error = _rates(window)
        val_loss, val_accuracy, val_error = validation
        row = dict(step=step, epoch=step * self.run.config.batch_size / self.run.info.num_train_images,
                   learning_rate=learning_rate, train_loss=train_loss, train_accuracy=train_accuracy,
                   train_error=train_error, train_batch_error=_rates(last_batch)[2], val_loss=val_loss,
                   val_accuracy=val_accuracy, val_error=val_error)
        self.rows.append(row)
        self.timing_rows.append(dict(step=step, images_per_sec=images_per_sec,
                                     elapsed_sec=time.time() - self.start_time))
        improved = val_accuracy > self.best_accuracy
        self.best_accuracy = max(self.best_accuracy, val_accuracy)
        summaries.write_report_scalars(self.writers["train"], self.writers["validation"], row, self.best_accuracy,
                                       images_per_sec)
        if self.verbose:
            print(f"\nstep {step}/{self.run.config.stages_steps}: "
                  f"train loss {train_loss:.4f} error {train_error:.4f} | "
                  f"val loss {val_loss:.4f} error {val_error:.4f} | lr {learning_rate:g} | {images_per_sec:.0f} img/s",
                  flush=True)
        if self.chief:  # the CSVs and models first; the checkpoint (by the caller) last
            log_dir = self.run.config.log_dir
            _save_csv(self.rows, CSV_COLUMNS, self.metrics_path)
            _save_csv(self.timing_rows, TIMING_COLUMNS, self.timing_path)
            latest = os.path.join(log_dir, run_folder.LATEST_MODEL)
            _save_model(self.run.model, latest)
            if improved:  # the same model: a copy of the file, not a second serialisation (seconds for ResNet-152)
                fileio.atomic_write(os.path.join(log_dir, run_folder.BEST_MODEL),
                                    lambda temp: shutil.copyfile(latest, temp))
        return dict(row, **self.timing_rows[-1])

    def learning_rate_changes(self, stage, first, last):
        """Logs the rate where it changes in steps (first, last]: the old rate at the step before and the new one
        at the step, so TensorBoard draws the schedule's steps where they are (reports log it too). Every step is
        looked at: a warm-up's rate can come back after a decay (0.01, 0.1, 0.01), so equal ends prove nothing."""
        for step in range(first + 1, last + 1):
            rate = stage.learning_rate(step)
            if rate != self.logged_rate:
                with self.writers["train"].as_default():
                    if self.logged_rate is not None:
                        tf.summary.scalar("learning_rate", self.logged_rate, step=step - 1)
                    tf.summary.scalar("learning_rate", rate, step=step)
                self.logged_rate = rate


# ----------------------------------------------------------------------------
# The run


def train(config, data, strategy=None, verbose=1, on_report=None, resume=False, overwrite=False, session_notes=None):
    """Trains a resolved ``RunConfig`` on ``data`` and writes its run folder ``config.log_dir``.

    Args:
      config: a ``run_config.resolve``d RunConfig; the engine only reads it. A
        folder that already holds this same run is continued from its last
        checkpoint; a finished one is returned as it is.
      data: dict with ``x_train``, ``y_train``, ``x_val``, ``y_val`` (uint8
        images, int labels), ``class_names``, and ``validation`` (a string that
        says which images validate).
      strategy: a ``tf.distribute`` strategy (default: the default strategy).
      verbose: 1 for a progress bar and one line per report, 0 for silence.
      on_report: optional ``fn(row) -> bool`` called after each report is saved
        (``row`` has the metrics plus ``images_per_sec`` and ``elapsed_sec``);
        True stops training there (time-to-accuracy, time limits).
      resume: continue the run in the folder even if its settings differ.
      overwrite: delete the run in the folder and start afresh.
      session_notes: facts about this session for config.json's ``sessions`` (how ``auto`` precision chose).

    Returns:
      dict with the last row of the metrics, ``best_val_accuracy``, ``step``,
      ``log_dir``, ``num_replicas`` and the trained ``model`` (None for a finished
      run whose checkpoint was removed: its reports are all that is left).
    """
    strategy = strategy or tf.distribute.get_strategy()
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch_size {config.batch_size} does not divide among "
                         f"{strategy.num_replicas_in_sync} replicas")
    # Non-chief workers must take part in saving but keep nothing: they write to a scratch folder.
    with op_determinism(config.deterministic), tempfile.TemporaryDirectory(prefix="worker_") as scratch:
        # Build before touching the run folder, so a model that cannot be built leaves nothing behind.
        run = build_run(config, learn_data(config, data), strategy)
        write_dir, resuming, finished, step = _open_folder(run, resume, overwrite, scratch, session_notes or {})
        weightless = step != run.restored_step()  # finished, its checkpoint removed: the reports are all it has
        if verbose and resuming:
            print(f"Resuming {config.log_dir} from step {step}" + (" (already finished)" if finished else "")
                  + ("; its checkpoint was removed: its reports are kept, its model is not" if weightless else ""))
        if finished:  # reported, not retrained: nothing in the folder changes
            result = _result(run, _load_csv(os.path.join(config.log_dir, run_folder.METRICS), step), step)
            return dict(result, model=None) if weightless else result
        reporter = Reporter(run, write_dir, resuming, step, verbose, data["x_train"][:6])
        step = _loop(run, reporter, *_datasets(run, data, step), step, verbose, on_report)
        # Keras' predict is not made for MultiWorkerMirroredStrategy (as fit): there, the images are left out.
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        if reporter.chief and step >= config.stages_steps and not multi_worker:
            _validation_images(run, data, step)
        return _result(run, reporter.rows, step)


def _validation_images(run, data, step):
    """TensorBoard's Images tab at the end of training: the validation confusion matrix and worst mistakes."""
    config, info = run.config, run.info
    probabilities = cifar10_test.evaluate(run.model, data["x_val"], None, config.augment, info.norm,
                                          config.eval_batch_size, output_size=info.input_shape[:2])["probabilities"]
    summaries.write_evaluation_images(config.log_dir, "validation", step, data["x_val"], data["y_val"], probabilities,
                                      info.class_names)


def _result(run, rows, step):
    """What ``train`` returns: the last report's metrics, the best validation accuracy, the model, the step."""
    return dict(rows[-1] if rows else {}, best_val_accuracy=max((r["val_accuracy"] for r in rows), default=-1.0),
                log_dir=run.config.log_dir, model=run.model, step=step,
                num_replicas=run.strategy.num_replicas_in_sync)


def _loop(run, reporter, train_data, val_data, step, verbose, on_report):
    """Runs every stage from ``step`` to the end; reports every report_freq steps, saves every save_freq."""
    config = run.config
    manager = tf.train.CheckpointManager(run.checkpoint, os.path.join(reporter.write_dir, run_folder.CHECKPOINTS),
                                         max_to_keep=2)
    iterator, window = iter(train_data), run.window.numpy()
    progbar = keras.utils.Progbar(config.stages_steps, verbose=verbose and (1 if os.isatty(1) else 2), unit_name="step",
                                  stateful_metrics=["loss", "accuracy"])
    pacer = _Pacer(config.steps_per_execution, config.profile_steps, os.path.join(reporter.write_dir, "train"))
    eval_batch_fn = None
    for stage in run.stages:
        if step >= stage.end_step:
            continue
        entered = stage.enter()
        if verbose and entered:
            print(f"\nstep {step}: {entered}", flush=True)
        train_steps_fn, stage_eval_fn = build_step_functions(
            run.model, stage.optimizer, run.strategy, config.batch_size, config.mixed_precision == "float16",
            config.jit_compile == "on")
        eval_batch_fn = eval_batch_fn or stage_eval_fn  # no optimizer in it: one trace serves every stage
        if config.report_at_start and step == 0 and not reporter.rows:  # the untrained model (Liang's step 0)
            reporter.report(0, stage.learning_rate(1), np.zeros(4), np.zeros(3), _validate(eval_batch_fn, val_data),
                            float("nan"))
        while step < stage.end_step:
            num_steps = pacer.next_call(step, stage.end_step, config.report_freq, config.save_freq)
            totals = pacer.timed(train_steps_fn, iterator, num_steps, step)
            _check_finite(totals, step + pacer.steps_run, manager)
            reporter.learning_rate_changes(stage, step, step + num_steps)
            step += num_steps
            window += np.append(totals, num_steps)
            progbar.update(step, list(zip(("loss", "accuracy"), _rates(window)[:2])), finalize=False)
            if step % config.report_freq == 0 or step == config.stages_steps:
                speed = pacer.images_per_sec(config.batch_size)
                row = reporter.report(step, stage.learning_rate(step), window, pacer.last_batch,
                                      _validate(eval_batch_fn, val_data), speed)
                window = np.zeros(4)
                pacer.restart()
                if on_report and on_report(row):
                    _save(run, manager, window, step)
                    if verbose:
                        print(f"\nstopped at step {step} by the caller", flush=True)
                    return step
            if step % config.save_freq == 0 or step % config.report_freq == 0 or step == stage.end_step:
                _save(run, manager, window, step)
    if verbose:
        progbar.update(step, finalize=True)
    return step


class _Pacer:
    """Steps per tf.function call (``steps_per_execution``; measured when auto), the speed between reports, and
    ``--profile_steps FIRST LAST``: the TF profiler traces exactly those steps into ``profile_dir``."""

    def __init__(self, requested, profile_steps=None, profile_dir=None):
        self.auto = requested == "auto"
        self.per_call = 1 if self.auto else int(requested)
        self.first_call = True
        self.steps_run, self.last_batch = 0, np.zeros(3)
        self.profile_steps, self.profile_dir, self.profiling = profile_steps, profile_dir, False
        self.restart()

    def restart(self):
        self.steps_timed, self.window_start = 0, time.time()

    def next_call(self, step, end_step, report_freq, save_freq):
        """Steps of the next call: never past the next report, checkpoint, stage end or profiled stretch's ends."""
        stops = [(step // report_freq + 1) * report_freq, (step // save_freq + 1) * save_freq, end_step]
        if self.profile_steps:
            stops += [s for s in (self.profile_steps[0] - 1, self.profile_steps[1]) if s > step]
        return min(self.per_call, min(stops) - step)

    def timed(self, train_steps_fn, iterator, num_steps, step):
        """Runs one call from ``step``; returns its summed [loss, correct, count] and the last batch's
        (``steps_run``: how many ran)."""
        if self.profile_steps and step == self.profile_steps[0] - 1:
            tf.profiler.experimental.start(self.profile_dir)
            self.profiling = True
        start = time.time()
        try:
            totals, steps_run, last = train_steps_fn(iterator, tf.constant(num_steps))
            totals, self.steps_run, self.last_batch = totals.numpy(), int(steps_run), last.numpy()
        finally:  # also on Ctrl-C or an error: a profiler left running would refuse the next run's
            if self.profiling and (step + num_steps >= self.profile_steps[1] or sys.exc_info()[0]):
                tf.profiler.experimental.stop()
                self.profiling = False
        if self.auto and not self.first_call:  # the first call includes tracing
            self.per_call = hardware.auto_steps_per_execution((time.time() - start) / num_steps)
        self.first_call = False
        self.steps_timed += num_steps
        return totals

    def images_per_sec(self, batch_size):
        return self.steps_timed * batch_size / max(time.time() - self.window_start, 1e-9)


def _check_finite(totals, step, manager):
    if not np.isfinite(totals[0]):
        kept = manager.latest_checkpoint
        raise TrainingError(f"loss became {totals[0]} at step {step}; stopped. "
                            + (f"The last good checkpoint is {kept}" if kept else "No checkpoint had been saved yet"))


def _validate(eval_batch_fn, val_data):
    totals = tf.zeros([3])
    for batch in val_data:
        totals += eval_batch_fn(batch)
    return _rates(totals)


def _save(run, manager, window, step):
    """The resumable state: model, optimizers (their steps drive the schedule) and the partial report window."""
    run.window.assign(window)
    run.step.assign(step)
    manager.save(checkpoint_number=step)
