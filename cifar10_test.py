"""Evaluation: Liang 2020's ``test()``, softmax probabilities ``[num_test_images, num_labels]``.

(Functions are named ``evaluate`` / ``predict_softmax``, not ``test_*``, so
pytest does not collect them; ``testpaths`` is ``tests/`` as well.)
"""

import json
import os

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import keras
import numpy as np
import pandas as pd

import cifar10_input
import fileio
import resnet  # noqa: F401  (registers the suite's layers, which saved .keras models name)
import run_folder


class CheckpointError(Exception):
    """The checkpoint given cannot be used; the message says why."""


def predict_softmax(model, images, batch_size=500):
    """Softmax probabilities ``[num_images, num_classes]`` for preprocessed float images.

    The models return logits; the softmax is taken here, in float32.
    """
    return _softmax(_predict_logits(model, images, batch_size))


def _predict_logits(model, images, batch_size):
    return model.predict(images, batch_size=batch_size, verbose=0).astype(np.float64)


def _softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def evaluate(model, images, labels, augment, norm, batch_size=500, output_size=None):
    """Evaluates uint8 images with a run's preprocessing: its recipe and normalisation (from config.json).

    Returns dict with ``probabilities`` and, when ``labels`` are given, ``loss``
    (mean cross-entropy, from the logits in float64), ``accuracy`` and ``error``;
    accuracy is the argmax accuracy of those probabilities.
    """
    known = labels is not None
    labels = np.asarray(labels if known else np.zeros(len(images)), dtype=np.int64)
    dataset = cifar10_input.make_eval_dataset(images, labels, batch_size, norm, augment=augment,
                                              output_size=output_size)
    logits = _predict_logits(model, dataset.map(lambda x, y: x), batch_size)
    result = {"probabilities": _softmax(logits)}
    if known:
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        accuracy = float(np.mean(result["probabilities"].argmax(axis=1) == labels))
        result.update(loss=float(-log_probabilities[np.arange(len(labels)), labels].mean()),
                      accuracy=accuracy, error=1.0 - accuracy)
    return result


