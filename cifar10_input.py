"""CIFAR-10: find or download, read, split, normalise, augment, and feed tf.data.

Reads the official "CIFAR-10 python version" (``cifar-10-python.tar.gz``, any
``.tar.gz`` whose members are ``cifar-10-batches-py/...``, or the extracted
folder) and the official binary version (``cifar-10-batches-bin/*.bin``).
With nothing local it downloads the official archive with
``keras.utils.get_file`` (progress bar, MD5 check) and reads the pickles
straight from the archive, so there is never a half-extracted cache to trust.

Images stay uint8 in memory; normalisation and augmentation run inside
``tf.data`` on whole batches, so no per-image Python runs on the hot path.
"""

import io
import os
import pickle
import tarfile
import zlib

import keras
import numpy as np
import tensorflow as tf

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
IMAGE_SHAPE = (32, 32, 3)
PAD = 4  # He et al.: 4 pixels padded on each side, then a random 32x32 crop


class DataError(Exception):
    """A data problem the user can fix; the message is one line that says how."""


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
    fname = os.path.basename(CIFAR10_URL)
    target = os.path.join(os.path.abspath(cache_dir), fname)
    try:
        return tf.keras.utils.get_file(
            fname, CIFAR10_URL, md5_hash=CIFAR10_MD5, cache_dir=os.path.abspath(cache_dir), cache_subdir=""
        )
    except ValueError as error:  # the hash check failed after download
        if os.path.exists(target):
            os.remove(target)  # never leave a file a later run would trust
        raise DataError(
            f"downloaded {fname} failed its MD5 check ({error}); "
            f"retry, or pass --data_dir pointing at a good copy"
        ) from None
    except Exception as error:  # get_file raises a bare Exception when offline
        if os.path.exists(target):
            os.remove(target)
        raise DataError(
            f"could not download CIFAR-10 from {CIFAR10_URL} ({error}); "
            f"download {fname} yourself and pass --data_dir DIR (the folder holding it)"
        ) from None


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


