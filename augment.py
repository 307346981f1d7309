"""Preprocessing recipes: how each paper normalised, augmented and evaluated its images, one entry each.

A recipe (``RECIPES[name]``) holds its paper, a one-line summary (``--help`` and the README read
it), its normalisation, its training transform, its evaluation transform and the size images
are stored at. Transforms run on whole uint8 batches inside ``tf.data`` (``cifar10_input``'s
pipelines); the normalisation is a small JSON-able dict saved with the run, so ``--mode test``
and ``--mode predict`` repeat it exactly:

  {"mean": [...], "std": [...]}                 (x - mean) / std per channel, 0-255 scale
  {"per_image": true}                            each image standardised on its own (tf.image.per_image_standardization)
  {"keras_preprocess": "resnet", "mean": [...]}  keras.applications.<module>.preprocess_input;
                                                 "mean" is the colour He-style padding fills with

Adding a recipe is one entry in ``RECIPES``.
"""

import dataclasses
from typing import Callable, Optional

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import keras
import numpy as np
import tensorflow as tf

PAD = 4  # He et al.: 4 pixels padded on each side, then a random 32x32 crop
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # torchvision's ImageNet statistics
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# keras.applications.resnet.preprocess_input ("caffe" mode): RGB -> BGR, minus these BGR means.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
CENTER_CROP = 0.875  # the imagenet recipe validates on the central 87.5% (224 of 256)


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


def normalize(images, norm):
    """uint8 (or float 0-255) images -> the float32 inputs the model was trained on."""
    images = tf.cast(images, tf.float32)
    if norm.get("per_image"):
        return tf.image.per_image_standardization(images)
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


# ----------------------------------------------------------------------------
# Normalisation statistics (0-255 scale), by recipe


def _rescale_statistics(images):
    channels = images.shape[-1]
    return [0.0] * channels, [255.0] * channels


def _half_statistics(images):
    channels = images.shape[-1]
    return [127.5] * channels, [127.5] * channels


def _imagenet_statistics(images):
    if images.shape[-1] != 3:
        raise ValueError(f"ImageNet RGB statistics need 3-channel images, got {images.shape[-1]}")
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


# ----------------------------------------------------------------------------
# Augmentations: fn(float batch 0-255, batch seed [2], output size) -> augmented float batch 0-255


def _no_augmentation(images, seed, output_size):
    return images


def _black_pad_crop_flip(images, seed, output_size):
    """torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip: the raw image padded with black."""
    return he_augment(images, seed)


def _imagenet_augmentation(images, seed, output_size):
    return imagenet_train_augment(images, seed, output_size if output_size is not None else tf.shape(images)[1:3])


