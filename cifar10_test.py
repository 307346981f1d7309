"""Evaluation: Liang 2020's ``test()``, softmax probabilities ``[num_test_images, num_labels]``.

(Functions are named ``evaluate`` / ``predict_softmax``, not ``test_*``, so
pytest does not collect them; ``testpaths`` is ``tests/`` as well.)
"""

import os

import keras
import numpy as np
import pandas as pd

import cifar10_input
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


def evaluate(model, images, labels, mean, std, batch_size=500, augment="he"):
    """Evaluates on uint8 images with the run's preprocessing (normalisation and, for the
    imagenet recipe, the centre crop).

    Returns dict with ``loss`` (mean cross-entropy, from the logits in float64),
    ``accuracy``, ``error`` and ``probabilities``; accuracy is the argmax
    accuracy of those probabilities.
    """
    dataset = cifar10_input.make_eval_dataset(images, labels, batch_size, mean, std, augment=augment)
    logits = _predict_logits(model, dataset.map(lambda x, y: x), batch_size)
    probabilities = _softmax(logits)
    labels = np.asarray(labels, dtype=np.int64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probabilities[np.arange(len(labels)), labels].mean())
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    return {"loss": loss, "accuracy": accuracy, "error": 1.0 - accuracy, "probabilities": probabilities}


def resolve_checkpoint(path):
    """A run folder or a ``.keras`` file -> (model file, run folder, run config).

    A run folder gives its ``latest.keras`` (the model at the end of training);
    pass ``best.keras`` explicitly for the best-by-validation one.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"--checkpoint {path} does not exist")
    if os.path.isdir(path):
        run_dir, model_path = path, os.path.join(path, run_folder.LATEST_MODEL)
        if not os.path.exists(model_path):
            raise CheckpointError(f"--checkpoint {path} holds no {run_folder.LATEST_MODEL}; has the run reached its first report?")
    else:
        if not path.endswith(".keras"):
            raise CheckpointError(f"--checkpoint {path} is neither a run folder nor a .keras file")
        run_dir, model_path = os.path.dirname(os.path.abspath(path)), path
    try:
        config = run_folder.read_config(run_dir)
    except run_folder.RunFolderError as error:
        raise CheckpointError(f"{error}; the run's config.json must sit beside the .keras file") from None
    return model_path, run_dir, config


def load_model(model_path):
    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception as error:
        raise CheckpointError(f"cannot load {model_path}: {type(error).__name__}: {str(error).splitlines()[0]}") from None


def write_predictions(probabilities, labels, class_names, output_dir, prefix="test"):
    """Writes ``<prefix>_probabilities.npy`` and ``<prefix>_predictions.csv``; returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    npy_path = os.path.join(output_dir, f"{prefix}_probabilities.npy")
    csv_path = os.path.join(output_dir, f"{prefix}_predictions.csv")
    run_folder.atomic_write(npy_path, lambda temp: np.save(temp, probabilities))
    predicted = probabilities.argmax(axis=1)
    frame = pd.DataFrame({
        "index": np.arange(len(labels)),
        "true_label": labels,
        "predicted_label": predicted,
        "true_class": [class_names[i] for i in labels],
        "predicted_class": [class_names[i] for i in predicted],
        "confidence": probabilities.max(axis=1),
    })
    for index, name in enumerate(class_names):
        frame[f"p_{name}"] = probabilities[:, index]
    run_folder.atomic_write(csv_path, lambda temp: frame.to_csv(temp, index=False, float_format="%.6g"))
    return npy_path, csv_path
