"""Datasets beyond CIFAR-10: MNIST (official idx files) and folders of images; one loader for all.

Every loader returns uint8 images [N, H, W, C] and int32 labels:
``{"x_train", "y_train", "x_test", "y_test", "class_names", "source"}`` (image
folders also give ``files_train`` / ``files_test``). ``load_dataset`` picks by
name and adapts the images to the model (``adapt_to_model``).
"""

import gzip
import os
import struct
import warnings
import zlib

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import numpy as np
import tensorflow as tf

import cifar10_input
from downloads import DataError, created_folder, fetch
from run_config import DATASETS


# torchvision's mirror of the official MNIST files, with the published MD5s of the .gz files.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _is_image(name):
    """Whether a file name is one of the photo formats a class folder may hold (any letter case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


# ----------------------------------------------------------------------------
# MNIST


def read_idx(path, expected_magic):
    """Parses one (gzipped) idx file: big-endian magic, dimension sizes, then uint8 data."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as handle:
            data = handle.read()
        magic, count = struct.unpack(">II", data[:8])
        if magic != expected_magic:
            raise ValueError(f"magic number {magic}, expected {expected_magic}")
        dims = struct.unpack(">" + "I" * (magic % 256 - 1), data[8:8 + 4 * (magic % 256 - 1)])
        header = 8 + 4 * len(dims)
        shape = (count, *dims)
        if len(data) - header != int(np.prod(shape)):
            raise ValueError(f"{len(data) - header} data bytes for shape {shape}")
    except (OSError, EOFError, zlib.error, struct.error, ValueError) as error:
        raise DataError(f"MNIST file {path} is truncated or corrupt ({error})") from None
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _mnist_file(data_dir, name, download):
    for candidate in (name, name[:-3]):  # the .gz file or its decompressed twin
        path = os.path.join(data_dir, candidate)
        if os.path.isfile(path):
            return path
    if not download:
        raise DataError(f"no {name} in --data_dir {data_dir}")
    return fetch(MNIST_URL + name, MNIST_FILES[name], data_dir, "MNIST file")


def load_mnist(data_dir=None, download=True):
    """MNIST from the four official idx files in ``data_dir`` (downloaded, MD5-checked, if missing).

    Returns 28x28x1 uint8 images, int32 labels, 60,000 train and 10,000 test.
    """
    data_dir = data_dir or os.path.join(os.path.expanduser("~"), ".keras", "datasets", "mnist")
    if os.path.isfile(data_dir):
        raise DataError(f"--data_dir {data_dir} must be the folder holding the MNIST idx files")
    if not download and not os.path.isdir(data_dir):
        raise DataError(f"--data_dir {data_dir} does not exist")
    if os.path.isdir(data_dir) and not os.access(data_dir, os.R_OK):
        raise DataError(f"--data_dir {data_dir} is not readable")
    with created_folder(data_dir):
        arrays = {name: read_idx(_mnist_file(data_dir, name, download), 2051 if "images" in name else 2049)
                  for name in MNIST_FILES}
    x_train, y_train = arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"]
    x_test, y_test = arrays["t10k-images-idx3-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"]
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataError(f"MNIST images and labels in {data_dir} differ in count")
    return {
        "x_train": x_train[..., np.newaxis], "y_train": y_train.astype(np.int32),
        "x_test": x_test[..., np.newaxis], "y_test": y_test.astype(np.int32),
        "class_names": [str(d) for d in range(10)], "source": os.path.abspath(data_dir),
    }


# ----------------------------------------------------------------------------
# Image folders


def _decode(path, size, keep_aspect=False):
    """Reads one image with OpenCV as RGB uint8 at ``size`` (H, W); None if it is not a readable image.

    ``keep_aspect``: resize so the image covers ``size`` with its aspect ratio kept, then take the centre
    (torchvision's Resize(short side) + CenterCrop); otherwise the image is stretched to ``size``.
    """
    import cv2  # imported here so the rest of the suite does not need OpenCV

    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        return None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.dtype != np.uint8:  # 16-bit PNGs and the like
        image = (image / (np.iinfo(image.dtype).max / 255.0)).astype(np.uint8)
    target = size
    if keep_aspect:
        scale = max(size[0] / image.shape[0], size[1] / image.shape[1])
        target = (max(size[0], round(image.shape[0] * scale)), max(size[1], round(image.shape[1] * scale)))
    interpolation = cv2.INTER_AREA if image.shape[0] > target[0] else cv2.INTER_LINEAR
    image = cv2.resize(image, (target[1], target[0]), interpolation=interpolation)
    top, left = (target[0] - size[0]) // 2, (target[1] - size[1]) // 2
    return image[top:top + size[0], left:left + size[1]]


