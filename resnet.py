"""Keras functional-API model builders and the name-to-builder table.

CIFAR ResNets follow He et al. 2016a, "Deep Residual Learning for Image
Recognition", Section 4.2: a 3x3 conv with 16 filters, three stages of n
residual blocks with 16/32/64 filters (stride 2 at the start of stages 2 and
3), global average pooling and a dense layer: depth = 6n + 2.

Three choices the papers disagree on are arguments:

* ``shortcut`` (the stride-2 shortcut between stages; parameter-free for both A's):
  ``"A"`` is He et al.'s option A, the one He uses on CIFAR (and akamaster's
  pytorch_resnet_cifar10): the identity subsampled with stride 2 (every second
  pixel), the new channels zeros. ``"A_avgpool"`` is Liang 2020's variant, from
  wenxinxu/resnet-in-tensorflow which his text follows: 2x2 average pooling, then
  zero channels. ``"B"`` is a 1x1 stride-2 projection conv + BN.
* ``preactivation``: ``False`` is He 2016a's block (conv-BN-ReLU, conv-BN, add,
  ReLU), our default because the default recipe is He's; ``True`` is the block
  Liang 2020 describes (BN-ReLU-conv twice, then add; a final BN-ReLU before
  pooling).
* ``conv_padding`` (where a strided convolution pads; the CIFAR and ImageNet
  ResNets take it): ``"same"`` is TensorFlow's, which on an even input pads
  only the bottom and right, so output pixel i is centred on input pixel 2i+1
  while option A's shortcut keeps pixel 2i; ``"symmetric"`` pads (k-1)/2 on
  every side, as Caffe, Torch and PyTorch do (He's and akamaster's code), so
  output i is centred on 2i, the pixel the shortcut keeps.

Every model returns logits (no softmax). Train with
``SparseCategoricalCrossentropy(from_logits=True)``; ``cifar10_test`` applies
the softmax where probabilities are asked for.

Weight decay: He et al. use SGD weight decay 1e-4, i.e. a gradient of 1e-4 * w.
Keras' ``L2(l)`` adds ``l * sum(w**2)`` whose gradient is ``2 * l * w``, so we
pass ``L2(weight_decay / 2)`` to make ``--weight_decay`` mean what the paper
means (the old Keras CIFAR example's ``l2(1e-4)`` is in effect 2e-4). The
builders decay the conv and dense kernels; ``build_model(...,
weight_decay_scope="all")`` decays every trainable parameter (batch-norm scales
and offsets, biases), as Caffe, fb.resnet.torch and akamaster's PyTorch code do.
"""

import contextlib
import dataclasses
import inspect
import math
import os
import warnings
from typing import Callable, Optional

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import keras
import tensorflow as tf
from keras import layers

BN_MOMENTUM = 0.9  # as in tensorflow/models' CIFAR ResNet; Keras' 0.99 lags on short runs
BN_EPSILON = 1e-5
CONV_PADDINGS = ("same", "symmetric")
WEIGHT_DECAY_SCOPES = ("kernels", "all")


def _l2(weight_decay):
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def _conv(x, filters, kernel_size, strides, weight_decay, name, padding="same"):
    """A bias-free conv. ``padding="symmetric"`` pads a strided conv by (k-1)/2 on every side (see module doc);
    a stride-1 conv pads symmetrically either way."""
    if padding not in CONV_PADDINGS:
        raise ValueError(f"conv_padding must be one of {', '.join(CONV_PADDINGS)}, got {padding!r}")
    if padding == "symmetric" and strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid" if padding == "symmetric" and strides > 1 else "same",
        use_bias=False,  # a BN follows every conv, so a bias would be redundant
        kernel_initializer="he_normal",
        kernel_regularizer=_l2(weight_decay),
        name=name,
    )(x)


@keras.saving.register_keras_serializable(package="resnet_suite")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization computed by TensorFlow's fused kernel (one op forward, one backward).

    Keras 3 builds batch norm from separate moments, normalisation and casts (it dropped ``fused``),
    which on a CPU costs ResNet-20's training step a large share of its time (benchmarks/throughput.py's
    keras_bn rows measure the difference side by side). Same variables (a checkpoint of either layer
    restores into the other), same arithmetic up to rounding: batch
    statistics with the biased variance, moving averages as Keras updates them. Anything but a 4-D
    channels-last input without a mask takes Keras' own path.
    """

    def call(self, inputs, training=None, mask=None):
        if mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3) or not (self.center and self.scale):
            return super().call(inputs, training, mask)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), variance.dtype)
            variance = variance * (count - 1.0) / count  # the kernel returns the unbiased variance; Keras keeps biased
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance, epsilon=self.epsilon,
            is_training=False)
        return outputs


_batch_norm_class = FusedBatchNormalization


@contextlib.contextmanager
def keras_batch_norm():
    """Models built inside use Keras' own BatchNormalization: the benchmark's row that measures the difference."""
    global _batch_norm_class
    _batch_norm_class = layers.BatchNormalization
    try:
        yield
    finally:
        _batch_norm_class = FusedBatchNormalization


def _bn(x, name):
    return _batch_norm_class(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


SHORTCUTS = ("A", "A_avgpool", "B")


def _shortcut(x, filters, stride, shortcut, weight_decay, name):
    """Identity when shapes match, else option A (subsample or average-pool, + zero channels) or B (projection).

    The zero channels come after the kept ones (akamaster and wenxinxu put half
    before, half after): the same model up to a permutation of the following
    convolutions' randomly initialised channels.
    """
    in_filters = x.shape[-1]
    if stride == 1 and in_filters == filters:
        return x
    if shortcut == "B":
        x = _conv(x, filters, 1, stride, weight_decay, f"{name}_proj_conv")
        return _bn(x, f"{name}_proj_bn")
    if filters != 2 * in_filters or stride != 2:
        raise ValueError("option A shortcuts only handle stride 2 with doubled filters")
    if shortcut == "A_avgpool":
        x = layers.AveragePooling2D(2, name=f"{name}_pool")(x)
    else:  # a 1x1 "pool" with stride 2 keeps every second pixel: He's x[:, ::2, ::2]
        x = layers.AveragePooling2D(1, strides=2, name=f"{name}_subsample")(x)
    # Zero channels built from stock layers so a saved .keras loads without custom objects.
    zeros = layers.Rescaling(0.0, name=f"{name}_zeros")(x)
    return layers.Concatenate(name=f"{name}_pad")([x, zeros])


def basic_block_v1(x, filters, stride, shortcut, weight_decay, name, padding="same"):
    """He 2016a block: conv-BN-ReLU, conv-BN, add the shortcut, ReLU."""
    residual = _conv(x, filters, 3, stride, weight_decay, f"{name}_conv1", padding)
    residual = layers.ReLU(name=f"{name}_relu1")(_bn(residual, f"{name}_bn1"))
    residual = _bn(_conv(residual, filters, 3, 1, weight_decay, f"{name}_conv2"), f"{name}_bn2")
    x = _shortcut(x, filters, stride, shortcut, weight_decay, name)
    x = layers.Add(name=f"{name}_add")([x, residual])
    return layers.ReLU(name=f"{name}_out")(x)


def basic_block_preact(x, filters, stride, shortcut, weight_decay, name, padding="same"):
    """Liang 2020's block: BN-ReLU-conv twice; the shortcut starts from the block input."""
    residual = layers.ReLU(name=f"{name}_relu1")(_bn(x, f"{name}_bn1"))
    residual = _conv(residual, filters, 3, stride, weight_decay, f"{name}_conv1", padding)
    residual = layers.ReLU(name=f"{name}_relu2")(_bn(residual, f"{name}_bn2"))
    residual = _conv(residual, filters, 3, 1, weight_decay, f"{name}_conv2")
    x = _shortcut(x, filters, stride, shortcut, weight_decay, name)
    return layers.Add(name=f"{name}_add")([x, residual])


