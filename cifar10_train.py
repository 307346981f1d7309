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

import contextlib
import os
import tempfile
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

import cifar10_input
import resnet
import run_folder

CSV_COLUMNS = (
    "step", "epoch", "learning_rate",
    "train_loss", "train_accuracy", "train_error",
    "val_loss", "val_accuracy", "val_error",
)
# Wall-clock figures differ between identical runs: they live in their own file,
# so two --deterministic runs write byte-identical metrics.csv files.
TIMING_COLUMNS = ("step", "images_per_sec", "elapsed_sec")
PRECISIONS = ("auto", "off", "float16", "bfloat16")
POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
SECONDS_PER_CALL = 0.25  # steps_per_execution=auto aims at tf.function calls of about this length


class TrainingError(Exception):
    """Training cannot go on (for example the loss became NaN); the message says where."""


# ----------------------------------------------------------------------------
# Hardware-dependent choices: what "auto" means


def cpu_has_native_bfloat16():
    """True when the CPU has bfloat16 instructions (AVX512_BF16 or AMX), where mixed bfloat16 pays."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_mixed_precision(requested):
    """``auto`` -> float16 on GPUs, bfloat16 on CPUs with native bfloat16 (1.06-2.56x faster here, see
    benchmarks/README.md), else off. An explicit float16 request without a GPU is refused: it is slower."""
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if requested == "auto":
        return "float16" if has_gpu else ("bfloat16" if cpu_has_native_bfloat16() else "off")
    if requested == "float16" and not has_gpu:
        raise ValueError("--mixed_precision float16 needs a GPU (on CPU it is slower); use bfloat16 or off")
    return requested


def auto_steps_per_execution(seconds_per_step):
    """``--steps_per_execution auto``: as many steps per tf.function call as fill about SECONDS_PER_CALL
    (1 for ResNet-20 here, about 30 for LeNet-5), at most 100."""
    return int(min(100, max(1, SECONDS_PER_CALL / max(seconds_per_step, 1e-6))))


def resolve_jit_compile(requested):
    """``auto`` -> off: XLA made ResNet-20 2x slower on this CPU (benchmarks/README.md), and no GPU here
    could show it pays; ``on`` compiles the training step with XLA."""
    return requested == "on"


# ----------------------------------------------------------------------------
# Pieces of the loop


def learning_rate_schedule(config):
    """He et al.: ``learning_rate`` divided by ``lr_decay_factor`` at the given fractions of training."""
    boundaries = [int(round(f * config["train_steps"])) for f in config["lr_decay_at"]]
    values = [config["learning_rate"] * config["lr_decay_factor"] ** i for i in range(len(boundaries) + 1)]
    if not boundaries:
        return keras.optimizers.schedules.PiecewiseConstantDecay([config["train_steps"] + 1], values * 2)
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(config, loss_scaling, learning_rate=None):
    """The run's optimizer on He et al.'s schedule, or at a constant ``learning_rate`` (the fine-tuning stage)."""
    rate = learning_rate if learning_rate is not None else learning_rate_schedule(config)
    if config["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=rate, momentum=config["momentum"])
    elif config["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=rate)
    else:
        raise ValueError(f"unknown optimizer {config['optimizer']!r}")
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaling else optimizer


def is_chief(strategy):
    """Only the chief writes files under MultiWorkerMirroredStrategy; every other strategy is its own chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())


