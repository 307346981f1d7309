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

import contextlib
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


def fetch(url, md5, folder, what):
    """Downloads ``url`` into ``folder`` with keras.utils.get_file (progress bar, MD5 check).

    The file arrives under a temporary ``.part`` name and is renamed only once
    its MD5 matched, so an interrupted or bad download never leaves a file a
    later run would trust. Raises DataError with a one-line hint on failure.
    """
    fname = os.path.basename(url)
    folder = os.path.abspath(folder)
    target, partial = os.path.join(folder, fname), os.path.join(folder, f".{fname}.part")
    try:
        tf.keras.utils.get_file(f".{fname}.part", url, md5_hash=md5, cache_dir=folder, cache_subdir="")
    except Exception as error:  # ValueError on an MD5 mismatch; a bare Exception when offline
        if os.path.exists(partial):
            os.remove(partial)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        failure = (f"downloaded {what} {fname} failed its MD5 check" if isinstance(error, ValueError)
                   else f"could not download {what} from {url}")
        raise DataError(
            f"{failure} ({reason}); download {fname} yourself and pass --data_dir DIR (the folder holding it)") from None
    os.replace(partial, target)
    return target


def download_cifar10(cache_dir):
    """Downloads the official archive into ``cache_dir`` (MD5-checked) and returns its path."""
    return fetch(CIFAR10_URL, CIFAR10_MD5, cache_dir, "CIFAR-10")


@contextlib.contextmanager
def created_folder(path):
    """Makes ``path`` if missing, and removes it again if the block fails.

    A failed download into a folder the suite made leaves nothing behind.
    """
    made = not os.path.exists(path)
    if made:
        os.makedirs(path)
    try:
        yield path
    except BaseException:
        if made and os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
        raise


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
        raise DataError(f"CIFAR-10 archive {path} is truncated or corrupt ({error}); delete it or pass another --data_dir") from None
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
# Splits and statistics