def resnet_v1(
    depth,
    input_shape=(32, 32, 3),
    num_classes=10,
    weight_decay=1e-4,
    shortcut="A",
    preactivation=False,
    conv_padding="same",
):
    """He et al.'s CIFAR ResNet of depth 6n+2.

    Args:
      depth: 20, 32, 44, 56, 110, 1202 or any 6n+2.
      input_shape: image shape (H, W, C); 32x32x3 for CIFAR-10.
      num_classes: size of the logits.
      weight_decay: SGD-style weight decay on conv and dense kernels (see module doc).
      shortcut: "A" (He on CIFAR: strided subsampling + zero channels), "A_avgpool"
        (Liang 2020: 2x2 average pooling + zero channels) or "B" (1x1 projection).
      preactivation: False for He 2016a's conv-BN-ReLU block (default), True for
        Liang 2020's BN-ReLU-conv block.
      conv_padding: "same" (TensorFlow's) or "symmetric" (Caffe's and PyTorch's) for
        the stride-2 convolutions (see module doc).

    Returns:
      A ``keras.Model`` mapping float images to logits ``[batch, num_classes]``.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"ResNet v1 depth must be 6n+2 (20, 32, 44, 56, 110, 1202), got {depth}")
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
    blocks_per_stage = (depth - 2) // 6
    block = basic_block_preact if preactivation else basic_block_v1

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(inputs, 16, 3, 1, weight_decay, "stem_conv")
    if not preactivation:
        x = layers.ReLU(name="stem_relu")(_bn(x, "stem_bn"))
    for stage, filters in enumerate((16, 32, 64)):
        for index in range(blocks_per_stage):
            stride = 2 if stage > 0 and index == 0 else 1
            x = block(x, filters, stride, shortcut, weight_decay, f"stage{stage + 1}_block{index + 1}", conv_padding)
    if preactivation:
        x = layers.ReLU(name="final_relu")(_bn(x, "final_bn"))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(
        num_classes,
        kernel_initializer="he_normal",
        kernel_regularizer=_l2(weight_decay),
        name="logits",
    )(x)
    variant = "preact" if preactivation else "v1"
    return keras.Model(inputs, outputs, name=f"resnet{depth}_{variant}_{shortcut}")


def _signature_without_depth(generic):
    """``generic``'s signature less its depth: what help() shows for a registry function, and where
    option_defaults reads the options' defaults (a ``__wrapped__`` link showed ``depth`` as an argument)."""
    signature = inspect.signature(generic)
    return signature.replace(parameters=[p for name, p in signature.parameters.items() if name != "depth"])


def _cifar_resnet(depth):
    def build(input_shape=(32, 32, 3), num_classes=10, weight_decay=1e-4, **options):
        return resnet_v1(depth, input_shape, num_classes, weight_decay, **options)

    build.__signature__ = _signature_without_depth(resnet_v1)
    build.__name__ = f"resnet{depth}"
    build.__doc__ = f"ResNet-{depth} for CIFAR (He et al. 2016a, Section 4.2 and Table 6)."
    return build


resnet20 = _cifar_resnet(20)
resnet32 = _cifar_resnet(32)
resnet44 = _cifar_resnet(44)
resnet56 = _cifar_resnet(56)
resnet110 = _cifar_resnet(110)
resnet1202 = _cifar_resnet(1202)


# ----------------------------------------------------------------------------
# ImageNet-family ResNets (He et al. 2016a, Table 1)

# depth -> (block kind, blocks per stage); He et al. 2016a, Table 1.
IMAGENET_RESNET_SPECS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def _projection(x, filters, stride, weight_decay, name):
    x = _conv(x, filters, 1, stride, weight_decay, f"{name}_proj_conv")
    return _bn(x, f"{name}_proj_bn")