def build_step_functions(model, optimizer, strategy, global_batch_size, loss_scaling=False, jit_compile=False):
    """Returns ``(train_steps_fn, eval_batch_fn)``.

    ``train_steps_fn(iterator, n)`` runs up to n training steps in one
    ``tf.function`` call and returns ``(totals, steps_run)``: the summed
    ``[cross-entropy, correct, count]`` and the number of steps it ran, which
    is less than n only when a step's loss was not finite (that step is the
    last). ``eval_batch_fn(batch)`` returns the same sums for one distributed batch.
    """
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
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return sums(labels, logits, per_example_loss)

    # XLA compiles the replica's step; the iterator and the loop stay outside it.
    compiled = tf.function(compute, jit_compile=True) if jit_compile else compute

    def train_step(batch):
        images, labels = batch
        return compiled(images, tf.cast(labels, tf.int32))

    @tf.function
    def train_steps_fn(iterator, num_steps):
        totals = tf.zeros([3])
        steps_run = tf.constant(0)
        for _ in tf.range(num_steps):
            step_totals = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(train_step, args=(next(iterator),)),
                                          axis=None)
            totals += step_totals
            steps_run += 1
            if not tf.math.is_finite(step_totals[0]):
                break
        return totals, steps_run

    def eval_step(batch):
        # Label -1 marks padding (see pad_for_replicas): it counts in neither sum.
        images, labels = batch
        labels = tf.cast(labels, tf.int32)
        real = tf.cast(labels >= 0, tf.float32)
        labels = tf.maximum(labels, 0)
        logits = tf.cast(model(images, training=False), tf.float32)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return tf.stack([tf.reduce_sum(loss_fn(labels, logits) * real), tf.reduce_sum(correct * real), tf.reduce_sum(real)])

    @tf.function
    def eval_batch_fn(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(eval_step, args=(batch,)), axis=None)

    return train_steps_fn, eval_batch_fn


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
    loss, correct, count = (float(v) for v in totals[:3])
    accuracy = correct / max(count, 1.0)
    return loss / max(count, 1.0), accuracy, 1.0 - accuracy


def _write_augmentation_grid(writer, images, config, seed):
    """Liang's Fig. 5 in TensorBoard's Images tab: originals, then augmented versions."""
    preprocessing = config["preprocessing"]
    grid = cifar10_input.augmentation_grid(images, preprocessing["augment"], preprocessing["norm"], versions=5,
                                           seed=seed, output_size=config["input_shape"][:2])
    with writer.as_default():
        tf.summary.image("augmentation", grid[np.newaxis], step=0)


def _save_model(model, path):
    run_folder.atomic_write(path, model.save)


def _save_csv(rows, columns, path):
    frame = pd.DataFrame(rows, columns=columns)
    run_folder.atomic_write(path, lambda temp: frame.to_csv(temp, index=False, float_format="%.6g"))


def _load_csv(path, up_to_step):
    """Rows of an earlier (resumed) run up to the restored step; later rows were lost with the crash."""
    if not os.path.exists(path):
        return []
    frame = pd.read_csv(path)
    return frame[frame["step"] <= up_to_step].to_dict("records")


def _set_policy(precision):
    """Sets Keras' global dtype policy; returns the previous one so the caller can restore it."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(POLICIES[precision])
    return previous


def build_for_training(config, input_shape, num_classes):
    """The model of a run, built with the run's precision policy (the policy is restored afterwards)."""
    previous = _set_policy(config.get("mixed_precision", "off"))
    try:
        return resnet.build_model(config["model"], input_shape, num_classes, config["weight_decay"],
                                  **config.get("model_options", {}))
    finally:
        keras.mixed_precision.set_global_policy(previous)


def train(config, data, strategy=None, verbose=1, on_report=None):
    """Trains ``config["model"]`` on ``data`` and writes the run folder ``config["log_dir"]``.

    Args:
      config: the run's settings (see ``cifar10_main.py`` for every key); it is
        saved to ``config.json`` with the preprocessing added. A folder that
        already holds this same run (same settings) is continued from its last
        checkpoint; a finished one is returned as it is.
      data: dict with ``x_train``, ``y_train``, ``x_val``, ``y_val`` (uint8
        images, int labels), ``class_names``, and ``validation`` (a string that
        says which images validate).
      strategy: a ``tf.distribute`` strategy (default: the default strategy).
      verbose: 1 for a progress bar and one line per report, 0 for silence.
      on_report: optional ``fn(row) -> bool`` called after each report is saved
        (``row`` has the metrics plus ``images_per_sec`` and ``elapsed_sec``);
        True stops training there (time-to-accuracy, time limits).

    Returns:
      dict with the last row of the metrics, ``best_val_accuracy``, ``step``,
      ``log_dir``, ``num_replicas`` and the trained ``model``.
    """
    # Non-chief workers must take part in saving but keep nothing: they write to a scratch folder.
    with op_determinism(bool(config.get("deterministic"))), tempfile.TemporaryDirectory(prefix="worker_") as scratch:
        return _train(config, data, strategy or tf.distribute.get_strategy(), verbose, on_report, scratch)


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