def split_validation(images, labels, fraction, seed):
    """Holds out ``fraction`` of the images (seeded permutation); returns (train, validation)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    order = np.random.RandomState(seed).permutation(len(images))
    held = int(round(len(images) * fraction))
    val, train = np.sort(order[:held]), np.sort(order[held:])
    return (images[train], labels[train]), (images[val], labels[val])


def channel_stats(images, chunk=4096):
    """Per-channel mean and std on the 0-255 scale, from uint8 images [N, H, W, C] (array or tensor).

    Summed in chunks, so 50,000 CIFAR images never become a 1.2 GB float64 copy.
    """
    channels = images.shape[-1]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for begin in range(0, len(images), chunk):
        part = np.asarray(images[begin:begin + chunk]).reshape(-1, channels).astype(np.float64)
        total += part.sum(axis=0)
        squares += np.square(part).sum(axis=0)
        count += len(part)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 1e-12))
    return [float(v) for v in mean], [float(v) for v in std]


# ----------------------------------------------------------------------------
# Preprocessing and augmentation: one named recipe per paper (batched tf ops)
#
# A recipe is an augmentation (on float images in 0-255) followed by a
# normalisation. The normalisation is a small JSON-able dict saved with the
# run, so --mode test repeats it exactly:
#   {"mean": [...], "std": [...]}                 (x - mean) / std per channel, 0-255 scale
#   {"keras_preprocess": "resnet", "mean": [...]}  keras.applications.<module>.preprocess_input;
#                                                  "mean" is only the colour He-style padding fills with

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # torchvision's ImageNet statistics
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# keras.applications.resnet.preprocess_input ("caffe" mode): RGB -> BGR, minus these BGR means.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
CENTER_CROP = 0.875  # the imagenet recipe validates on the central 87.5% (224 of 256)
RECIPES = {
    "he": ("dataset", "He et al.: 4-pixel pad + random crop + horizontal flip; per-channel mean/std"),
    "imagedatagenerator": ("dataset", "Liang: Keras ImageDataGenerator, shift 0.1 + horizontal flip; per-channel mean/std"),
    "sequential": ("rescale", "Jin: keras.Sequential([Rescaling(1/255), RandomFlip('horizontal_and_vertical')])"),
    "xu": ("half", "Xu: mean 0.5 / std 0.5 on [0, 1], 4-pixel pad + random crop + horizontal flip"),
    "imagenet": ("imagenet", "Yuan: random resized crop + flip + colour jitter; validation central crop (0.875); "
                             "ImageNet mean/std"),
    "none": ("dataset", "no augmentation; per-channel mean/std"),
}
AUGMENTATIONS = tuple(RECIPES)


def normalization(augment, train_images, keras_preprocess=None):
    """The normalisation dict of a recipe (see above); saved with the run so testing matches training.

    ``keras_preprocess`` (e.g. "resnet") overrides the recipe's own: a
    ``keras.applications`` backbone must see the inputs it was trained on.
    """
    if augment not in RECIPES:
        raise ValueError(f"unknown augmentation {augment!r}; choose one of: {', '.join(AUGMENTATIONS)}")
    channels = train_images.shape[-1]
    if keras_preprocess:
        if channels != 3:
            raise ValueError(f"keras.applications preprocessing needs 3-channel images, got {channels}")
        return {"keras_preprocess": keras_preprocess, "mean": list(CAFFE_MEAN_RGB)}
    kind = RECIPES[augment][0]
    if kind == "dataset":
        mean, std = channel_stats(train_images)
    elif kind == "rescale":
        mean, std = [0.0] * channels, [255.0] * channels
    elif kind == "half":
        mean, std = [127.5] * channels, [127.5] * channels
    elif channels != 3:
        raise ValueError(f"--augment {augment} uses ImageNet RGB statistics and needs 3-channel images, got {channels}")
    else:
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    return {"mean": mean, "std": std}


def normalize(images, norm):
    """uint8 (or float 0-255) images -> the float32 inputs the model was trained on."""
    images = tf.cast(images, tf.float32)
    if norm.get("keras_preprocess"):
        module = getattr(keras.applications, norm["keras_preprocess"])
        return module.preprocess_input(images)
    return (images - tf.constant(norm["mean"], tf.float32)) / tf.constant(norm["std"], tf.float32)


def _flip_left_right(images, seed):
    flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed) < 0.5
    return tf.where(flip[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(images, axis=[2]), images)


def he_augment(images, seed, fill=0.0):
    """He et al.'s augmentation on a float batch: 4-pixel pad, random crop, random horizontal flip.

    He et al. pad mean-subtracted images with zeros, i.e. with the mean colour:
    ``fill`` is that colour on the 0-255 scale (per channel). ``seed`` is a
    shape-[2] int tensor; the same seed gives the same crops and flips. One
    nearest-neighbour ``crop_and_resize`` does crop and flip (a box whose x1 > x2
    is mirrored): pixel-exact, and about 3x faster than gathering rows and columns.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    if isinstance(fill, (int, float)) and fill == 0:  # normalised images: He's zero padding as it is
        padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    else:
        fill = tf.constant(fill, tf.float32)
        padded = tf.pad(images - fill, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]]) + fill
    offsets = tf.cast(tf.random.stateless_uniform([batch, 2], seed, minval=0, maxval=2 * PAD + 1, dtype=tf.int32),
                      tf.float32)
    flip = tf.random.stateless_uniform([batch], seed + 1) < 0.5
    span_y = tf.cast(height + 2 * PAD - 1, tf.float32)  # box coordinates are fractions of (size - 1)
    span_x = tf.cast(width + 2 * PAD - 1, tf.float32)
    top, left = offsets[:, 0] / span_y, offsets[:, 1] / span_x
    bottom = (offsets[:, 0] + tf.cast(height - 1, tf.float32)) / span_y
    right = (offsets[:, 1] + tf.cast(width - 1, tf.float32)) / span_x
    boxes = tf.stack([top, tf.where(flip, right, left), bottom, tf.where(flip, left, right)], axis=1)
    return tf.image.crop_and_resize(padded, boxes, tf.range(batch), tf.stack([height, width]), method="nearest")