def _basic_block(x, filters, stride, weight_decay, name, padding):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _projection(x, filters, stride, weight_decay, name)
    x = _conv(x, filters, 3, stride, weight_decay, f"{name}_conv1", padding)
    x = layers.ReLU(name=f"{name}_relu1")(_bn(x, f"{name}_bn1"))
    x = _bn(_conv(x, filters, 3, 1, weight_decay, f"{name}_conv2"), f"{name}_bn2")
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, x]))


def _bottleneck_block(x, filters, stride, weight_decay, name, padding):
    """1x1 reduce, 3x3, 1x1 expand (x4). The stride sits on the 3x3 conv, as in torchvision
    ("ResNet v1.5"); He et al. put it on the first 1x1. Parameter counts are the same."""
    shortcut = x
    if stride != 1 or x.shape[-1] != 4 * filters:
        shortcut = _projection(x, 4 * filters, stride, weight_decay, name)
    x = layers.ReLU(name=f"{name}_relu1")(_bn(_conv(x, filters, 1, 1, weight_decay, f"{name}_conv1"), f"{name}_bn1"))
    x = _conv(x, filters, 3, stride, weight_decay, f"{name}_conv2", padding)
    x = layers.ReLU(name=f"{name}_relu2")(_bn(x, f"{name}_bn2"))
    x = _bn(_conv(x, 4 * filters, 1, 1, weight_decay, f"{name}_conv3"), f"{name}_bn3")
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, x]))


def resnet_imagenet(depth, input_shape=(224, 224, 3), num_classes=1000, weight_decay=1e-4, stem="auto",
                    conv_padding="same"):
    """He et al.'s ImageNet ResNet-18/34/50/101/152, with bias-free convolutions.

    Trainable parameters match the published counts (11.69M ... 60.19M, as
    torchvision's bias-free models). ``keras.applications.ResNet50/101/152``
    give their convolutions biases, so their counts are higher by exactly the
    number of conv output channels (tests/test_models.py checks this).

    Args:
      depth: 18, 34, 50, 101 or 152.
      stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool, for 224x224), "cifar"
        (3x3/1 conv, no pooling, as Xu trains on 32x32), or "auto": the
        CIFAR stem for inputs smaller than 64 pixels.
      conv_padding: "same" (TensorFlow's) or "symmetric" (torchvision's) for the
        strided convolutions and the stem's max-pool (see module doc).
    """
    if depth not in IMAGENET_RESNET_SPECS:
        raise ValueError(f"ImageNet ResNet depth must be one of {sorted(IMAGENET_RESNET_SPECS)}, got {depth}")
    if stem == "auto":
        stem = "cifar" if min(input_shape[:2]) < 64 else "imagenet"
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be 'auto', 'imagenet' or 'cifar', got {stem!r}")
    kind, stages = IMAGENET_RESNET_SPECS[depth]
    block = _basic_block if kind == "basic" else _bottleneck_block

    inputs = keras.Input(shape=input_shape, name="image")
    if stem == "imagenet":
        x = _conv(inputs, 64, 7, 2, weight_decay, "stem_conv", conv_padding)
        x = layers.ReLU(name="stem_relu")(_bn(x, "stem_bn"))
        if conv_padding == "symmetric":  # after a ReLU, zeros pad a max-pool as PyTorch's -inf does
            x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="valid" if conv_padding == "symmetric" else "same",
                                name="stem_pool")(x)
    else:
        x = layers.ReLU(name="stem_relu")(_bn(_conv(inputs, 64, 3, 1, weight_decay, "stem_conv"), "stem_bn"))
    for stage, blocks in enumerate(stages):
        for index in range(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            x = block(x, 64 * 2**stage, stride, weight_decay, f"stage{stage + 1}_block{index + 1}", conv_padding)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, kernel_regularizer=_l2(weight_decay), name="logits")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}_{stem}")


def _imagenet_resnet(depth):
    def build(input_shape=(224, 224, 3), num_classes=1000, weight_decay=1e-4, **options):
        return resnet_imagenet(depth, input_shape, num_classes, weight_decay, **options)

    build.__signature__ = _signature_without_depth(resnet_imagenet)
    build.__name__ = f"resnet{depth}"
    build.__doc__ = f"ResNet-{depth} (He et al. 2016a, Table 1), at 224x224 with 1000 classes by default."
    return build


resnet18 = _imagenet_resnet(18)
resnet34 = _imagenet_resnet(34)
resnet50 = _imagenet_resnet(50)
resnet101 = _imagenet_resnet(101)
resnet152 = _imagenet_resnet(152)


# ----------------------------------------------------------------------------
# Pre-activation ResNet v2 for CIFAR (He et al. 2016b)