def _class_folders(root):
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"image folder {root} has no class subfolders (expected {root}/<class>/<image>)")
    return classes


def _read_split(root, classes, size, keep_aspect):
    images, labels, files, skipped = [], [], [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            raise DataError(f"image folder {root} has no class folder {name}")
        count = 0
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not entry.is_file() or entry.name.startswith("."):
                continue
            image = _decode(entry.path, size, keep_aspect) if _is_image(entry.name) else None
            if image is None:
                skipped.append(os.path.relpath(entry.path, root))
                continue
            images.append(image)
            labels.append(label)
            files.append(os.path.relpath(entry.path, root))
            count += 1
        if count == 0:
            raise DataError(f"class folder {folder} holds no readable images")
    _warn_skipped(skipped, f" in {root}")
    return np.stack(images), np.asarray(labels, np.int32), files


def _warn_skipped(skipped, where=""):
    """One warning that counts the unreadable files and names the first ten; none when there are none."""
    if skipped:
        shown = ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        warnings.warn(f"skipped {len(skipped)} file(s){where} that are not readable images: {shown}", stacklevel=4)


def load_image_folder(root, image_size, validation_split=0.2, seed=0, keep_aspect=False):
    """A folder of class subfolders (flower_photos), or ``train/`` and ``test/`` folders of them.

    Images are decoded with OpenCV (BGR to RGB; grayscale and RGBA to RGB),
    resized to ``image_size`` (H, W) (stretched, or with ``keep_aspect`` its centre after a resize that
    keeps the aspect ratio) and kept as uint8. Without a ``test/``
    folder, ``validation_split`` of each class (seeded) becomes the test split,
    as Yuan's 8:2 split. Unreadable files are skipped with one warning that
    counts and names them.
    """
    if not root or not os.path.isdir(root):
        raise DataError(f"--data_dir {root} is not a folder of images")
    size = tuple(image_size)
    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        classes = _class_folders(train_dir)
        x_train, y_train, f_train = _read_split(train_dir, classes, size, keep_aspect)
        x_test, y_test, f_test = _read_split(test_dir, classes, size, keep_aspect)
        f_train = [os.path.join("train", f) for f in f_train]
        f_test = [os.path.join("test", f) for f in f_test]
        test_description = f"its test/ folder ({len(y_test)} images)"
    else:
        if not 0.0 < validation_split < 1.0:
            raise DataError(f"image folder {root} has no train/ and test/ folders: give --validation_split in (0, 1)")
        classes = _class_folders(root)
        images, labels, files = _read_split(root, classes, size, keep_aspect)
        rng = np.random.RandomState(seed)
        held = np.zeros(len(labels), bool)
        for label in range(len(classes)):  # stratified: the same fraction of every class
            members = np.flatnonzero(labels == label)
            held[rng.permutation(members)[: int(round(len(members) * validation_split))]] = True
        x_train, y_train, x_test, y_test = images[~held], labels[~held], images[held], labels[held]
        f_train = [f for f, h in zip(files, held) if not h]
        f_test = [f for f, h in zip(files, held) if h]
        test_description = f"{validation_split:.0%} of each class held out, seed {seed} ({len(y_test)} images)"
    return {
        "x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
        "class_names": classes, "source": os.path.abspath(root), "files_train": f_train, "files_test": f_test,
        "test_description": test_description,
    }


def list_images(paths):
    """Image files named by ``paths`` (files, or folders searched recursively), in a stable order."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            for folder, subfolders, names in sorted(os.walk(path)):
                subfolders.sort()
                files += [os.path.join(folder, n) for n in sorted(names) if _is_image(n)]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise DataError(f"--images {path}: no such file or folder")
    if not files:
        raise DataError(f"--images {' '.join(paths)}: no image files found")
    return files


def read_images(files, image_size, channels=3, keep_aspect=False):
    """Decodes files as a run's training images were: RGB (or gray for 1-channel runs) uint8 at ``image_size``.

    Unreadable files are skipped with one warning; returns (images, the files read).
    """
    import cv2

    images, readable, skipped = [], [], []
    for path in files:
        image = _decode(path, tuple(image_size), keep_aspect)
        if image is None:
            skipped.append(path)
            continue
        images.append(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., np.newaxis] if channels == 1 else image)
        readable.append(path)
    _warn_skipped(skipped)
    if not images:
        raise DataError("none of the --images could be read as an image")
    return np.stack(images), readable


# ----------------------------------------------------------------------------
# One entry point


def adapt_to_model(images, model_shape):
    """Converts images to the shape a model is meant for, explicitly.

    * Channels: 1 -> 3 by repeating the gray channel (MNIST into CIFAR models).
    * Size: a smaller image is zero-padded equally on all sides when the gap is
      at most 4 pixels each side (MNIST 28 -> 32, as LeCun padded digits);
      otherwise it is resized (bilinear). Models meant for 224 px and more are
      not upsampled: they take the data's size (their CIFAR stem handles it).
    * Nothing is ever shrunk or turned gray: a model meant for 28x28x1 (LeNet-5)
      takes CIFAR-10's 32x32x3 as it is.
    """
    height, width, channels = model_shape
    if images.shape[-1] == 1 and channels == 3:
        images = np.repeat(images, 3, axis=-1)
    if height >= 224 or images.shape[1] >= height or images.shape[2] >= width:
        return images
    gap_h, gap_w = height - images.shape[1], width - images.shape[2]
    if 0 <= gap_h <= 8 and 0 <= gap_w <= 8 and gap_h % 2 == 0 and gap_w % 2 == 0:
        pad = [(0, 0), (gap_h // 2, gap_h // 2), (gap_w // 2, gap_w // 2), (0, 0)]
        return np.pad(images, pad)
    return tf.cast(tf.round(tf.image.resize(images, (height, width))), tf.uint8).numpy()


DATASET_NAMES = {"cifar10": "CIFAR-10", "mnist": "MNIST", "folder": "class subfolders of images"}


def _holds(name, folder):
    """Whether ``folder`` holds dataset ``name`` in a layout its loader reads."""
    if name == "cifar10":
        return cifar10_input.find_cifar10(folder) is not None
    if name == "mnist":
        return any(os.path.isfile(os.path.join(folder, file)) or os.path.isfile(os.path.join(folder, file[:-3]))
                   for file in MNIST_FILES)
    # Class subfolders, every one with images: a folder of other things (a home, /tmp) is not taken for one.
    subfolders = [entry.path for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")]
    return bool(subfolders) and all(_has_images(path) for path in subfolders)


def _has_images(folder):
    try:
        return any(_is_image(name) for name in os.listdir(folder))
    except OSError:  # a subfolder this user may not read holds nothing the suite reads
        return False


def _dataset_held_instead(name, data_dir):
    """The other dataset an existing --data_dir holds when it does not hold ``name`` (None if it holds ``name``,
    nothing the suite reads, or does not exist)."""
    if (name not in DATASET_NAMES or not data_dir or not os.path.isdir(data_dir)
            or not os.access(data_dir, os.R_OK | os.X_OK) or _holds(name, data_dir)):
        return None  # the dataset's own loader reads it, downloads into it, or says what is wrong with it
    return next((other for other in DATASET_NAMES if other != name and _holds(other, data_dir)), None)


def load_dataset(name, data_dir=None, model_shape=None, validation_split=0.2, seed=0, image_size=None,
                 keep_aspect=False):
    """Loads a dataset by name and adapts its images to ``model_shape`` (the model's intended input).

    Image folders are resized to ``image_size`` (H, W), by default the model's
    intended size (32x32 for CIFAR models, 224x224 for ImageNet ones).
    """
    other = _dataset_held_instead(name, data_dir)
    if other:  # CIFAR-10 or MNIST would be downloaded into it
        raise DataError(f"--data_dir {data_dir} holds {DATASET_NAMES[other]}, not {DATASET_NAMES[name]}: pass "
                        f"--dataset {other}, or a --data_dir that holds {DATASET_NAMES[name]}")
    if name == "cifar10":
        data = cifar10_input.load_cifar10(data_dir)
    elif name == "mnist":
        data = load_mnist(data_dir)
    elif name == "folder":
        size = image_size or (model_shape[:2] if model_shape else (224, 224))
        data = load_image_folder(data_dir, size, validation_split, seed, keep_aspect)
    else:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if model_shape is not None and name != "folder":
        data["x_train"] = adapt_to_model(data["x_train"], model_shape)
        data["x_test"] = adapt_to_model(data["x_test"], model_shape)
    return data
