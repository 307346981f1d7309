"""CIFAR-10: find or download, read, split, normalise, augment, and feed tf.data.

Reads the official "CIFAR-10 python version" (``cifar-10-python.tar.gz``, any
``.tar.gz`` whose members are ``cifar-10-batches-py/...``, or the extracted
folder) and the official binary version (``cifar-10-batches-bin/*.bin``).
With nothing local it downloads the official archive with
``keras.utils.get_file`` (progress bar, MD5 check) and reads the pickles
straight from the archive, so there is never a half-extracted cache to trust.

Images stay uint8 in memory; the input pipelines apply a preprocessing recipe
(``augment.py``) inside ``tf.data`` on whole batches, so no per-image Python
runs on the hot path.
"""

import os
import pickle
import tarfile
import zlib

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import numpy as np
import tensorflow as tf

import augment as augment_recipes  # the recipes; `augment` names a recipe here
from downloads import DataError, created_folder, fetch

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"  # published on the CIFAR page
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
PYTHON_DIR = "cifar-10-batches-py"
BINARY_DIR = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"


# ----------------------------------------------------------------------------
# Finding and reading the files


def _is_cifar_tar(path):
    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return False
    return first is not None and first.name.split("/")[0] in (PYTHON_DIR, BINARY_DIR)


def find_cifar10(data_dir):
    """Returns the CIFAR-10 source under ``data_dir``: a folder or a .tar.gz, or None."""
    if os.path.isfile(data_dir):
        return data_dir
    candidates = [
        os.path.join(data_dir, PYTHON_DIR),
        os.path.join(data_dir, BINARY_DIR),
        data_dir,
    ]
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, TEST_BATCH)) or os.path.isfile(
            os.path.join(folder, "test_batch.bin")
        ):
            return folder
    archives = sorted(name for name in os.listdir(data_dir) if name.endswith((".tar.gz", ".tgz")))
    preferred = [name for name in archives if name == os.path.basename(CIFAR10_URL)]
    for name in preferred + archives:
        path = os.path.join(data_dir, name)
        if _is_cifar_tar(path):
            return path
    return None


def download_cifar10(cache_dir):
    """Downloads the official archive into ``cache_dir`` (MD5-checked) and returns its path."""
    return fetch(CIFAR10_URL, CIFAR10_MD5, cache_dir, "CIFAR-10")


def _unpickle(data, name):
    try:
        batch = pickle.loads(data, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int32)
        if images.ndim != 2 or images.shape[1] != 3072 or len(labels) != len(images):
            raise ValueError(f"unexpected shapes {images.shape} / {labels.shape}")
    except Exception as error:
        raise DataError(f"CIFAR-10 batch {name} is truncated or corrupt ({type(error).__name__}: {error})") from None
    # Rows are 1024 R, 1024 G, 1024 B values, each plane row-major.
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _parse_binary(data, name):
    record = 1 + 3072
    if not data or len(data) % record:
        raise DataError(f"CIFAR-10 binary batch {name} is truncated or corrupt ({len(data)} bytes)")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), raw[:, 0].astype(np.int32)


def _stack(parts):
    """Concatenates per-batch (images, labels), letting each batch go as soon as it is copied."""
    parts = list(parts)
    labels = np.concatenate([batch_labels for _, batch_labels in parts]).astype(np.int32)
    images = np.empty((len(labels), *parts[0][0].shape[1:]), np.uint8)
    offset = 0
    while parts:
        batch_images, batch_labels = parts.pop(0)
        images[offset:offset + len(batch_labels)] = batch_images
        offset += len(batch_labels)
    return images, labels


def _read_folder(folder):
    """(train names, test names, ``take(name) -> (images, labels)``) for an extracted folder."""
    def take(name):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise DataError(f"cannot read CIFAR-10 file {path}: {error.strerror}") from None
        return (_unpickle if name in TRAIN_BATCHES or name == TEST_BATCH else _parse_binary)(data, name)

    if os.path.isfile(os.path.join(folder, TEST_BATCH)):
        return TRAIN_BATCHES, (TEST_BATCH,), take
    return tuple(f"{n}.bin" for n in TRAIN_BATCHES), ("test_batch.bin",), take