def _preact_bottleneck(x, filters, stride, weight_decay, name):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (stride), BN-ReLU-conv1x1 (x4), add; projection when shapes change."""
    preact = layers.ReLU(name=f"{name}_relu1")(_bn(x, f"{name}_bn1"))
    shortcut = x
    if stride != 1 or x.shape[-1] != 4 * filters:
        shortcut = _conv(preact, 4 * filters, 1, stride, weight_decay, f"{name}_proj_conv")
    y = _conv(preact, filters, 1, 1, weight_decay, f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu2")(_bn(y, f"{name}_bn2"))
    y = _conv(y, filters, 3, stride, weight_decay, f"{name}_conv2")
    y = layers.ReLU(name=f"{name}_relu3")(_bn(y, f"{name}_bn3"))
    y = _conv(y, 4 * filters, 1, 1, weight_decay, f"{name}_conv3")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def resnet_v2(depth, input_shape=(32, 32, 3), num_classes=10, weight_decay=1e-4):
    """He et al. 2016b's pre-activation bottleneck ResNet for CIFAR, depth 9n+2 (56, 110, 164, 1001).

    Three stages of n bottleneck blocks with widths 16/32/64 (outputs 64/128/256),
    a final BN-ReLU, global average pooling and a dense layer; compare with
    ``resnet_v1`` for the v1-vs-v2 question.
    """
    if depth < 11 or (depth - 2) % 9:
        raise ValueError(f"ResNet v2 depth must be 9n+2 (56, 110, 164, 1001), got {depth}")
    blocks_per_stage = (depth - 2) // 9
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(inputs, 16, 3, 1, weight_decay, "stem_conv")
    for stage, filters in enumerate((16, 32, 64)):
        for index in range(blocks_per_stage):
            stride = 2 if stage > 0 and index == 0 else 1
            x = _preact_bottleneck(x, filters, stride, weight_decay, f"stage{stage + 1}_block{index + 1}")
    x = layers.ReLU(name="final_relu")(_bn(x, "final_bn"))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, kernel_initializer="he_normal", kernel_regularizer=_l2(weight_decay),
                           name="logits")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}_v2")


def _cifar_resnet_v2(depth):
    def build(input_shape=(32, 32, 3), num_classes=10, weight_decay=1e-4):
        return resnet_v2(depth, input_shape, num_classes, weight_decay)

    build.__name__ = f"resnet{depth}_v2"
    build.__doc__ = f"Pre-activation bottleneck ResNet-{depth} for CIFAR (He et al. 2016b)."
    return build


resnet56_v2 = _cifar_resnet_v2(56)
resnet110_v2 = _cifar_resnet_v2(110)
resnet164_v2 = _cifar_resnet_v2(164)


# ----------------------------------------------------------------------------
# Inception-ResNet-v1 (Szegedy et al. 2016, Figs. 10-14; the blocks Liang 2020 shows)

# Residual scales from TF-slim's implementation (the paper suggests 0.1-0.3).
INCEPTION_RESNET_SCALES = {"a": 0.17, "b": 0.10, "c": 0.20}


def _conv_bn_relu(x, filters, kernel_size, weight_decay, name, strides=1, padding="same"):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                      kernel_regularizer=_l2(weight_decay), name=f"{name}_conv")(x)
    return layers.ReLU(name=f"{name}_relu")(_bn(x, f"{name}_bn"))


def _inception_residual(x, branches, scale, weight_decay, name):
    """Concatenate the branches, 1x1 linear conv back to the input width, scale, add, ReLU."""
    mixed = layers.Concatenate(name=f"{name}_concat")(branches) if len(branches) > 1 else branches[0]
    up = layers.Conv2D(x.shape[-1], 1, use_bias=True, kernel_regularizer=_l2(weight_decay), name=f"{name}_up")(mixed)
    up = layers.Rescaling(scale, name=f"{name}_scale")(up)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, up]))


def _block_a(x, wd, name):
    b0 = _conv_bn_relu(x, 32, 1, wd, f"{name}_b0")
    b1 = _conv_bn_relu(_conv_bn_relu(x, 32, 1, wd, f"{name}_b1a"), 32, 3, wd, f"{name}_b1b")
    b2 = _conv_bn_relu(x, 32, 1, wd, f"{name}_b2a")
    b2 = _conv_bn_relu(_conv_bn_relu(b2, 32, 3, wd, f"{name}_b2b"), 32, 3, wd, f"{name}_b2c")
    return _inception_residual(x, [b0, b1, b2], INCEPTION_RESNET_SCALES["a"], wd, name)


def _block_b(x, wd, name):
    b0 = _conv_bn_relu(x, 128, 1, wd, f"{name}_b0")
    b1 = _conv_bn_relu(x, 128, 1, wd, f"{name}_b1a")
    b1 = _conv_bn_relu(_conv_bn_relu(b1, 128, (1, 7), wd, f"{name}_b1b"), 128, (7, 1), wd, f"{name}_b1c")
    return _inception_residual(x, [b0, b1], INCEPTION_RESNET_SCALES["b"], wd, name)


def _block_c(x, wd, name):
    b0 = _conv_bn_relu(x, 192, 1, wd, f"{name}_b0")
    b1 = _conv_bn_relu(x, 192, 1, wd, f"{name}_b1a")
    b1 = _conv_bn_relu(_conv_bn_relu(b1, 192, (1, 3), wd, f"{name}_b1b"), 192, (3, 1), wd, f"{name}_b1c")
    return _inception_residual(x, [b0, b1], INCEPTION_RESNET_SCALES["c"], wd, name)


def _reduction_a(x, wd, k=192, l=192, m=256, n=384):  # noqa: E741 (Szegedy et al.'s names for the filter counts)
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="reduction_a_pool")(x)
    b1 = _conv_bn_relu(x, n, 3, wd, "reduction_a_b1", strides=2, padding="valid")
    b2 = _conv_bn_relu(_conv_bn_relu(x, k, 1, wd, "reduction_a_b2a"), l, 3, wd, "reduction_a_b2b")
    b2 = _conv_bn_relu(b2, m, 3, wd, "reduction_a_b2c", strides=2, padding="valid")
    return layers.Concatenate(name="reduction_a")([pool, b1, b2])


def _reduction_b(x, wd):
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="reduction_b_pool")(x)
    b1 = _conv_bn_relu(_conv_bn_relu(x, 256, 1, wd, "reduction_b_b1a"), 384, 3, wd, "reduction_b_b1b", 2, "valid")
    b2 = _conv_bn_relu(_conv_bn_relu(x, 256, 1, wd, "reduction_b_b2a"), 256, 3, wd, "reduction_b_b2b", 2, "valid")
    b3 = _conv_bn_relu(_conv_bn_relu(x, 256, 1, wd, "reduction_b_b3a"), 256, 3, wd, "reduction_b_b3b")
    b3 = _conv_bn_relu(b3, 256, 3, wd, "reduction_b_b3c", 2, "valid")
    return layers.Concatenate(name="reduction_b")([pool, b1, b2, b3])


def inception_resnet_v1(input_shape=(299, 299, 3), num_classes=1000, weight_decay=1e-4, repeats=(5, 10, 5),
                        small_input=None, dropout=0.2):
    """Inception-ResNet-v1 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and...", Figs. 10-14).

    Full model (299x299): stem to 35x35x256, 5 x block A (width 256), Reduction-A
    (k, l, m, n = 192, 192, 256, 384 -> 17x17x896), 10 x block B (896),
    Reduction-B (-> 8x8x1792), 5 x block C (1792), average pooling, dropout
    (keep 0.8), dense. Each block ends in a linear 1x1 conv back to its input
    width, scaled by 0.17 / 0.10 / 0.20 (TF-slim's choice within the paper's
    0.1-0.3) before the add. The paper gives no parameter count for v1; this
    one has 22.76M trainable parameters with 1000 classes, in line with its aim
    of costing about as much as Inception-v3 (23.8M).

    Small-input variant (``small_input=True``, or automatic below 75 pixels):
    the stem keeps full resolution (3x3 convs, stride 1, no pooling) so a
    32x32 image enters the A blocks at 32x32x256, Reduction-A takes it to 15x15
    and Reduction-B to 7x7; ``repeats`` sets the number of A, B, C blocks.

    Convolutions inside the blocks have no bias (a BN follows); the linear
    1x1 "up" convolutions keep theirs, as in TF-slim.
    """
    if small_input is None:
        small_input = min(input_shape[:2]) < 75
    wd = weight_decay
    inputs = keras.Input(shape=input_shape, name="image")
    if small_input:
        x = _conv_bn_relu(inputs, 32, 3, wd, "stem1")
        x = _conv_bn_relu(x, 32, 3, wd, "stem2")
        x = _conv_bn_relu(x, 64, 3, wd, "stem3")
        x = _conv_bn_relu(x, 80, 1, wd, "stem4")
        x = _conv_bn_relu(x, 192, 3, wd, "stem5")
        x = _conv_bn_relu(x, 256, 3, wd, "stem6")
    else:
        x = _conv_bn_relu(inputs, 32, 3, wd, "stem1", strides=2, padding="valid")
        x = _conv_bn_relu(x, 32, 3, wd, "stem2", padding="valid")
        x = _conv_bn_relu(x, 64, 3, wd, "stem3")
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
        x = _conv_bn_relu(x, 80, 1, wd, "stem4")
        x = _conv_bn_relu(x, 192, 3, wd, "stem5", padding="valid")
        x = _conv_bn_relu(x, 256, 3, wd, "stem6", strides=2, padding="valid")
    for i in range(repeats[0]):
        x = _block_a(x, wd, f"block_a{i + 1}")
    x = _reduction_a(x, wd)
    for i in range(repeats[1]):
        x = _block_b(x, wd, f"block_b{i + 1}")
    x = _reduction_b(x, wd)
    for i in range(repeats[2]):
        x = _block_c(x, wd, f"block_c{i + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, kernel_regularizer=_l2(wd), name="logits")(x)
    return keras.Model(inputs, outputs, name="inception_resnet_v1" + ("_small" if small_input else ""))


def inception_resnet_v1_small(input_shape=(32, 32, 3), num_classes=10, weight_decay=1e-4, repeats=(1, 2, 1)):
    """Inception-ResNet-v1 for 32x32 inputs: stride-1 stem, 1/2/1 A/B/C blocks by default (CPU-sized)."""
    return inception_resnet_v1(input_shape, num_classes, weight_decay, repeats=repeats, small_input=True)


# ----------------------------------------------------------------------------
# Baselines: LeNet-5, AlexNet, and Jin's CNN with k residual blocks


def lenet5(input_shape=(32, 32, 3), num_classes=10, weight_decay=0.0):
    """LeNet-5 (LeCun et al. 1998): conv 6@5x5, pool, conv 16@5x5, pool, dense 120, 84, classes.

    Deviations: ReLU and max-pooling instead of tanh and subsampling, as in
    most modern re-implementations. A 28x28 input (MNIST) pads the first conv
    ("same") so both input sizes reach the same 5x5x16 map, as LeCun padded
    digits to 32x32.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    padding = "same" if input_shape[0] < 32 else "valid"
    x = layers.Conv2D(6, 5, padding=padding, activation="relu", kernel_regularizer=_l2(weight_decay),
                      name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 5, activation="relu", kernel_regularizer=_l2(weight_decay), name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", kernel_regularizer=_l2(weight_decay), name="fc1")(x)
    x = layers.Dense(84, activation="relu", kernel_regularizer=_l2(weight_decay), name="fc2")(x)
    outputs = layers.Dense(num_classes, kernel_regularizer=_l2(weight_decay), name="logits")(x)
    return keras.Model(inputs, outputs, name="lenet5")


def alexnet(input_shape=(32, 32, 3), num_classes=10, weight_decay=1e-4, dense_units=1024, dropout=0.5):
    """AlexNet (Krizhevsky et al. 2012) adapted to 28x28 and 32x32 inputs.

    Kept: five conv layers of 96-256-384-384-256 filters with ReLU, three
    max-pools (after conv1, conv2, conv5), two dense layers with dropout 0.5.
    Adapted for small images: conv1 is 3x3 stride 1 (not 11x11 stride 4),
    conv2 5x5, the rest 3x3, pools 2x2 (3x3 stride 2 overlapping pools would
    shrink 32 px to nothing), dense layers of 1024 (not 4096) units, BN
    instead of local response normalisation.
    """
    wd = weight_decay
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for index, (filters, size, pool) in enumerate(
        [(96, 3, True), (256, 5, True), (384, 3, False), (384, 3, False), (256, 3, True)], start=1
    ):
        x = layers.Conv2D(filters, size, padding="same", use_bias=False, kernel_regularizer=_l2(wd),
                          name=f"conv{index}")(x)
        x = layers.ReLU(name=f"relu{index}")(_bn(x, f"bn{index}"))
        if pool:
            x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    for index in (1, 2):
        x = layers.Dense(dense_units, activation="relu", kernel_regularizer=_l2(wd), name=f"fc{index}")(x)
        x = layers.Dropout(dropout, name=f"dropout{index}")(x)
    outputs = layers.Dense(num_classes, kernel_regularizer=_l2(wd), name="logits")(x)
    return keras.Model(inputs, outputs, name="alexnet")


def jin_cnn(input_shape=(32, 32, 3), num_classes=10, weight_decay=1e-4, residual_blocks=0, filters=64):
    """Jin 2023's model: Conv2D + MaxPooling2D, then k residual blocks, global average pooling, dense.

    ``residual_blocks=0`` is the plain CNN. The paper gives no widths: we use
    64 filters throughout and He 2016a's basic block (conv-BN-ReLU, conv-BN,
    identity add, ReLU).
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_regularizer=_l2(weight_decay),
                      name="stem_conv")(inputs)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for index in range(residual_blocks):
        x = basic_block_v1(x, filters, 1, "A", weight_decay, f"res{index + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(num_classes, kernel_regularizer=_l2(weight_decay), name="logits")(x)
    return keras.Model(inputs, outputs, name=f"jin_cnn_k{residual_blocks}")


# ----------------------------------------------------------------------------
# keras.applications backbones for transfer learning (Yuan's ResNet-152 fine-tuning)

BACKBONE = "backbone"  # the nested keras.applications model's name in every transfer model


class WeightsError(Exception):
    """Pretrained weights cannot be had; the message says how to pass a local file."""


def keras_preprocessing(name):
    """The keras.applications module whose ``preprocess_input`` a model needs, or None for our own models."""
    application = MODELS[name].keras_application
    return application.preprocess_module if application else None


def _load_backbone(name, input_shape, weights):
    application, file_name = MODELS[name].keras_application.builder, MODELS[name].keras_application.weights_file
    builder = getattr(keras.applications, application)
    if weights not in ("imagenet", "none", None) and not os.path.isfile(weights):
        raise WeightsError(f"--weights {weights}: no such file (give imagenet, none, or a local weights file)")
    try:
        # Keras warns once per layer group of a file that does not fit, before it raises: the error says it once.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backbone = builder(include_top=False, weights=None if weights in ("none", None) else weights,
                               input_shape=tuple(input_shape), pooling="avg", name=BACKBONE)
        for warning in caught:  # a backbone that loaded keeps its warnings
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        return backbone
    except (ValueError, OSError) as error:  # a file that is not this backbone's weights
        if weights == "imagenet":
            raise
        raise WeightsError(f"--weights {weights} does not fit {application} without its top: "
                           f"{str(error).splitlines()[0][:200]}") from None
    except Exception as error:  # keras' downloader raises a bare Exception when offline
        raise WeightsError(
            f"cannot download the ImageNet weights of {application} ({str(error).splitlines()[0][:120]}); "
            f"offline, put {file_name} in ~/.keras/models/ or pass --weights /path/to/{file_name}") from None


def keras_resnet(name, input_shape=(224, 224, 3), num_classes=1000, weight_decay=1e-4, weights="none",
                 freeze_backbone=False):
    """A keras.applications ResNet without its top, plus a new randomly initialised dense head.

    Yuan's setup: the ImageNet-pretrained backbone (``weights="imagenet"``, or
    a local weights file of the backbone without its top), global average
    pooling, and a dense layer with one unit per class. ``freeze_backbone``
    freezes every backbone weight and runs its batch-norm layers in inference
    mode (the Keras transfer-learning recipe), so only the head trains; the
    inference mode stays if the top of the backbone is unfrozen later for fine-
    tuning. Inputs are float RGB in 0-255: the data pipeline applies the
    backbone's own ``preprocess_input`` (see ``keras_preprocessing``). Weight
    decay applies to the head only; keras.applications backbones carry none.
    ``weights="none"`` trains from random initialisation: not a reproduction.
    """
    backbone = _load_backbone(name, input_shape, weights)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    if freeze_backbone:
        backbone.trainable = False
        features = backbone(inputs, training=False)
    else:
        features = backbone(inputs)
    outputs = layers.Dense(num_classes, kernel_regularizer=_l2(weight_decay), name="logits")(features)
    return keras.Model(inputs, outputs, name=f"{name}_transfer")


def _transfer(name):
    def build(input_shape=(224, 224, 3), num_classes=1000, weight_decay=1e-4, weights="none", freeze_backbone=False):
        return keras_resnet(name, input_shape, num_classes, weight_decay, weights, freeze_backbone)

    build.__name__ = name
    build.__doc__ = f"{name}: a keras.applications backbone (see MODELS) + new dense head (transfer learning)."
    return build


resnet50_imagenet = _transfer("resnet50_imagenet")
resnet101_imagenet = _transfer("resnet101_imagenet")
resnet152_imagenet = _transfer("resnet152_imagenet")
resnet50v2_imagenet = _transfer("resnet50v2_imagenet")
resnet101v2_imagenet = _transfer("resnet101v2_imagenet")
resnet152v2_imagenet = _transfer("resnet152v2_imagenet")


def unfreeze_top(model, fine_tune_at):
    """Makes the backbone's layers from ``fine_tune_at`` on trainable; returns how many layers that is.

    ``fine_tune_at`` is a layer name, a layer index, or a fraction in (0, 1) of
    the backbone's layers counted from the top (0.1 = its last 10%).
    Batch-norm layers stay frozen, as Keras' fine-tuning guide advises.
    """
    backbone = model.get_layer(BACKBONE)
    names = [layer.name for layer in backbone.layers]
    if isinstance(fine_tune_at, str) and fine_tune_at in names:
        first = names.index(fine_tune_at)
    else:
        try:
            value = float(fine_tune_at)
        except ValueError:
            raise ValueError(
                f"--fine_tune_at {fine_tune_at}: not a layer of the backbone, an index or a fraction") from None
        if 0.0 < value < 1.0:
            first = int(round(len(names) * (1.0 - value)))
        elif value.is_integer() and 0 <= value < len(names):
            first = int(value)
        else:
            raise ValueError(f"--fine_tune_at {fine_tune_at}: index out of range 0-{len(names) - 1} "
                             f"and not a fraction in (0, 1)")
    backbone.trainable = True
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= first and not isinstance(layer, layers.BatchNormalization)
    return len(names) - first


# ----------------------------------------------------------------------------
# The model table: --model, --list_models, the CLI's option checks, experiments and tests all read it.


@dataclasses.dataclass(frozen=True)
class KerasApplication:
    """A keras.applications backbone: its builder's name, its preprocess_input module, its no-top weight file."""

    builder: str
    preprocess_module: str
    weights_file: str


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything about one registered model, in one place."""

    builder: Callable  # (input_shape, num_classes, weight_decay, **options) -> keras.Model of logits
    input_shape: tuple  # the input it is meant for
    paper: str
    params_m: Optional[float] = None  # published learned parameters (millions) at input_shape, 10 or 1000 classes
    default_learning_rate: float = 0.1  # He et al.'s 0.1 unless the model does not train at it
    default_warmup_steps: int = 0  # steps at a tenth of the rate first, where He et al. warmed a model up
    options: tuple = ()  # the builder options a run may set (model_options)
    keras_application: Optional[KerasApplication] = None  # set for the transfer-learning models


def _transfer_spec(builder, application, module, paper):
    """The record of a keras.applications backbone with a new head; its weight file is Keras' own name."""
    weights_file = f"{application.lower()}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return ModelSpec(builder, _IMAGENET, f"keras.applications {paper}", options=_TRANSFER_OPTIONS,
                     keras_application=KerasApplication(application, module, weights_file))