def jin_sequential(seed):
    """Jin's augmentation as the paper builds it: Rescaling(1/255) then RandomFlip (both directions)."""
    return keras.Sequential(
        [keras.layers.Rescaling(1.0 / 255), keras.layers.RandomFlip("horizontal_and_vertical", seed=seed)],
        name="jin_augmentation",
    )


def imagenet_train_augment(images, seed, output_size):
    """Yuan's training transform on a float batch (0-255): random resized crop (scale 0.08-1, ratio
    3/4-4/3) to ``output_size``, horizontal flip, colour jitter (brightness, contrast, saturation 0.4)."""
    batch = tf.shape(images)[0]
    seeds = [seed + i for i in range(6)]
    area = tf.random.stateless_uniform([batch], seeds[0], 0.08, 1.0)
    ratio = tf.exp(tf.random.stateless_uniform([batch], seeds[1], np.log(3 / 4), np.log(4 / 3)))
    crop_h = tf.minimum(tf.sqrt(area / ratio), 1.0)
    crop_w = tf.minimum(tf.sqrt(area * ratio), 1.0)
    top = tf.random.stateless_uniform([batch], seeds[2]) * (1.0 - crop_h)
    left = tf.random.stateless_uniform([batch], seeds[3]) * (1.0 - crop_w)
    boxes = tf.stack([top, left, top + crop_h, left + crop_w], axis=1)
    x = tf.image.crop_and_resize(images, boxes, tf.range(batch), output_size)
    x = _flip_left_right(x, seeds[4])
    jitter = tf.random.stateless_uniform([batch, 3], seeds[5], 0.6, 1.4)  # brightness, contrast, saturation factors
    x = x * jitter[:, 0, tf.newaxis, tf.newaxis, tf.newaxis]
    mean_level = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean_level) * jitter[:, 1, tf.newaxis, tf.newaxis, tf.newaxis] + mean_level
    gray = tf.reduce_mean(x, axis=-1, keepdims=True)
    x = (x - gray) * jitter[:, 2, tf.newaxis, tf.newaxis, tf.newaxis] + gray
    return tf.clip_by_value(x, 0.0, 255.0)


def center_crop(images, output_size, fraction=CENTER_CROP):
    """The imagenet recipe's validation transform: the central ``fraction`` of the image, at ``output_size``.

    Images stored at 256 for a 224 model give exactly torchvision's Resize(256) +
    CenterCrop(224); otherwise the crop is resized to ``output_size``.
    """
    height, width = images.shape[1], images.shape[2]
    crop_h, crop_w = int(round(height * fraction)), int(round(width * fraction))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    x = tf.cast(images[:, top:top + crop_h, left:left + crop_w], tf.float32)
    if (crop_h, crop_w) != tuple(output_size):
        x = tf.image.resize(x, output_size)
    return x


def _augmenter(augment, norm, output_size):
    """``fn(float batch 0-255, batch seed [2]) -> augmented float batch 0-255`` for every tensor recipe."""
    if augment in ("he", "xu"):
        return lambda images, batch_seed: he_augment(images, batch_seed, norm["mean"])
    if augment == "none":
        return lambda images, batch_seed: images
    if augment == "imagenet":
        return lambda images, batch_seed: imagenet_train_augment(
            images, batch_seed, output_size if output_size is not None else tf.shape(images)[1:3])
    if augment == "sequential":
        flip = keras.layers.RandomFlip("horizontal_and_vertical")
        return lambda images, batch_seed: flip(images, training=True)
    raise ValueError(f"unknown augmentation {augment!r}; choose one of: {', '.join(AUGMENTATIONS)}")


