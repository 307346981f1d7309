"""What a run shows in TensorBoard: its reports' scalars, hyperparameters, confusion matrix, misclassified images.

- ``write_report_scalars``: a report's loss, error, accuracy, best accuracy, learning rate and images/s.
- ``write_hparams``: the run's settings for the HParams dashboard (one session per run folder), so
  ``tensorboard --logdir results/<paper>`` compares every run and seed in one table; its metrics
  are the scalars the engine writes (validation accuracy, error, loss and best accuracy; test
  accuracy, error and loss once ``--mode test`` ran).
- ``write_evaluation_images``: the confusion matrix and a grid of the most confidently wrong images
  (true and predicted class, confidence), under a tag per split, at the model's training step.
"""

import dataclasses
import io
import numbers
import os

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

import fileio

HPARAM_METRICS = [hp.Metric(tag, group=group)
                  for group in ("validation", "test") for tag in ("accuracy", "error", "loss")]
HPARAM_METRICS.append(hp.Metric("best_accuracy", group="validation"))


def hparams_of(config, num_replicas):
    """The settings the HParams dashboard shows (those declared ``hparam`` in run_config), as bool/int/float/str
    (its only types); ``num_replicas`` None (not recorded: a run rebuilt from its CSVs) leaves the replicas out
    rather than guess them."""
    settings = {field.name: _hparam_value(getattr(config, field.name)) for field in dataclasses.fields(config)
                if field.metadata["hparam"]}
    settings.update(train_steps=int(config.stages_steps),  # both stages
                    lr_schedule_steps=int(config.lr_schedule_steps or config.train_steps))
    return settings if num_replicas is None else dict(settings, replicas=int(num_replicas))


def _hparam_value(value):
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in sorted(value.items()))
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def write_hparams(log_dir, config, num_replicas):
    """One HParams session for the run, in the run folder itself (its train/ and validation/ hold the metrics)."""
    with tf.summary.create_file_writer(log_dir).as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in hparams_of(config, num_replicas)],
                          metrics=HPARAM_METRICS)
        hp.hparams(hparams_of(config, num_replicas), trial_id=log_dir)


def _figure_image(figure):
    """A matplotlib figure as a [1, H, W, 4] uint8 tensor for tf.summary.image."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    fileio.pyplot().close(figure)
    return tf.image.decode_png(buffer.getvalue(), channels=4)[tf.newaxis]


def misclassified_figure(images, labels, probabilities, class_names, count=16, columns=4):
    """The ``count`` most confidently wrong images, each captioned "true -> predicted (confidence)": one montage
    in one axes (sixteen subplots took a second of every run's end)."""
    predicted = probabilities.argmax(axis=1)
    errors = np.flatnonzero(predicted != labels)
    wrong = errors[np.argsort(-probabilities[errors, predicted[errors]])][:count]
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    height, width = images.shape[1:3]
    pad = max(2, height // 8)
    cell_h, cell_w = height + 3 * pad, width + pad  # room under each image for its caption
    montage = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    for slot, index in enumerate(wrong):
        image = np.asarray(images[index])
        image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        top, left = (slot // columns) * cell_h, (slot % columns) * cell_w
        montage[top:top + height, left:left + width] = image
    figure, axis = fileio.pyplot().subplots(figsize=(2.2 * columns, 2.4 * rows))
    axis.imshow(montage, interpolation="nearest")
    axis.axis("off")
    for slot, index in enumerate(wrong):
        axis.text((slot % columns) * cell_w + width / 2, (slot // columns) * cell_h + height + pad * 0.4,
                  f"{class_names[labels[index]]} -> {class_names[predicted[index]]}\n"
                  f"({probabilities[index, predicted[index]]:.2f})", ha="center", va="top", fontsize=8)
    axis.set_title(f"most confidently wrong: {len(wrong)} of {len(errors)} errors")
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93)
    return figure


def write_evaluation_images(log_dir, split, step, images, labels, probabilities, class_names):
    """Confusion matrix and misclassified grid of one evaluation, into ``log_dir/split`` at ``step``."""
    import cifar10_test

    labels = np.asarray(labels)
    matrix = cifar10_test.confusion_matrix(labels, probabilities.argmax(axis=1), len(class_names))
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    title = f"{split}: {matrix.sum()} images, accuracy {accuracy:.4f}, step {step}"
    with tf.summary.create_file_writer(os.path.join(log_dir, split)).as_default():
        tf.summary.image("confusion_matrix", _figure_image(cifar10_test.confusion_matrix_figure(
            matrix, class_names, title)), step=step)
        tf.summary.image("misclassified", _figure_image(misclassified_figure(
            np.asarray(images), labels, probabilities, class_names)), step=step)
        tf.summary.flush()


def write_report_scalars(train_writer, validation_writer, row, best_accuracy, images_per_sec):
    """One report's scalars (a metrics.csv row): the engine writes them while training, and
    experiments/replay_tensorboard.py rebuilds them from the committed CSVs. NaN values (no training numbers
    or speed at the step-0 report) are left out."""
    step = int(row["step"])
    for prefix, writer in (("train", train_writer), ("val", validation_writer)):
        with writer.as_default():
            for name in ("loss", "error", "accuracy"):
                if row[f"{prefix}_{name}"] == row[f"{prefix}_{name}"]:
                    tf.summary.scalar(name, row[f"{prefix}_{name}"], step=step)
    with validation_writer.as_default():
        tf.summary.scalar("best_accuracy", best_accuracy, step=step)
    with train_writer.as_default():
        tf.summary.scalar("learning_rate", row["learning_rate"], step=step)
        if images_per_sec == images_per_sec:
            tf.summary.scalar("images_per_sec", images_per_sec, step=step)
    for writer in (train_writer, validation_writer):
        writer.flush()


def write_test_scalars(log_dir, step, metrics):
    """--mode test's numbers as scalars of the run's test/ folder, for the HParams dashboard."""
    with tf.summary.create_file_writer(os.path.join(log_dir, "test")).as_default():
        for name in ("accuracy", "error", "loss"):
            tf.summary.scalar(name, metrics[name], step=step)
        tf.summary.flush()
