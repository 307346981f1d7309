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
"""

import math
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
    "images_per_sec", "elapsed_sec",
)


class TrainingError(Exception):
    """Training cannot go on (for example the loss became NaN); the message says where."""


def learning_rate_schedule(config):
    """He et al.: ``learning_rate`` divided by ``lr_decay_factor`` at the given fractions of training."""
    boundaries = [int(round(f * config["train_steps"])) for f in config["lr_decay_at"]]
    values = [config["learning_rate"] * config["lr_decay_factor"] ** i for i in range(len(boundaries) + 1)]
    if not boundaries:
        return keras.optimizers.schedules.PiecewiseConstantDecay([config["train_steps"] + 1], values * 2)
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(config, mixed_precision):
    schedule = learning_rate_schedule(config)
    if config["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=config["momentum"])
    elif config["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
    else:
        raise ValueError(f"unknown optimizer {config['optimizer']!r}")
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed_precision else optimizer


def is_chief(strategy):
    """Only the chief writes files under MultiWorkerMirroredStrategy; every other strategy is its own chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())


def build_step_functions(model, optimizer, strategy, global_batch_size, mixed_precision=False):
    """Returns ``(train_steps_fn, eval_batch_fn)``.

    ``train_steps_fn(iterator, n)`` runs n training steps in one ``tf.function``
    call and returns the summed ``[cross-entropy, correct, count]`` over them;
    ``eval_batch_fn(batch)`` returns the same sums for one distributed batch.
    """
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def sums(labels, logits, per_example_loss):
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return tf.stack([tf.reduce_sum(per_example_loss), tf.reduce_sum(correct), tf.cast(tf.size(labels), tf.float32)])

    def train_step(batch):
        images, labels = batch
        labels = tf.cast(labels, tf.int32)
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example_loss = loss_fn(labels, logits)
            loss = tf.nn.compute_average_loss(per_example_loss, global_batch_size=global_batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled_loss = optimizer.scale_loss(loss) if mixed_precision else loss
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return sums(labels, logits, per_example_loss)

    @tf.function
    def train_steps_fn(iterator, num_steps):
        totals = tf.zeros([3])
        for _ in tf.range(num_steps):
            per_replica = strategy.run(train_step, args=(next(iterator),))
            totals += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        return totals

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
    """Pads an evaluation set to whole global batches, padding labelled -1.

    Without it the last partial batch leaves some replicas an empty batch,
    which Keras' BatchNormalization rejects (seen with MirroredStrategy on two
    logical CPUs, TF 2.21).
    """
    missing = (-len(images)) % global_batch
    if not missing:
        return images, labels
    pad_images = np.zeros((missing, *images.shape[1:]), images.dtype)
    return np.concatenate([images, pad_images]), np.concatenate([labels, np.full(missing, -1, labels.dtype)])


def _rates(totals):
    loss, correct, count = (float(v) for v in totals)
    accuracy = correct / max(count, 1.0)
    return loss / max(count, 1.0), accuracy, 1.0 - accuracy


def _write_augmentation_grid(writer, images, augment, mean, std, seed):
    """Liang's Fig. 5 in TensorBoard's Images tab: originals, then augmented versions."""
    grid = cifar10_input.augmentation_grid(images, augment, mean, std, versions=5, seed=seed)
    with writer.as_default():
        tf.summary.image("augmentation", grid[np.newaxis], step=0)


def _save_model(model, path):
    run_folder.atomic_write(path, model.save)


def _save_metrics(rows, path):
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    run_folder.atomic_write(path, lambda temp: frame.to_csv(temp, index=False, float_format="%.6g"))


def _load_metrics(path, up_to_step):
    """Rows of an earlier (resumed) run up to the restored step; later rows were lost with the crash."""
    if not os.path.exists(path):
        return []
    frame = pd.read_csv(path)
    return frame[frame["step"] <= up_to_step].to_dict("records")


def train(config, data, strategy=None, verbose=1):
    """Trains ``config["model"]`` on ``data`` and writes the run folder ``config["log_dir"]``.

    Args:
      config: the run's settings (see ``cifar10_main.py`` for every key); it is
        saved to ``config.json`` with the preprocessing added.
      data: dict with ``x_train``, ``y_train``, ``x_val``, ``y_val`` (uint8
        images, int labels), ``class_names``, and ``validation`` (a string that
        says which images validate).
      strategy: a ``tf.distribute`` strategy (default: the default strategy).
      verbose: 1 for a progress bar and one line per report, 0 for silence.

    Returns:
      dict with the last row of the metrics, ``best_val_accuracy`` and ``log_dir``.
    """
    strategy = strategy or tf.distribute.get_strategy()
    log_dir = config["log_dir"]
    chief = is_chief(strategy)
    mean, std = cifar10_input.normalization(config["augment"], data["x_train"])
    input_shape = list(data["x_train"].shape[1:])
    config = dict(
        config,
        preprocessing={"mean": mean, "std": std, "augment": config["augment"]},
        input_shape=input_shape,
        num_classes=len(data["class_names"]),
        class_names=list(data["class_names"]),
        validation=data["validation"],
        num_train_images=int(len(data["x_train"])),
    )
    mixed_precision = bool(config.get("mixed_precision"))
    replicas = strategy.num_replicas_in_sync
    batch_size = config["batch_size"]
    if batch_size % replicas:
        raise ValueError(f"--batch_size {batch_size} does not divide among {replicas} replicas")

    # Build before touching the run folder, so a model that cannot be built leaves nothing behind.
    keras.utils.set_random_seed(config.get("seed", 0))  # same seed, same initial weights
    with strategy.scope():
        model = resnet.build_model(
            config["model"], input_shape, config["num_classes"], config["weight_decay"], **config.get("model_options", {})
        )
        optimizer = make_optimizer(config, mixed_precision)
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)

    resume = config.get("resume", False)
    resuming = run_folder.prepare(log_dir, resume, config.get("overwrite", False)) if chief else resume
    # Non-chief workers must still take part in saving; they write to a scratch folder.
    write_dir = log_dir if chief else tempfile.mkdtemp(prefix="worker_")
    if chief and not resuming:
        run_folder.write_json(os.path.join(log_dir, run_folder.CONFIG), config)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, run_folder.CHECKPOINTS), max_to_keep=2)
    if resuming and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    step = int(optimizer.iterations.numpy())
    if verbose and resuming:
        print(f"Resuming {log_dir} from step {step}")

    seed = config.get("seed", 0)
    train_data = strategy.distribute_datasets_from_function(
        lambda ctx: cifar10_input.make_train_dataset(
            data["x_train"], data["y_train"], batch_size, mean, std, config["augment"], seed, ctx
        )
    )
    eval_batch = config.get("eval_batch_size", 500)
    eval_batch += (-eval_batch) % replicas
    x_val, y_val = pad_for_replicas(data["x_val"], np.asarray(data["y_val"], np.int32), eval_batch)
    val_data = strategy.distribute_datasets_from_function(
        lambda ctx: cifar10_input.make_eval_dataset(x_val, y_val, eval_batch, mean, std, ctx, config["augment"])
    )
    train_steps_fn, eval_batch_fn = build_step_functions(model, optimizer, strategy, batch_size, mixed_precision)

    def validate():
        totals = tf.zeros([3])
        for batch in val_data:
            totals += eval_batch_fn(batch)
        return _rates(totals)

    train_writer = tf.summary.create_file_writer(os.path.join(write_dir, "train"))
    val_writer = tf.summary.create_file_writer(os.path.join(write_dir, "validation"))
    metrics_path = os.path.join(write_dir, run_folder.METRICS)
    rows = _load_metrics(metrics_path, step) if resuming else []
    best_accuracy = max((r["val_accuracy"] for r in rows), default=-1.0)
    if step == 0 and chief:
        _write_augmentation_grid(train_writer, data["x_train"][:6], config["augment"], mean, std, seed)

    train_total = config["train_steps"]
    report_freq = config["report_freq"]
    steps_per_execution = max(1, int(config.get("steps_per_execution", 1)))
    iterator = iter(train_data)
    progbar = keras.utils.Progbar(
        train_total, verbose=verbose and (1 if os.isatty(1) else 2), unit_name="step",
        stateful_metrics=["loss", "accuracy"],  # show the report window's running numbers as they are
    )
    window = np.zeros(3)
    window_start, start_time = time.time(), time.time()
    window_steps = 0
    while step < train_total:
        next_report = min((step // report_freq + 1) * report_freq, train_total)
        num_steps = min(steps_per_execution, next_report - step)
        totals = train_steps_fn(iterator, tf.constant(num_steps)).numpy()
        if not np.all(np.isfinite(totals)):
            raise TrainingError(
                f"loss became {totals[0]} between steps {step} and {step + num_steps}; "
                f"stopped, the last good checkpoint is in {manager.directory}"
            )
        step += num_steps
        window_steps += num_steps
        window += totals
        train_loss, train_accuracy, _ = _rates(window)
        progbar.update(step, [("loss", train_loss), ("accuracy", train_accuracy)], finalize=False)
        if step != next_report:
            continue

        images_per_sec = window_steps * batch_size / (time.time() - window_start)
        val_loss, val_accuracy, val_error = validate()
        train_loss, train_accuracy, train_error = _rates(window)
        learning_rate = float(optimizer.learning_rate.numpy()) if not callable(optimizer.learning_rate) else float(
            learning_rate_schedule(config)(step))
        row = dict(
            step=step,
            epoch=step * batch_size / len(data["x_train"]),
            learning_rate=learning_rate,
            train_loss=train_loss, train_accuracy=train_accuracy, train_error=train_error,
            val_loss=val_loss, val_accuracy=val_accuracy, val_error=val_error,
            images_per_sec=images_per_sec, elapsed_sec=time.time() - start_time,
        )
        rows.append(row)
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
        # Checkpoints: resumable state first, then the .keras models and the CSV.
        manager.save(checkpoint_number=step)
        if chief:
            _save_model(model, os.path.join(log_dir, run_folder.LATEST_MODEL))
            if val_accuracy > best_accuracy:
                best_accuracy = val_accuracy
                _save_model(model, os.path.join(log_dir, run_folder.BEST_MODEL))
            _save_metrics(rows, metrics_path)
        window = np.zeros(3)
        window_steps, window_start = 0, time.time()

    if verbose:
        progbar.update(step, finalize=True)
    final = rows[-1] if rows else {}
    return dict(final, best_val_accuracy=best_accuracy, log_dir=log_dir, model=model)
