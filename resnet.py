"""Keras functional-API model builders and the name-to-builder table.

CIFAR ResNets follow He et al. 2016a, "Deep Residual Learning for Image
Recognition", Section 4.2: a 3x3 conv with 16 filters, three stages of n
residual blocks with 16/32/64 filters (stride 2 at the start of stages 2 and
3), global average pooling and a dense layer: depth = 6n + 2.

Two choices the papers disagree on are arguments:

* ``shortcut``: ``"A"`` (He's option A, used by He on CIFAR and by Liang 2020:
  2x2 average pooling, then the channels padded with zeros) or ``"B"`` (a 1x1
  stride-2 projection conv + BN).
* ``preactivation``: ``False`` is He 2016a's block (conv-BN-ReLU, conv-BN, add,
  ReLU), our default because the default recipe is He's; ``True`` is the block
  Liang 2020 describes (BN-ReLU-conv twice, then add; a final BN-ReLU before
  pooling).

Every model returns logits (no softmax). Train with
``SparseCategoricalCrossentropy(from_logits=True)``; ``cifar10_test`` applies
the softmax where probabilities are asked for.

Weight decay: He et al. use SGD weight decay 1e-4, i.e. a gradient of 1e-4 * w.
Keras' ``L2(l)`` adds ``l * sum(w**2)`` whose gradient is ``2 * l * w``, so we
pass ``L2(weight_decay / 2)`` to make ``--weight_decay`` mean what the paper
means (the old Keras CIFAR example's ``l2(1e-4)`` is in effect 2e-4).
"""

import keras
from keras import layers

# He et al. 2016a, Table 6: depth -> learned parameters (millions) reported for CIFAR-10.
HE_CIFAR_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}

BN_MOMENTUM = 0.9  # as in tensorflow/models' CIFAR ResNet; Keras' 0.99 lags on short runs
BN_EPSILON = 1e-5


def _l2(weight_decay):
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def _conv(x, filters, kernel_size, strides, weight_decay, name):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,  # a BN follows every conv, so a bias would be redundant
        kernel_initializer="he_normal",
        kernel_regularizer=_l2(weight_decay),
        name=name,
    )(x)


def _bn(x, name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def _shortcut(x, filters, stride, shortcut, weight_decay, name):
    """Identity when shapes match, else option A (pool + zero channels) or B (projection)."""
    in_filters = x.shape[-1]
    if stride == 1 and in_filters == filters:
        return x
    if shortcut == "B":
        x = _conv(x, filters, 1, stride, weight_decay, f"{name}_proj_conv")
        return _bn(x, f"{name}_proj_bn")
    if filters != 2 * in_filters or stride != 2:
        raise ValueError("option A shortcuts only handle stride 2 with doubled filters")
    x = layers.AveragePooling2D(2, name=f"{name}_pool")(x)
    # Zero channels built from stock layers so a saved .keras loads without custom objects.
    zeros = layers.Rescaling(0.0, name=f"{name}_zeros")(x)
    return layers.Concatenate(name=f"{name}_pad")([x, zeros])


def basic_block_v1(x, filters, stride, shortcut, weight_decay, name):
    """He 2016a block: conv-BN-ReLU, conv-BN, add the shortcut, ReLU."""
    residual = _conv(x, filters, 3, stride, weight_decay, f"{name}_conv1")
    residual = layers.ReLU(name=f"{name}_relu1")(_bn(residual, f"{name}_bn1"))
    residual = _bn(_conv(residual, filters, 3, 1, weight_decay, f"{name}_conv2"), f"{name}_bn2")
    x = _shortcut(x, filters, stride, shortcut, weight_decay, name)
    x = layers.Add(name=f"{name}_add")([x, residual])
    return layers.ReLU(name=f"{name}_out")(x)


def basic_block_preact(x, filters, stride, shortcut, weight_decay, name):
    """Liang 2020's block: BN-ReLU-conv twice; the shortcut starts from the block input."""
    residual = layers.ReLU(name=f"{name}_relu1")(_bn(x, f"{name}_bn1"))
    residual = _conv(residual, filters, 3, stride, weight_decay, f"{name}_conv1")
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
):
    """He et al.'s CIFAR ResNet of depth 6n+2.

    Args:
      depth: 20, 32, 44, 56, 110, 1202 or any 6n+2.
      input_shape: image shape (H, W, C); 32x32x3 for CIFAR-10.
      num_classes: size of the logits.
      weight_decay: SGD-style weight decay on conv and dense kernels (see module doc).
      shortcut: "A" (He on CIFAR, Liang) or "B" (1x1 projection).
      preactivation: False for He 2016a's conv-BN-ReLU block (default), True for
        Liang 2020's BN-ReLU-conv block.

    Returns:
      A ``keras.Model`` mapping float images to logits ``[batch, num_classes]``.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"ResNet v1 depth must be 6n+2 (20, 32, 44, 56, 110, 1202), got {depth}")
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
    blocks_per_stage = (depth - 2) // 6
    block = basic_block_preact if preactivation else basic_block_v1

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(inputs, 16, 3, 1, weight_decay, "stem_conv")
    if not preactivation:
        x = layers.ReLU(name="stem_relu")(_bn(x, "stem_bn"))
    for stage, filters in enumerate((16, 32, 64)):
        for index in range(blocks_per_stage):
            stride = 2 if stage > 0 and index == 0 else 1
            x = block(x, filters, stride, shortcut, weight_decay, f"stage{stage + 1}_block{index + 1}")
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


def _cifar_resnet(depth):
    def build(input_shape=(32, 32, 3), num_classes=10, weight_decay=1e-4, **options):
        return resnet_v1(depth, input_shape, num_classes, weight_decay, **options)

    build.__name__ = f"resnet{depth}"
    build.__doc__ = f"ResNet-{depth} for CIFAR (He et al. 2016a, Table 6: {HE_CIFAR_PARAMS_M[depth]}M parameters)."
    return build


resnet20 = _cifar_resnet(20)
resnet32 = _cifar_resnet(32)
resnet44 = _cifar_resnet(44)
resnet56 = _cifar_resnet(56)
resnet110 = _cifar_resnet(110)
resnet1202 = _cifar_resnet(1202)


# name -> (builder, input shape it is meant for, paper). --model, --list_models,
# experiments and tests all read this table.
MODELS = {
    "resnet20": (resnet20, (32, 32, 3), "He et al. 2016a; Liang 2020"),
    "resnet32": (resnet32, (32, 32, 3), "He et al. 2016a"),
    "resnet44": (resnet44, (32, 32, 3), "He et al. 2016a"),
    "resnet56": (resnet56, (32, 32, 3), "He et al. 2016a"),
    "resnet110": (resnet110, (32, 32, 3), "He et al. 2016a; Liang 2020"),
    "resnet1202": (resnet1202, (32, 32, 3), "He et al. 2016a"),
}

# Options a builder accepts beyond the common (input_shape, num_classes, weight_decay).
RESNET_V1_OPTIONS = ("shortcut", "preactivation")


def trainable_params(model):
    """Learned parameters, the figure papers report (BN moving statistics are not learned)."""
    return int(sum(w.numpy().size for w in model.trainable_weights))


def build_model(name, input_shape, num_classes, weight_decay=1e-4, **options):
    """Builds a registered model by name; unknown names list the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    builder = MODELS[name][0]
    return builder(input_shape=tuple(input_shape), num_classes=num_classes, weight_decay=weight_decay, **options)
