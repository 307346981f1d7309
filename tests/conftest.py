"""Shared fixtures: tiny CIFAR-10 files in the official formats, and the real datasets."""

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]  # on sys.path through pyproject.toml's pythonpath
import tf_setup  # noqa: E402,F401
# --mixed_precision auto follows the hardware's rule in tests, without its timed calibration (a few seconds per
# model and batch); tests/test_train.py's calibration tests switch it back on.
os.environ["RESNET_SUITE_CALIBRATE"] = "0"

SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
BATCH_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def subprocess_env(**extra):
    """The environment of a process a test starts: the checkout importable (pytest's pythonpath reaches only its own
    process), plus ``extra``. tf_setup quiets TensorFlow's start-up in the child itself."""
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


def summary_events(folder):
    """{tag: [(step, value or plugin name)]} of the TensorBoard event files directly in ``folder``: a scalar's value,
    any other summary's plugin name."""
    import glob

    import tensorflow as tf

    found = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                content = float(tf.make_ndarray(value.tensor)) if plugin == "scalars" else plugin
                found.setdefault(value.tag, []).append((event.step, content))
    return found


def require_shared(*parts):
    """Path of a real dataset in ../shared/datasets; skip if absent, but fail under CI=true."""
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.exists():
        message = f"real dataset {path} is missing"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def tiny_cifar(per_batch=7, seed=0):
    """Random images and labels for the five training batches and the test batch."""
    rng = np.random.RandomState(seed)
    return {
        name: (rng.randint(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8), rng.randint(0, 10, size=per_batch))
        for name in BATCH_NAMES
    }


def _pickled(name, images, labels):
    # The official layout: bytes keys, rows of 1024 R, 1024 G, 1024 B values, protocol 2.
    batch = {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072),
        b"filenames": [f"{name}_{i}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def write_python_folder(root, batches):
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, (images, labels) in batches.items():
        (folder / name).write_bytes(_pickled(name, images, labels))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, protocol=2))
    return folder


def write_python_archive(path, batches):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, (images, labels) in batches.items():
            data = _pickled(name, images, labels)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_binary_folder(root, batches):
    folder = Path(root) / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, (images, labels) in batches.items():
        records = np.concatenate(
            [labels.astype(np.uint8)[:, None], images.transpose(0, 3, 1, 2).reshape(len(images), 3072)], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    return folder


@pytest.fixture
def cifar_batches():
    return tiny_cifar()


@pytest.fixture
def cifar_archive(tmp_path, cifar_batches):
    """A folder holding a tiny cifar-10-python.tar.gz."""
    write_python_archive(tmp_path / "data" / "cifar-10-python.tar.gz", cifar_batches)
    return tmp_path / "data"