def _read_archive(path):
    """Parses each batch as it streams out of the archive, so the raw members are never all in memory.

    Raises DataError naming the file if it is damaged or lacks a batch.
    """
    python_names = set(TRAIN_BATCHES) | {TEST_BATCH}
    binary_names = {f"{n}.bin" for n in python_names}
    parsed = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name.split("/", 1)[-1]
                if member.isfile() and (name in python_names or name in binary_names):
                    parse = _unpickle if name in python_names else _parse_binary
                    parsed[name] = parse(tar.extractfile(member).read(), name)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"CIFAR-10 archive {path} is truncated or corrupt ({error}); "
                        "delete it or pass another --data_dir") from None
    binary = TEST_BATCH not in parsed and "test_batch.bin" in parsed
    names = [f"{n}.bin" if binary else n for n in (*TRAIN_BATCHES, TEST_BATCH)]
    for name in names:
        if name not in parsed:
            raise DataError(f"CIFAR-10 archive {path} has no member {name}")
    return names[:-1], names[-1:], lambda name: parsed.pop(name)


def load_cifar10(data_dir=None, download=True):
    """Loads CIFAR-10 as uint8 arrays.

    Args:
      data_dir: a folder holding the archive or extracted batches, or the
        archive itself. ``None`` means ``~/.keras/datasets``.
      download: fetch the official archive when nothing is found.

    Returns:
      dict with ``x_train`` [50000, 32, 32, 3] uint8, ``y_train`` int32,
      ``x_test``, ``y_test``, ``class_names`` and ``source`` (the path read).
    """
    data_dir = data_dir or os.path.join(os.path.expanduser("~"), ".keras", "datasets")
    if os.path.exists(data_dir) and not os.access(data_dir, os.R_OK):
        raise DataError(f"--data_dir {data_dir} is not readable")
    source = find_cifar10(data_dir) if os.path.exists(data_dir) else None
    if source is None:
        if not download:
            raise DataError(f"no CIFAR-10 found in --data_dir {data_dir}")
        with created_folder(data_dir):
            source = download_cifar10(data_dir)
    train_names, test_names, take = (_read_folder if os.path.isdir(source) else _read_archive)(source)
    x_train, y_train = _stack(take(name) for name in train_names)
    x_test, y_test = _stack(take(name) for name in test_names)
    for labels, name in ((y_train, "training"), (y_test, "test")):
        if labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES):
            raise DataError(f"CIFAR-10 {name} labels in {source} fall outside 0-9")
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "class_names": list(CIFAR10_CLASSES),
        "source": os.path.abspath(source),
    }


# ----------------------------------------------------------------------------
# Splits