def _read_batches(read, names, parse):
    parts = [parse(read(name), name) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_folder(folder):
    def read(name):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as error:
            raise DataError(f"cannot read CIFAR-10 file {path}: {error.strerror}") from None

    if os.path.isfile(os.path.join(folder, TEST_BATCH)):
        return read, TRAIN_BATCHES, (TEST_BATCH,), _unpickle
    names = tuple(f"{n}.bin" for n in TRAIN_BATCHES)
    return read, names, ("test_batch.bin",), _parse_binary


def _read_archive(path):
    """Reads every member into memory once; raises DataError naming the file if damaged."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {
                m.name.split("/", 1)[1]: tar.extractfile(m).read()
                for m in tar.getmembers()
                if m.isfile() and "/" in m.name
            }
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"CIFAR-10 archive {path} is truncated or corrupt ({error}); delete it or pass another --data_dir") from None

    def read(name):
        if name not in members:
            raise DataError(f"CIFAR-10 archive {path} has no member {name}")
        return members[name]

    if TEST_BATCH in members:
        return read, TRAIN_BATCHES, (TEST_BATCH,), _unpickle
    return read, tuple(f"{n}.bin" for n in TRAIN_BATCHES), ("test_batch.bin",), _parse_binary


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
        os.makedirs(data_dir, exist_ok=True)
        source = download_cifar10(data_dir)
    if os.path.isdir(source):
        read, train_names, test_names, parse = _read_folder(source)
    else:
        read, train_names, test_names, parse = _read_archive(source)
    x_train, y_train = _read_batches(read, train_names, parse)
    x_test, y_test = _read_batches(read, test_names, parse)
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
# Splits and statistics


def split_validation(images, labels, fraction, seed):
    """Holds out ``fraction`` of the images (seeded permutation); returns (train, validation)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    order = np.random.RandomState(seed).permutation(len(images))
    held = int(round(len(images) * fraction))
    val, train = np.sort(order[:held]), np.sort(order[held:])
    return (images[train], labels[train]), (images[val], labels[val])


def channel_stats(images):
    """Per-channel mean and std on the 0-255 scale, from uint8 images [N, H, W, C]."""
    flat = images.reshape(-1, images.shape[-1])
    mean = flat.mean(axis=0, dtype=np.float64)
    std = np.sqrt(np.maximum((flat.astype(np.float64) ** 2).mean(axis=0) - mean**2, 1e-12))
    return [float(v) for v in mean], [float(v) for v in std]


# ----------------------------------------------------------------------------
# Preprocessing and augmentation: one named recipe per paper (batched tf ops)

# Normalisation of each recipe, on the 0-255 scale: "dataset" means the
# training set's per-channel mean and std (computed by ``normalization``).
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # torchvision's ImageNet statistics
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
RECIPES = {
    "he": ("dataset", "He et al.: 4-pixel pad + random crop + horizontal flip; per-channel mean/std"),
    "imagedatagenerator": ("dataset", "Liang: Keras ImageDataGenerator, shift 0.1 + horizontal flip; per-channel mean/std"),
    "sequential": ("rescale", "Jin: keras.Sequential([Rescaling(1/255), RandomFlip('horizontal_and_vertical')])"),
    "xu": ("half", "Xu: mean 0.5 / std 0.5 on [0, 1], 4-pixel pad + random crop + horizontal flip"),
    "imagenet": ("imagenet", "Yuan: random resized crop + flip + colour jitter; validation resize + centre crop (0.875); ImageNet mean/std"),
    "none": ("dataset", "no augmentation; per-channel mean/std"),
}
AUGMENTATIONS = tuple(RECIPES)


def normalization(augment, train_images):
    """(mean, std) per channel on the 0-255 scale for a recipe; saved with the run so testing matches training."""
    kind = RECIPES[augment][0]
    channels = train_images.shape[-1]
    if kind == "dataset":
        return channel_stats(train_images)
    if kind == "rescale":
        return [0.0] * channels, [255.0] * channels
    if kind == "half":
        return [127.5] * channels, [127.5] * channels
    if channels != 3:
        raise ValueError(f"--augment {augment} uses ImageNet RGB statistics and needs 3-channel images, got {channels}")
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


def normalize(images, mean, std):
    """uint8 (or float 0-255) images -> float32 (x - mean) / std, per channel."""
    images = tf.cast(images, tf.float32)
    return (images - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def he_augment(images, seed):
    """He et al.'s augmentation on a normalised batch: 4-pixel zero pad, random crop, random flip.

    Padding happens after normalisation, so the pad value is the mean colour, as
    when He et al. pad mean-subtracted images. ``seed`` is a shape-[2] int
    tensor; the same seed gives the same crops and flips.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    draws = tf.random.stateless_uniform([batch, 2], seed, minval=0, maxval=2 * PAD + 1, dtype=tf.int32)
    rows = draws[:, 0:1] + tf.range(height)[tf.newaxis]
    cols = draws[:, 1:2] + tf.range(width)[tf.newaxis]
    cropped = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([batch], seed + 1) < 0.5
    return tf.where(flip[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(cropped, axis=[2]), cropped)


def jin_sequential(seed):
    """Jin's augmentation as the paper builds it: Rescaling(1/255) then RandomFlip (both directions)."""
    return keras.Sequential(
        [keras.layers.Rescaling(1.0 / 255), keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)],
        name="jin_augmentation",
    )


def imagenet_train_augment(images, seed, mean, std):
    """Yuan's training transform on a uint8 batch: random resized crop (scale 0.08-1, ratio 3/4-4/3),
    horizontal flip, colour jitter (brightness, contrast, saturation 0.4), ImageNet normalisation.
    The output keeps the input's height and width."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    seeds = [seed + i for i in range(7)]
    area = tf.random.stateless_uniform([batch], seeds[0], 0.08, 1.0)
    log_ratio = tf.random.stateless_uniform([batch], seeds[1], np.log(3 / 4), np.log(4 / 3))
    ratio = tf.exp(log_ratio)
    crop_h = tf.minimum(tf.sqrt(area / ratio), 1.0)
    crop_w = tf.minimum(tf.sqrt(area * ratio), 1.0)
    top = tf.random.stateless_uniform([batch], seeds[2]) * (1.0 - crop_h)
    left = tf.random.stateless_uniform([batch], seeds[3]) * (1.0 - crop_w)
    boxes = tf.stack([top, left, top + crop_h, left + crop_w], axis=1)
    x = tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, tf.range(batch), tf.stack([height, width]))
    flip = tf.random.stateless_uniform([batch], seeds[4]) < 0.5
    x = tf.where(flip[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(x, axis=[2]), x)
    jitter = tf.random.stateless_uniform([batch, 3], seeds[5], 0.6, 1.4)  # brightness, contrast, saturation factors
    x = x * jitter[:, 0, tf.newaxis, tf.newaxis, tf.newaxis]
    mean_level = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean_level) * jitter[:, 1, tf.newaxis, tf.newaxis, tf.newaxis] + mean_level
    gray = tf.reduce_mean(x, axis=-1, keepdims=True)
    x = (x - gray) * jitter[:, 2, tf.newaxis, tf.newaxis, tf.newaxis] + gray
    return normalize(tf.clip_by_value(x, 0.0, 255.0), mean, std)


def center_crop_resize(images, fraction=0.875):
    """Validation transform of the imagenet recipe: the central 87.5% (224 of 256), resized back."""
    batch, size = tf.shape(images)[0], tf.shape(images)[1:3]
    low, high = (1.0 - fraction) / 2, (1.0 + fraction) / 2
    boxes = tf.tile([[low, low, high, high]], [batch, 1])
    return tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, tf.range(batch), size)


def train_transform(augment, mean, std, seed=0):
    """The recipe's training transform: ``fn(uint8 batch, batch seed [2]) -> normalised float32 batch``."""
    if augment in ("he", "xu"):
        return lambda images, batch_seed: he_augment(normalize(images, mean, std), batch_seed)
    if augment == "none":
        return lambda images, batch_seed: normalize(images, mean, std)
    if augment == "sequential":
        layers = jin_sequential(seed)
        return lambda images, batch_seed: layers(tf.cast(images, tf.float32), training=True)
    if augment == "imagenet":
        return lambda images, batch_seed: imagenet_train_augment(images, batch_seed, mean, std)
    raise ValueError(f"unknown augmentation {augment!r}; choose one of: {', '.join(AUGMENTATIONS)}")


def eval_transform(augment, mean, std):
    """The recipe's validation/test transform: ``fn(uint8 batch) -> normalised float32 batch``."""
    if augment == "imagenet":
        return lambda images: normalize(center_crop_resize(images), mean, std)
    return lambda images: normalize(images, mean, std)


def _per_replica_batch(batch_size, input_context):
    return input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size


def _shard(dataset, input_context):
    if input_context and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return dataset


def make_train_dataset(images, labels, batch_size, mean, std, augment="he", seed=0, input_context=None):
    """An endless, shuffled, augmented training dataset of (float images, int labels).

    ``batch_size`` is the global batch; under ``tf.distribute`` the
    ``input_context`` turns it into the per-replica batch and shards the data
    per input pipeline (one per worker). Batch ``i`` is augmented with the
    seed ``(seed, i)``, so a seed fixes the whole stream.
    """
    if augment == "imagedatagenerator":
        return imagedatagenerator_dataset(images, labels, batch_size, mean, std, seed, input_context)
    transform = train_transform(augment, mean, std, seed)
    dataset = _shard(tf.data.Dataset.from_tensor_slices((images, labels)), input_context)
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(_per_replica_batch(batch_size, input_context), drop_remainder=True)

    def preprocess(index, batch):
        x, y = batch
        return transform(x, tf.stack([tf.cast(seed, tf.int64), index])), y

    return dataset.enumerate().map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(images, labels, batch_size, mean, std, input_context=None, augment="he"):
    """A single pass over (preprocessed images, labels), in order, last batch kept."""
    transform = eval_transform(augment, mean, std)
    dataset = _shard(tf.data.Dataset.from_tensor_slices((images, labels)), input_context)
    dataset = dataset.batch(_per_replica_batch(batch_size, input_context))
    dataset = dataset.map(lambda x, y: (transform(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def denormalize(images, mean, std):
    """Normalised float images -> uint8 for display."""
    x = images * tf.constant(std, tf.float32) + tf.constant(mean, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def augmentation_grid(images, augment, mean, std, versions=5, seed=0):
    """Liang's Fig. 5 as an array: one row per image, the original then ``versions`` augmented copies.

    Returns uint8 [rows * H, (versions + 1) * W, C]; used for the PNG preview
    and the TensorBoard image of every training run.
    """
    images = np.asarray(images)
    shown = [images]
    if augment == "imagedatagenerator":
        generator = liang_image_data_generator()
        for version in range(versions):
            flow = generator.flow(images.astype(np.float32), batch_size=len(images), shuffle=False, seed=seed + version)
            shown.append(np.clip(np.round(next(flow)), 0, 255).astype(np.uint8))
    else:
        transform = train_transform(augment, mean, std, seed)
        for version in range(versions):
            out = transform(images, tf.constant([seed, version], tf.int64))
            shown.append(denormalize(out, mean, std).numpy())
    rows = [np.concatenate([version[i] for version in shown], axis=1) for i in range(len(images))]
    return np.concatenate(rows, axis=0)


def liang_image_data_generator():
    """The ImageDataGenerator Liang 2020 trains with: width/height shift 0.1, horizontal flip."""
    return tf.keras.preprocessing.image.ImageDataGenerator(
        width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True
    )


def imagedatagenerator_dataset(images, labels, batch_size, mean, std, seed=0, input_context=None, overlap=True):
    """Liang 2020's augmentation: Keras ``ImageDataGenerator`` (shift 0.1, horizontal flip).

    Kept for fidelity to the paper, not speed: it runs per image in Python and
    holds a float32 copy of the images. Its shifts need scipy. With
    ``overlap=False`` each batch is made only when the training step asks for
    it, as the paper's code does (the benchmark's baseline); by default tf.data
    prefetches so the generator runs while the model trains.
    """
    generator = liang_image_data_generator()
    if input_context and input_context.num_input_pipelines > 1:
        part = slice(input_context.input_pipeline_id, None, input_context.num_input_pipelines)
        images, labels = images[part], labels[part]
    per_replica = _per_replica_batch(batch_size, input_context)
    flow = generator.flow(images, labels, batch_size=per_replica, shuffle=True, seed=seed)

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
        return dataset.map(lambda x, y: (normalize(x, mean, std), y)).with_options(options)
    dataset = dataset.map(lambda x, y: (normalize(x, mean, std), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