_CIFAR = (32, 32, 3)
_IMAGENET = (224, 224, 3)
_V1_OPTIONS = ("shortcut", "preactivation", "conv_padding")
_IMAGENET_OPTIONS = ("stem", "conv_padding")
_TRANSFER_OPTIONS = ("weights", "freeze_backbone")
# Where He et al.'s learning rate of 0.1 does not fit a model. Measured here (2026-11-22): LeNet-5 on
# MNIST at 0.1 with momentum 0.9 dies (11% accuracy after 300 steps; 96.6% at 0.01); AlexNet on
# CIFAR-10 stays at chance after 40 steps at 0.1 (30% at 0.01). Both lack BN in their dense layers.
_NO_BN_DENSE_LR = 0.01
# He et al. 2016a, Section 4.2: 0.1 is slightly too large for ResNet-110 to start converging, so they trained at
# 0.01 until the training error fell below 80% (about 400 iterations), then went back to 0.1. ResNet-1202, which
# they trained "as described above", is read as warmed up too. A fixed 400 steps stands in for their error test:
# the same in every run and every resume.
_HE_WARMUP_STEPS = 400

MODELS = {
    # He et al. 2016a, Table 6 (CIFAR-10 parameter counts)
    "resnet20": ModelSpec(resnet20, _CIFAR, "He et al. 2016a; Liang 2020", 0.27, options=_V1_OPTIONS),
    "resnet32": ModelSpec(resnet32, _CIFAR, "He et al. 2016a", 0.46, options=_V1_OPTIONS),
    "resnet44": ModelSpec(resnet44, _CIFAR, "He et al. 2016a", 0.66, options=_V1_OPTIONS),
    "resnet56": ModelSpec(resnet56, _CIFAR, "He et al. 2016a", 0.85, options=_V1_OPTIONS),
    "resnet110": ModelSpec(resnet110, _CIFAR, "He et al. 2016a; Liang 2020", 1.7, options=_V1_OPTIONS,
                           default_warmup_steps=_HE_WARMUP_STEPS),
    "resnet1202": ModelSpec(resnet1202, _CIFAR, "He et al. 2016a", 19.4, options=_V1_OPTIONS,
                            default_warmup_steps=_HE_WARMUP_STEPS),
    # He et al. 2016b, Table 2 gives 1.7M for ResNet-164; no counts for 56 and 110
    "resnet56_v2": ModelSpec(resnet56_v2, _CIFAR, "He et al. 2016b"),
    "resnet110_v2": ModelSpec(resnet110_v2, _CIFAR, "He et al. 2016b"),
    "resnet164_v2": ModelSpec(resnet164_v2, _CIFAR, "He et al. 2016b", 1.7),
    # torchvision's counts of the bias-free ImageNet ResNets (224x224, 1000 classes)
    "resnet18": ModelSpec(resnet18, _IMAGENET, "He et al. 2016a; Xu", 11.69, options=_IMAGENET_OPTIONS),
    "resnet34": ModelSpec(resnet34, _IMAGENET, "He et al. 2016a", 21.80, options=_IMAGENET_OPTIONS),
    "resnet50": ModelSpec(resnet50, _IMAGENET, "He et al. 2016a; Xu", 25.56, options=_IMAGENET_OPTIONS),
    "resnet101": ModelSpec(resnet101, _IMAGENET, "He et al. 2016a", 44.55, options=_IMAGENET_OPTIONS),
    "resnet152": ModelSpec(resnet152, _IMAGENET, "He et al. 2016a", 60.19, options=_IMAGENET_OPTIONS),
    "inception_resnet_v1": ModelSpec(inception_resnet_v1, (299, 299, 3), "Szegedy et al. 2016; Liang 2020"),
    "inception_resnet_v1_small": ModelSpec(inception_resnet_v1_small, _CIFAR,
                                           "Szegedy et al. 2016 (32x32 variant); Liang 2020"),
    "lenet5": ModelSpec(lenet5, (28, 28, 1), "LeCun et al. 1998; Lu & Song", default_learning_rate=_NO_BN_DENSE_LR),
    "alexnet": ModelSpec(alexnet, _CIFAR, "Krizhevsky et al. 2012 (small-input); Lu & Song",
                         default_learning_rate=_NO_BN_DENSE_LR),
    "jin_cnn": ModelSpec(jin_cnn, _CIFAR, "Jin 2023 (residual_blocks=k, 0 = plain CNN)", options=("residual_blocks",)),
    "resnet50_imagenet": _transfer_spec(resnet50_imagenet, "ResNet50", "resnet", "transfer learning; Yuan (smaller)"),
    "resnet101_imagenet": _transfer_spec(resnet101_imagenet, "ResNet101", "resnet", "transfer learning"),
    "resnet152_imagenet": _transfer_spec(resnet152_imagenet, "ResNet152", "resnet", "transfer learning; Yuan"),
    "resnet50v2_imagenet": _transfer_spec(resnet50v2_imagenet, "ResNet50V2", "resnet_v2", "(v2), transfer learning"),
    "resnet101v2_imagenet": _transfer_spec(resnet101v2_imagenet, "ResNet101V2", "resnet_v2", "(v2), transfer learning"),
    "resnet152v2_imagenet": _transfer_spec(resnet152v2_imagenet, "ResNet152V2", "resnet_v2", "(v2), transfer learning"),
}