def split_validation(images, labels, fraction, seed):
    """Holds out ``fraction`` of the images (seeded permutation); returns (train, validation)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    order = np.random.RandomState(seed).permutation(len(images))
    held = int(round(len(images) * fraction))
    val, train = np.sort(order[:held]), np.sort(order[held:])
    return (images[train], labels[train]), (images[val], labels[val])


# ----------------------------------------------------------------------------
# Input pipelines: a recipe (augment.py) applied to whole batches inside tf.data


def _per_replica_batch(batch_size, input_context):
    return input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size


def _shard(dataset, input_context):
    if input_context and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return dataset


def _pipeline(input_context):
    """(pipeline id, pipelines, per-replica batches this pipeline yields per global step)."""
    if not input_context:
        return 0, 1, 1
    pipelines = input_context.num_input_pipelines
    return input_context.input_pipeline_id, pipelines, input_context.num_replicas_in_sync // pipelines


def make_train_dataset(images, labels, batch_size, norm, augment="he", seed=0, input_context=None, start_step=0,
                       output_size=None, parallel=True):
    """An endless, shuffled, augmented training dataset of (float images, int labels).

    The stream is a pure function of ``seed`` and the step: epoch ``e`` is the
    permutation ``stateless_uniform(seed=(seed, e))`` of the images, and batch
    ``i`` is augmented with the seed ``(seed, i)``. ``start_step`` therefore
    resumes exactly where an interrupted run stopped, and a seed fixes the run.
    Images stay one uint8 array in memory; each batch is gathered, augmented
    and normalised inside tf.data.

    ``batch_size`` is the global batch; under ``tf.distribute`` the
    ``input_context`` makes it per replica and gives each worker (input
    pipeline) its own slice of every epoch's permutation.
    """
    recipe = augment_recipes.recipe(augment)
    if recipe.image_data_generator:
        return imagedatagenerator_dataset(images, labels, batch_size, norm, seed, input_context, start_step=start_step)
    pipeline_id, pipelines, batches_per_step = _pipeline(input_context)
    per_replica = _per_replica_batch(batch_size, input_context)
    transform = augment_recipes.train_transform(augment, norm, seed, output_size or images.shape[1:3])
    images_t, labels_t = tf.convert_to_tensor(images), tf.convert_to_tensor(labels, tf.int32)
    count = len(images)
    shard_size = len(range(pipeline_id, count, pipelines))
    if shard_size < per_replica:
        raise ValueError(f"{shard_size} training images per input pipeline cannot fill a batch of {per_replica}")

    def epoch_order(epoch):
        order = tf.argsort(tf.random.stateless_uniform([count], tf.stack([tf.cast(seed, tf.int64), epoch])))
        return tf.data.Dataset.from_tensor_slices(order[pipeline_id::pipelines])

    start_batch = start_step * batches_per_step
    start_epoch, offset = divmod(start_batch * per_replica, shard_size)
    indices = tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(epoch_order).skip(offset)
    batches = indices.batch(per_replica, drop_remainder=True).enumerate(start=start_batch)
    stream_seed = tf.cast(seed, tf.int64) * 1_000_003 + pipeline_id  # workers augment differently

    def preprocess(index, batch_indices):
        images = transform(tf.gather(images_t, batch_indices), tf.stack([stream_seed, index]))
        return images, tf.gather(labels_t, batch_indices)

    # Keras' RandomFlip (the sequential recipe) advances its own generator: map serially so it stays reproducible.
    calls = tf.data.AUTOTUNE if parallel and not recipe.keras_layers else None
    return batches.map(preprocess, num_parallel_calls=calls).prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(images, labels, batch_size, norm, input_context=None, augment="he", output_size=None):
    """A single pass over (preprocessed images, labels), in order, last batch kept."""
    transform = augment_recipes.eval_transform(augment, norm, output_size)
    dataset = _shard(tf.data.Dataset.from_tensor_slices((images, labels)), input_context)
    dataset = dataset.batch(_per_replica_batch(batch_size, input_context))
    dataset = dataset.map(lambda x, y: (transform(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def imagedatagenerator_dataset(images, labels, batch_size, norm, seed=0, input_context=None, overlap=True,
                               start_step=0):
    """Liang 2020's augmentation: Keras ``ImageDataGenerator`` (shift 0.1, horizontal flip).

    Kept for fidelity to the paper, not speed: it runs per image in Python and
    holds a float32 copy of the images. Its shifts need scipy. With
    ``overlap=False`` each batch is made only when the training step asks for
    it, as the paper's code does (the benchmark's baseline); by default tf.data
    prefetches so the generator runs while the model trains. The generator
    cannot skip ahead: a run resumed at ``start_step`` restarts its stream
    seeded with ``seed + start_step`` (reproducible, not the uninterrupted stream).
    """
    generator = augment_recipes.liang_image_data_generator()
    if input_context and input_context.num_input_pipelines > 1:
        part = slice(input_context.input_pipeline_id, None, input_context.num_input_pipelines)
        images, labels = images[part], labels[part]
    per_replica = _per_replica_batch(batch_size, input_context)
    flow = generator.flow(images, labels, batch_size=per_replica, shuffle=True, seed=seed + start_step)

    def batches():
        while True:
            x, y = next(flow)
            if len(x) == per_replica:  # the last partial batch of each epoch is dropped
                yield x, y

    spec = (
        tf.TensorSpec([per_replica, *images.shape[1:]], tf.float32),
        tf.TensorSpec([per_replica], tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
    if not overlap:
        options = tf.data.Options()
        options.autotune.enabled = False
        options.experimental_optimization.inject_prefetch = False
        return dataset.map(lambda x, y: (augment_recipes.normalize(x, norm), y)).with_options(options)
    dataset = dataset.map(lambda x, y: (augment_recipes.normalize(x, norm), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