def evaluate_with_batch_statistics(model, images, labels, augment, norm, batch_size=250):
    """Test loss and error with every batch norm normalising each batch by that batch's own statistics.

    This is how code that keeps no moving averages validates: wenxinxu/resnet-in-tensorflow's batch norm
    is ``tf.nn.moments`` of the current batch in training and validation alike (Liang 2020's numbers come
    from it; its validation batch is 250). The model's moving averages are left as they were. A model with
    dropout is refused: training mode would drop units too.
    """
    if any(isinstance(layer, keras.layers.Dropout) for layer in _all_layers(model)):
        raise ValueError(f"{model.name} has dropout: batch-statistics evaluation would drop units too")
    labels = np.asarray(labels, dtype=np.int64)
    saved = [variable.numpy() for variable in model.non_trainable_variables]
    logits = []
    try:
        for batch, _ in cifar10_input.make_eval_dataset(images, labels, batch_size, norm, augment=augment):
            logits.append(np.asarray(model(batch, training=True), dtype=np.float64))
    finally:
        for variable, value in zip(model.non_trainable_variables, saved):
            variable.assign(value)
    logits = np.concatenate(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    accuracy = float(np.mean(logits.argmax(axis=1) == labels))
    return {"loss": float(-log_probabilities[np.arange(len(labels)), labels].mean()), "accuracy": accuracy,
            "error": 1.0 - accuracy, "batch_size": batch_size, "num_images": len(labels)}


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def resolve_checkpoint(path):
    """A run folder or a ``.keras`` file -> (model file, run folder, RunConfig, DataInfo).

    A run folder gives its ``latest.keras`` (the model at the end of training);
    pass ``best.keras`` explicitly for the best-by-validation one. A shipped folder
    (``pretrained/<name>/``, with its manifest) gives ``<name>.keras``.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"--checkpoint {path} does not exist")
    if os.path.isdir(path):
        run_dir, model_path = path, _folder_model(path)
        if not os.path.exists(model_path):
            raise CheckpointError(f"--checkpoint {path} holds no {run_folder.LATEST_MODEL}; "
                                  "has the run reached its first report?")
    else:
        if not path.endswith(".keras"):
            raise CheckpointError(f"--checkpoint {path} is neither a run folder nor a .keras file")
        run_dir, model_path = os.path.dirname(os.path.abspath(path)), path
    try:
        config, info = run_folder.saved_config(run_dir)
    except run_folder.RunFolderError as error:
        raise CheckpointError(f"{error}; the run's config.json must sit beside the .keras file") from None
    if info is None:
        raise CheckpointError(f"{os.path.join(run_dir, run_folder.CONFIG)} holds no data facts "
                              "(classes, normalisation): the run never started training")
    return model_path, run_dir, config, info


def _folder_model(folder):
    """The model file a folder stands for: a run's latest.keras, or the .keras file its shipping manifest names."""
    if not run_folder.is_shipped(folder):
        return os.path.join(folder, run_folder.LATEST_MODEL)
    manifest = os.path.join(folder, run_folder.MANIFEST)
    try:
        with open(manifest) as handle:
            name = json.load(handle)["name"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{manifest} is damaged ({type(error).__name__}: {str(error)[:80]}); ship the run again "
                              f"with experiments/ship_weights.py, or pass the .keras file itself") from None
    model_path = os.path.join(folder, f"{name}.keras")
    if not os.path.exists(model_path):
        raise CheckpointError(f"--checkpoint {folder}: its {run_folder.MANIFEST} names {name}.keras, which is missing")
    return model_path


def load_model(model_path):
    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception as error:
        raise CheckpointError(
            f"cannot load {model_path}: {type(error).__name__}: {str(error).splitlines()[0]}") from None


def confusion_matrix(labels, predicted, num_classes):
    """Counts ``[true class, predicted class]``."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    return matrix


def plot_confusion_matrix(matrix, class_names, path, title):
    """A labelled confusion-matrix PNG (rows: true class, columns: predicted), counts in the cells."""
    fileio.save_figure(confusion_matrix_figure(matrix, class_names, title), path)


def confusion_matrix_figure(matrix, class_names, title):
    """The confusion matrix as a matplotlib figure (for the PNG file and TensorBoard's Images tab)."""
    size = max(4.0, 0.55 * len(class_names) + 2)
    figure, axis = fileio.pyplot().subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    if len(class_names) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            axis.text(column, row, str(count), ha="center", va="center", fontsize=8,
                      color="white" if count > threshold else "black")
    figure.tight_layout()
    return figure


def write_image_predictions(path, files, probabilities, class_names):
    """``--mode predict --output``: one row per image (file, predicted class, every class's probability)."""
    frame = pd.DataFrame({"file": list(files), "predicted_class": [class_names[i] for i in probabilities.argmax(1)]})
    for index, name in enumerate(class_names):
        frame[f"p_{name}"] = probabilities[:, index]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fileio.atomic_write(path, lambda temp: frame.to_csv(temp, index=False, float_format="%.6g"))


def write_predictions(probabilities, labels, class_names, output_dir, files=None):
    """Writes ``test_probabilities.npy``, ``test_predictions.csv`` (one row per image: file when
    known, true and predicted label and class, confidence, every class's probability) and
    ``test_confusion_matrix.png``; returns their paths by kind."""
    os.makedirs(output_dir, exist_ok=True)
    paths = {kind: os.path.join(output_dir, name) for kind, name in (
        ("probabilities", run_folder.TEST_PROBABILITIES), ("predictions", run_folder.TEST_PREDICTIONS),
        ("confusion_matrix", run_folder.TEST_CONFUSION_MATRIX))}
    fileio.atomic_write(paths["probabilities"], lambda temp: np.save(temp, probabilities))
    labels = np.asarray(labels)
    predicted = probabilities.argmax(axis=1)
    frame = pd.DataFrame({"index": np.arange(len(labels))})
    if files is not None:
        frame["file"] = list(files)
    frame = frame.assign(
        true_label=labels,
        predicted_label=predicted,
        true_class=[class_names[i] for i in labels],
        predicted_class=[class_names[i] for i in predicted],
        confidence=probabilities.max(axis=1),
    )
    for index, name in enumerate(class_names):
        frame[f"p_{name}"] = probabilities[:, index]
    fileio.atomic_write(paths["predictions"], lambda temp: frame.to_csv(temp, index=False, float_format="%.6g"))
    matrix = confusion_matrix(labels, predicted, len(class_names))
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    plot_confusion_matrix(matrix, class_names, paths["confusion_matrix"],
                          f"test set: {matrix.sum()} images, accuracy {accuracy:.4f}")
    return paths