def _flip_both_ways(images, seed, output_size):
    """Jin's RandomFlip('horizontal_and_vertical') from the batch seed (for models that bring their own scaling)."""
    flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed + 1) < 0.5
    images = _flip_left_right(images, seed)
    return tf.where(flip[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(images, axis=[1]), images)


# ----------------------------------------------------------------------------
# The table


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One paper's preprocessing; see the module docstring."""

    paper: str
    summary: str  # one line: --help, the README table
    statistics: Optional[Callable]  # train images -> (mean, std) per channel, 0-255 scale; None: per image
    augmentation: Callable  # (float batch 0-255, batch seed, output size) -> float batch 0-255
    crop_to_evaluate: bool = False  # store images at size / CENTER_CROP, short side first (aspect ratio kept, the
    # centre taken), and evaluate on their central CENTER_CROP: torchvision's Resize(256) + CenterCrop(224)
    pad_after_normalising: bool = False  # He: zero padding of normalised images, i.e. mean-colour padding
    keras_layers: bool = False  # Jin: the paper's own Keras Sequential (Rescaling + RandomFlip) trains
    image_data_generator: bool = False  # Liang: Keras' per-image ImageDataGenerator feeds training

    def stored_size(self, input_size):
        """The size images are kept at for a model input of ``input_size`` (H, W)."""
        if not self.crop_to_evaluate:
            return tuple(input_size)
        return tuple(int(np.ceil(s / CENTER_CROP)) for s in input_size)


RECIPES = {
    "he": Recipe("He et al. 2016a", "4-pixel pad (mean colour) + random crop + horizontal flip; per-channel mean/std",
                 channel_stats, _black_pad_crop_flip, pad_after_normalising=True),
    "imagedatagenerator": Recipe("Liang 2020", "Keras ImageDataGenerator, shift 0.1 + horizontal flip; per-channel "
                                 "mean/std", channel_stats, _no_augmentation, image_data_generator=True),
    "liang": Recipe("Liang 2020 + wenxinxu/resnet-in-tensorflow", "Keras ImageDataGenerator, shift 0.1 + horizontal "
                    "flip (Liang's text); each image standardised on its own (his code's whitening)", None,
                    _no_augmentation, image_data_generator=True),
    "sequential": Recipe("Jin 2023", "keras.Sequential([Rescaling(1/255), RandomFlip('horizontal_and_vertical')])",
                         _rescale_statistics, _flip_both_ways, keras_layers=True),
    "xu": Recipe("Xu", "4-pixel black pad + random crop + horizontal flip (torchvision RandomCrop(32, padding=4)); "
                 "mean 0.5 / std 0.5 on [0, 1]", _half_statistics, _black_pad_crop_flip),
    "imagenet": Recipe("Yuan", "random resized crop + flip + colour jitter; validation central crop (0.875); "
                       "ImageNet mean/std", _imagenet_statistics, _imagenet_augmentation, crop_to_evaluate=True),
    "none": Recipe("(baseline)", "no augmentation; per-channel mean/std", channel_stats, _no_augmentation),
}


def recipe(name):
    if name not in RECIPES:
        raise ValueError(f"unknown augmentation {name!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[name]


def normalization(augment, train_images, keras_preprocess=None):
    """The normalisation dict of a recipe (see above); saved with the run so testing matches training.

    ``keras_preprocess`` (e.g. "resnet") overrides the recipe's own: a
    ``keras.applications`` backbone must see the inputs it was trained on.
    """
    statistics = recipe(augment).statistics
    if keras_preprocess:
        if train_images.shape[-1] != 3:
            raise ValueError(f"keras.applications preprocessing needs 3-channel images, got {train_images.shape[-1]}")
        return {"keras_preprocess": keras_preprocess, "mean": list(CAFFE_MEAN_RGB)}
    if statistics is None:
        return {"per_image": True}
    try:
        mean, std = statistics(train_images)
    except ValueError as error:
        raise ValueError(f"--augment {augment}: {error}") from None
    return {"mean": mean, "std": std}


def train_transform(augment, norm, seed=0, output_size=None):
    """The recipe's training transform: ``fn(uint8 batch, batch seed [2]) -> normalised float32 batch``.

    ``output_size`` (H, W) is the model's input size; only the imagenet recipe
    crops to a size other than the stored images'.
    """
    chosen = recipe(augment)
    if chosen.keras_layers and "keras_preprocess" not in norm:
        # Jin's own Keras pipeline, Rescaling included. Its RandomFlip draws from
        # the layer's seeded generator, not from the batch seed.
        layers = jin_sequential(seed)
        return lambda images, batch_seed: layers(tf.cast(images, tf.float32), training=True)
    if chosen.pad_after_normalising:
        # Zero padding after normalising is padding with the mean colour before it: one pass fewer.
        return lambda images, batch_seed: he_augment(normalize(images, norm), batch_seed)
    return lambda images, batch_seed: normalize(
        chosen.augmentation(tf.cast(images, tf.float32), batch_seed, output_size), norm)


def eval_transform(augment, norm, output_size=None):
    """The recipe's validation/test transform: ``fn(uint8 batch) -> normalised float32 batch``."""
    if recipe(augment).crop_to_evaluate:
        return lambda images: normalize(center_crop(images, output_size or images.shape[1:3]), norm)
    return lambda images: normalize(images, norm)


def _preview(augment, norm, images, seed, version, output_size):
    """One augmented version of ``images`` (uint8) for the grid, on the 0-255 scale."""
    chosen = recipe(augment)
    if chosen.image_data_generator:
        flow = liang_image_data_generator().flow(images.astype(np.float32), batch_size=len(images), shuffle=False,
                                                 seed=seed + version)
        return next(flow)
    if chosen.keras_layers and "keras_preprocess" not in norm:
        # Jin's pipeline ends in [0, 1]: scale back for display.
        return train_transform(augment, norm, seed + version)(images, None).numpy() * 255.0
    seeds = tf.constant([seed, version], tf.int64)
    if chosen.pad_after_normalising:  # padded with the mean colour, shown before normalising
        return he_augment(tf.cast(images, tf.float32), seeds, norm["mean"]).numpy()
    return chosen.augmentation(tf.cast(images, tf.float32), seeds, output_size).numpy()


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
        shown.append(_to_uint8(_preview(augment, norm, images, seed, version, output_size)))
    rows = [np.concatenate([version[i] for version in shown], axis=1) for i in range(len(images))]
    return np.concatenate(rows, axis=0)


def liang_image_data_generator():
    """The ImageDataGenerator Liang 2020 trains with: width/height shift 0.1, horizontal flip."""
    return tf.keras.preprocessing.image.ImageDataGenerator(
        width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True
    )