def default_learning_rate(name):
    return MODELS[name].default_learning_rate


def default_warmup_steps(name):
    return MODELS[name].default_warmup_steps


def is_transfer(name):
    """True for the keras.applications backbones (``*_imagenet``)."""
    return MODELS[name].keras_application is not None


class ModelInputError(ValueError):
    """The model cannot take the dataset's images; the message names both."""


def trainable_params(model):
    """Learned parameters, the figure papers report (BN moving statistics are not learned)."""
    return int(sum(w.numpy().size for w in model.trainable_weights))


def multiply_adds(model):
    """Multiply-adds of one forward pass of one image, counted from the model's convolutions and dense layers.

    Batch norm, activations, additions and pooling are left out (a few percent), as in the papers' counts
    (He et al.'s "FLOPs" are these multiply-adds: ResNet-20 about 41M). Nested models (a keras.applications
    backbone) are counted through.
    """
    return int(sum(count for _, count in _counted_layers(model)))


def _counted_layers(model):
    """(layer, multiply-adds per image) of every convolution and dense layer, in the model's order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _counted_layers(layer)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel = layer.kernel.shape  # (kh, kw, channels in, multiplier)
            yield layer, math.prod(layer.output.shape[1:]) * kernel[0] * kernel[1]
        elif isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel.shape  # (kh, kw, channels in / groups, channels out)
            yield layer, math.prod(layer.output.shape[1:]) * kernel[0] * kernel[1] * kernel[2]
        elif isinstance(layer, keras.layers.Dense):
            yield layer, math.prod(layer.output.shape[1:-1] or (1,)) * layer.kernel.shape[0] * layer.kernel.shape[1]


def training_flops_per_image(model):
    """FLOPs one training image costs, the figure MFU divides by the peak: 2 per multiply-add, times 3 (the
    forward pass and the backward pass's two products, the gradients of the activations and of the weights),
    except the first layer, which needs no gradient of its input, the image (2 passes: 1% of ResNet-20's
    multiply-adds, 3% of ResNet-50's)."""
    counts = [count for _, count in _counted_layers(model)]
    return 2 * (3 * sum(counts) - (counts[0] if counts else 0))


def decay_every_parameter(model, weight_decay):
    """Gives every trainable variable that has no regularizer (batch-norm scales and offsets, biases) the L2 term
    of ``weight_decay``: the decay of Caffe, fb.resnet.torch and akamaster's code, which decay all parameters.

    The term is set on the variables, so a model saved to ``.keras`` and loaded again has kernel decay only; the
    engine always builds a run's model through ``build_model``, so training and resuming keep it.
    """
    for variable in model.trainable_weights:
        if variable.regularizer is None:
            variable.regularizer = _l2(weight_decay)
    return model


def option_defaults(name):
    """The defaults of model ``name``'s options, as its builder declares them: an option given at its default
    builds the same model as the option left out."""
    spec = MODELS[name]
    parameters = inspect.signature(spec.builder).parameters  # the family builder's, for the generic ones
    return {option: parameters[option].default for option in spec.options
            if option in parameters and parameters[option].default is not inspect.Parameter.empty}


def build_model(name, input_shape, num_classes, weight_decay=1e-4, weight_decay_scope="kernels", **options):
    """Builds a registered model by name.

    ``weight_decay_scope``: "kernels" (the builders' conv and dense kernels) or "all" (every trainable
    parameter, ``decay_every_parameter``). Unknown names list the valid ones; an option the builder does not
    take and an input shape the model cannot handle are ``ModelInputError``s with a one-line message.
    """
    if weight_decay_scope not in WEIGHT_DECAY_SCOPES:
        raise ValueError(f"weight_decay_scope must be one of {', '.join(WEIGHT_DECAY_SCOPES)}, "
                         f"got {weight_decay_scope!r}")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    spec = MODELS[name]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ModelInputError(f"model {name} does not take option(s) {unknown}")
    try:
        model = spec.builder(input_shape=tuple(input_shape), num_classes=num_classes, weight_decay=weight_decay,
                             **options)
    except ValueError as error:
        if tuple(input_shape) == tuple(spec.input_shape):
            raise
        raise ModelInputError(
            f"model {name} cannot take {tuple(input_shape)} images (it is meant for {spec.input_shape}): "
            f"{str(error).splitlines()[0]}") from None
    return decay_every_parameter(model, weight_decay) if weight_decay_scope == "all" and weight_decay else model