def train_transform(augment, norm, seed=0, output_size=None):
    """The recipe's training transform: ``fn(uint8 batch, batch seed [2]) -> normalised float32 batch``.

    ``output_size`` (H, W) is the model's input size; only the imagenet recipe
    crops to a size other than the stored images'.
    """
    if augment == "sequential" and "keras_preprocess" not in norm:
        # Jin's own Keras pipeline, Rescaling included. Its RandomFlip draws from
        # the layer's seeded generator, not from the batch seed.
        layers = jin_sequential(seed)
        return lambda images, batch_seed: layers(tf.cast(images, tf.float32), training=True)
    if augment in ("he", "xu"):
        # Zero padding after normalising is padding with the mean colour before it: one pass fewer.
        return lambda images, batch_seed: he_augment(normalize(images, norm), batch_seed)
    augmenter = _augmenter(augment, norm, output_size)
    return lambda images, batch_seed: normalize(augmenter(tf.cast(images, tf.float32), batch_seed), norm)


def eval_transform(augment, norm, output_size=None):
    """The recipe's validation/test transform: ``fn(uint8 batch) -> normalised float32 batch``."""
    if augment == "imagenet":
        return lambda images: normalize(center_crop(images, output_size or images.shape[1:3]), norm)
    return lambda images: normalize(images, norm)


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
    if augment == "imagedatagenerator":
        return imagedatagenerator_dataset(images, labels, batch_size, norm, seed, input_context, start_step=start_step)
    pipeline_id, pipelines, batches_per_step = _pipeline(input_context)
    per_replica = _per_replica_batch(batch_size, input_context)
    transform = train_transform(augment, norm, seed, output_size or images.shape[1:3])
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
        return transform(tf.gather(images_t, batch_indices), tf.stack([stream_seed, index])), tf.gather(labels_t, batch_indices)

    # Keras' RandomFlip (the sequential recipe) advances its own generator: map serially so it stays reproducible.
    calls = tf.data.AUTOTUNE if parallel and augment != "sequential" else None
    return batches.map(preprocess, num_parallel_calls=calls).prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(images, labels, batch_size, norm, input_context=None, augment="he", output_size=None):
    """A single pass over (preprocessed images, labels), in order, last batch kept."""
    transform = eval_transform(augment, norm, output_size)
    dataset = _shard(tf.data.Dataset.from_tensor_slices((images, labels)), input_context)
    dataset = dataset.batch(_per_replica_batch(batch_size, input_context))
    dataset = dataset.map(lambda x, y: (transform(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _to_uint8(images):
    return np.clip(np.round(np.asarray(images)), 0, 255).astype(np.uint8)


def augmentation_grid(images, augment, norm, versions=5, seed=0, output_size=None):
    """Liang's Fig. 5 as an array: one row per image, the original then ``versions`` augmented copies.

    Returns uint8 [rows * H, (versions + 1) * W, C] at ``output_size`` (the
    originals are centre-cropped like validation images when it differs); used
    for the PNG preview and the TensorBoard image of every training run.
    """
    images = np.asarray(images)
    output_size = tuple(output_size or images.shape[1:3])
    originals = images if output_size == images.shape[1:3] else _to_uint8(center_crop(images, output_size))
    shown = [originals]
    for version in range(versions):
        if augment == "imagedatagenerator":
            flow = liang_image_data_generator().flow(
                images.astype(np.float32), batch_size=len(images), shuffle=False, seed=seed + version)
            augmented = next(flow)
        elif augment == "sequential" and "keras_preprocess" not in norm:
            # Jin's pipeline ends in [0, 1]: scale back for display.
            augmented = train_transform(augment, norm, seed + version)(images, None).numpy() * 255.0
        else:
            augmented = _augmenter(augment, norm, output_size)(
                tf.cast(images, tf.float32), tf.constant([seed, version], tf.int64)).numpy()
        shown.append(_to_uint8(augmented))
    rows = [np.concatenate([version[i] for version in shown], axis=1) for i in range(len(images))]
    return np.concatenate(rows, axis=0)


def liang_image_data_generator():
    """The ImageDataGenerator Liang 2020 trains with: width/height shift 0.1, horizontal flip."""
    return tf.keras.preprocessing.image.ImageDataGenerator(
        width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True
    )


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
    generator = liang_image_data_generator()
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
        return dataset.map(lambda x, y: (normalize(x, norm), y)).with_options(options)
    dataset = dataset.map(lambda x, y: (normalize(x, norm), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