def _train(config, data, strategy, verbose, on_report, scratch_dir):
    log_dir = config["log_dir"]
    chief = is_chief(strategy)
    input_shape = list(config.get("input_shape") or data["x_train"].shape[1:])
    config = dict(config, input_shape=input_shape)
    config.setdefault("mixed_precision", "off")
    config.setdefault("jit_compile", False)
    config.setdefault("save_freq", config["report_freq"])
    keras_preprocess = resnet.keras_preprocessing(config["model"])
    norm = cifar10_input.normalization(config["augment"], data["x_train"], keras_preprocess)
    config.update(
        preprocessing={"augment": config["augment"], "norm": norm},
        num_classes=len(data["class_names"]),
        class_names=list(data["class_names"]),
        validation=data["validation"],
        num_train_images=int(len(data["x_train"])),
    )
    replicas = strategy.num_replicas_in_sync
    batch_size = config["batch_size"]
    if batch_size % replicas:
        raise ValueError(f"--batch_size {batch_size} does not divide among {replicas} replicas")
    if config.get("deterministic") and config["jit_compile"]:
        raise ValueError("--deterministic and --jit_compile on do not mix: XLA has no deterministic "
                         "max-pooling gradient (TF 2.21)")

    # Build before touching the run folder, so a model that cannot be built leaves nothing behind.
    keras.utils.set_random_seed(config.get("seed", 0))  # same seed, same initial weights
    loss_scaling = config["mixed_precision"] == "float16"
    fine_tune_steps = config.get("fine_tune_steps", 0) if config.get("fine_tune_at") is not None else 0
    with strategy.scope():
        model = build_for_training(config, input_shape, config["num_classes"])
        optimizer = make_optimizer(config, loss_scaling)
        fine_optimizer = None
        if fine_tune_steps:
            # Stage 2's optimizer covers the unfrozen top of the backbone: build it on those
            # variables now, so a checkpoint taken in either stage restores into the same objects.
            resnet.unfreeze_top(model, config["fine_tune_at"])
            fine_optimizer = make_optimizer(config, loss_scaling, config["fine_tune_learning_rate"])
            fine_optimizer.build(model.trainable_variables)
            model.get_layer(resnet.BACKBONE).trainable = False
        optimizer.build(model.trainable_variables)
    window_state = tf.Variable(tf.zeros([4], tf.float64), trainable=False)  # loss, correct, count, steps since report
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, window=window_state,
                                     **({"fine_tune_optimizer": fine_optimizer} if fine_optimizer else {}))

    if chief:
        resuming = run_folder.prepare(log_dir, config, config.get("resume", False), config.get("overwrite", False))
    else:  # the chief decides; the others follow what is on the (shared) disk
        resuming = not config.get("overwrite") and tf.train.latest_checkpoint(os.path.join(log_dir, run_folder.CHECKPOINTS)) is not None
    write_dir = log_dir if chief else scratch_dir
    if chief:
        run_folder.write_json(os.path.join(log_dir, run_folder.CONFIG), config)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, run_folder.CHECKPOINTS), max_to_keep=2)
    latest = tf.train.latest_checkpoint(os.path.join(log_dir, run_folder.CHECKPOINTS)) if resuming else None
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    first_stage = config["train_steps"]
    step = int(optimizer.iterations.numpy()) + (int(fine_optimizer.iterations.numpy()) if fine_optimizer else 0)
    train_total = first_stage + fine_tune_steps
    if verbose and resuming:
        print(f"Resuming {log_dir} from step {step}" + (" (already finished)" if step >= train_total else ""))

    seed = config.get("seed", 0)
    output_size = input_shape[:2]
    train_data = strategy.distribute_datasets_from_function(
        lambda ctx: cifar10_input.make_train_dataset(
            data["x_train"], data["y_train"], batch_size, norm, config["augment"], seed, ctx, start_step=step,
            output_size=output_size,
        )
    )
    eval_batch = config.get("eval_batch_size", 500)
    eval_batch += (-eval_batch) % replicas
    x_val, y_val = pad_for_replicas(data["x_val"], np.asarray(data["y_val"], np.int32), eval_batch)
    val_data = strategy.distribute_datasets_from_function(
        lambda ctx: cifar10_input.make_eval_dataset(x_val, y_val, eval_batch, norm, ctx, config["augment"], output_size)
    )

    def enter_fine_tuning():
        layers_unfrozen = resnet.unfreeze_top(model, config["fine_tune_at"])
        if verbose:
            print(f"\nstep {step}: fine-tuning the top {layers_unfrozen} backbone layers at learning rate "
                  f"{config['fine_tune_learning_rate']:g} for {fine_tune_steps} steps", flush=True)
        return build_step_functions(model, fine_optimizer, strategy, batch_size, loss_scaling, config["jit_compile"])

    def learning_rate_at(step):
        """The rate the optimizer used for step ``step`` (1-based)."""
        if step > first_stage:
            return config["fine_tune_learning_rate"]
        return float(learning_rate_schedule(config)(step - 1))

    if step > first_stage and fine_optimizer:  # resumed inside the fine-tuning stage
        train_steps_fn, eval_batch_fn = enter_fine_tuning()
    else:
        train_steps_fn, eval_batch_fn = build_step_functions(
            model, optimizer, strategy, batch_size, loss_scaling, config["jit_compile"])

    def validate():
        totals = tf.zeros([3])
        for batch in val_data:
            totals += eval_batch_fn(batch)
        return _rates(totals)

    train_writer = tf.summary.create_file_writer(os.path.join(write_dir, "train"))
    val_writer = tf.summary.create_file_writer(os.path.join(write_dir, "validation"))
    metrics_path = os.path.join(write_dir, run_folder.METRICS)
    timing_path = os.path.join(write_dir, run_folder.TIMING)
    rows = _load_csv(metrics_path, step) if resuming else []
    timing_rows = _load_csv(timing_path, step) if resuming else []
    best_accuracy = max((r["val_accuracy"] for r in rows), default=-1.0)
    if step == 0 and chief:
        _write_augmentation_grid(train_writer, data["x_train"][:6], config, seed)

    report_freq, save_freq = config["report_freq"], config["save_freq"]
    requested_spe = config.get("steps_per_execution", "auto")
    steps_per_execution = 1 if requested_spe == "auto" else int(requested_spe)
    iterator = iter(train_data)
    progbar = keras.utils.Progbar(
        train_total, verbose=verbose and (1 if os.isatty(1) else 2), unit_name="step",
        stateful_metrics=["loss", "accuracy"],  # show the report window's running numbers as they are
    )
    window = window_state.numpy()
    window_start, start_time = time.time(), time.time() - (timing_rows[-1]["elapsed_sec"] if timing_rows else 0.0)
    window_steps_timed = 0
    first_call = True
    while step < train_total:
        if step == first_stage and fine_optimizer:
            train_steps_fn, eval_batch_fn = enter_fine_tuning()
        stops = [(step // report_freq + 1) * report_freq, (step // save_freq + 1) * save_freq, train_total]
        next_stop = min(stops + ([first_stage] if step < first_stage else []))
        num_steps = min(steps_per_execution, next_stop - step)
        call_start = time.time()
        totals, steps_run = train_steps_fn(iterator, tf.constant(num_steps))
        totals, steps_run = totals.numpy(), int(steps_run)
        if not np.isfinite(totals[0]):
            kept = manager.latest_checkpoint
            raise TrainingError(
                f"loss became {totals[0]} at step {step + steps_run}; stopped. "
                + (f"The last good checkpoint is {kept}" if kept else "No checkpoint had been saved yet")
            )
        if requested_spe == "auto" and not first_call:
            per_step = (time.time() - call_start) / num_steps
            steps_per_execution = auto_steps_per_execution(per_step)
        first_call = False
        step += num_steps
        window += np.append(totals, num_steps)
        window_steps_timed += num_steps
        train_loss, train_accuracy, _ = _rates(window)
        progbar.update(step, [("loss", train_loss), ("accuracy", train_accuracy)], finalize=False)

        if step % report_freq == 0 or step == train_total:
            images_per_sec = window_steps_timed * batch_size / (time.time() - window_start)
            val_loss, val_accuracy, val_error = validate()
            train_loss, train_accuracy, train_error = _rates(window)
            learning_rate = learning_rate_at(step)
            row = dict(
                step=step,
                epoch=step * batch_size / len(data["x_train"]),
                learning_rate=learning_rate,
                train_loss=train_loss, train_accuracy=train_accuracy, train_error=train_error,
                val_loss=val_loss, val_accuracy=val_accuracy, val_error=val_error,
            )
            rows.append(row)
            timing_rows.append(dict(step=step, images_per_sec=images_per_sec, elapsed_sec=time.time() - start_time))
            for writer, prefix in ((train_writer, "train"), (val_writer, "val")):
                with writer.as_default():
                    tf.summary.scalar("loss", row[f"{prefix}_loss"], step=step)
                    tf.summary.scalar("error", row[f"{prefix}_error"], step=step)
                    tf.summary.scalar("accuracy", row[f"{prefix}_accuracy"], step=step)
            with train_writer.as_default():
                tf.summary.scalar("learning_rate", learning_rate, step=step)
                tf.summary.scalar("images_per_sec", images_per_sec, step=step)
            train_writer.flush()
            val_writer.flush()
            if verbose:
                print(
                    f"\nstep {step}/{train_total}: train loss {train_loss:.4f} error {train_error:.4f} | "
                    f"val loss {val_loss:.4f} error {val_error:.4f} | lr {learning_rate:g} | {images_per_sec:.0f} img/s",
                    flush=True,
                )
            # The CSVs and models first, the resumable state last: a crash in between
            # resumes from the previous checkpoint and writes this report again.
            if chief:
                _save_csv(rows, CSV_COLUMNS, metrics_path)
                _save_csv(timing_rows, TIMING_COLUMNS, timing_path)
                _save_model(model, os.path.join(log_dir, run_folder.LATEST_MODEL))
                if val_accuracy > best_accuracy:
                    _save_model(model, os.path.join(log_dir, run_folder.BEST_MODEL))
            best_accuracy = max(best_accuracy, val_accuracy)
            window = np.zeros(4)
            window_steps_timed, window_start = 0, time.time()
        if step % save_freq == 0 or step % report_freq == 0 or step in (first_stage, train_total):
            window_state.assign(window)
            manager.save(checkpoint_number=step)
        if on_report and rows and rows[-1]["step"] == step and on_report(dict(rows[-1], **timing_rows[-1])):
            if verbose:
                print(f"\nstopped at step {step} by the caller", flush=True)
            break

    if verbose:
        progbar.update(step, finalize=True)
    final = rows[-1] if rows else {}
    return dict(final, best_val_accuracy=best_accuracy, log_dir=log_dir, model=model, step=step, num_replicas=replicas)

