"""Model builders: parameter counts against He et al. Table 6, shapes, variants, errors."""

import keras
import numpy as np
import pytest

import resnet


# He et al. 2016a, Table 6: learned parameters (millions) of the CIFAR-10 ResNets, typed from the paper.
HE_TABLE6_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}
# torchvision's published counts (millions) of the ImageNet ResNets at 224x224, 1000 classes.
TORCHVISION_PARAMS_M = {18: 11.69, 34: 21.80, 50: 25.56, 101: 44.55, 152: 60.19}


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
@pytest.mark.parametrize("preactivation", [False, True])
def test_cifar_resnet_params_match_he_table6(depth, preactivation):
    model = resnet.build_model(f"resnet{depth}", (32, 32, 3), 10, preactivation=preactivation)
    expected = HE_TABLE6_PARAMS_M[depth] * 1e6
    assert abs(resnet.trainable_params(model) - expected) / expected < 0.02
    assert resnet.MODELS[f"resnet{depth}"].params_m == HE_TABLE6_PARAMS_M[depth]  # the table --list_models shows
    _assert_logits(model, 10)  # the registry check of the depths test_one_training_step_per_model leaves out


def test_exact_resnet20_count_and_projection_shortcut():
    # 16-32-64 option A ResNet-20 without conv biases: 0.27M learned (He et al. Table 6),
    # the same 269,722 that akamaster/pytorch_resnet_cifar10 reports.
    assert resnet.trainable_params(resnet.resnet20()) == 269722
    # Option B adds two 1x1 projections (16*32 + 32*64 weights) and their BN scales and offsets.
    assert resnet.trainable_params(resnet.resnet20(shortcut="B")) == 269722 + 16 * 32 + 32 * 64 + 2 * 32 + 2 * 64


def _stage2_shortcut(shortcut, x):
    model = resnet.resnet_v1(8, input_shape=(8, 8, 3), num_classes=2, shortcut=shortcut)
    block1 = model.get_layer("stage1_block1_out").output
    probe = type(model)(model.inputs[0], [block1, model.get_layer("stage2_block1_pad").output])
    return [t.numpy() for t in probe(x, training=False)]


def test_option_a_is_hes_strided_subsampling_plus_zero_channels():
    x = np.random.RandomState(0).randn(1, 8, 8, 3).astype(np.float32)
    block_input, out = _stage2_shortcut("A", x)
    assert out.shape == (1, 4, 4, 32)
    np.testing.assert_array_equal(out[..., :16], block_input[:, ::2, ::2, :])  # every second pixel, unchanged
    assert np.all(out[..., 16:] == 0)  # the new channels are zeros
    assert np.any(out[..., :16] != 0)


def test_option_a_avgpool_is_liangs_pool_plus_zero_channels():
    x = np.random.RandomState(0).randn(1, 8, 8, 3).astype(np.float32)
    block_input, out = _stage2_shortcut("A_avgpool", x)
    pooled = block_input.reshape(1, 4, 2, 4, 2, 16).mean(axis=(2, 4))
    np.testing.assert_allclose(out[..., :16], pooled, rtol=1e-5, atol=1e-6)
    assert np.all(out[..., 16:] == 0)


def test_both_option_a_variants_have_he_table6_count():
    assert resnet.trainable_params(resnet.resnet20(shortcut="A_avgpool")) == 269722


@pytest.mark.parametrize("depth", [21, 4, 0])
def test_bad_depth_fails_loudly(depth):
    with pytest.raises(ValueError, match="6n\\+2"):
        resnet.resnet_v1(depth)


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="resnet20"):
        resnet.build_model("resnet7", (32, 32, 3), 10)


def test_weight_decay_is_sgd_style():
    model = resnet.resnet_v1(8, input_shape=(8, 8, 3), num_classes=2, weight_decay=1e-4)
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    expected = sum(0.5 * 1e-4 * float(np.sum(np.square(w.numpy()))) for w in kernels)
    assert np.isclose(float(sum(model.losses)), expected, rtol=1e-4)


def _decayed(model):
    return {w.path.split("/")[-1] for w in model.trainable_weights if w.regularizer is not None}


def test_weight_decay_scope_all_decays_batch_norm_and_biases():
    """Caffe's, fb.resnet.torch's and akamaster's decay: batch-norm scales and offsets and the dense bias too."""
    kernels_only = resnet.build_model("resnet20", (8, 8, 3), 2, 1e-4)
    assert _decayed(kernels_only) == {"kernel"}
    every = resnet.build_model("resnet20", (8, 8, 3), 2, 1e-4, weight_decay_scope="all")
    assert _decayed(every) == {"kernel", "gamma", "beta", "bias"}
    assert all(w.regularizer is not None for w in every.trainable_weights)
    every.get_layer("stem_bn").gamma.assign(np.full(16, 3.0, np.float32))  # a grown scale now costs its decay
    expected = sum(0.5 * 1e-4 * float(np.sum(np.square(w.numpy()))) for w in every.trainable_weights)
    assert np.isclose(float(sum(every.losses)), expected, rtol=1e-4)
    with pytest.raises(ValueError, match="weight_decay_scope must be one of kernels, all"):
        resnet.build_model("resnet20", (8, 8, 3), 2, weight_decay_scope="bn")


def _stage2_conv_and_shortcut(conv_padding):
    """Stage 2's first conv with its kernel set to the identity at the centre tap, and option A's shortcut."""
    model = resnet.resnet_v1(8, input_shape=(8, 8, 3), num_classes=2, conv_padding=conv_padding)
    conv = model.get_layer("stage2_block1_conv1")
    kernel = np.zeros(conv.kernel.shape, np.float32)
    kernel[1, 1, np.arange(16), np.arange(16)] = 1.0
    conv.kernel.assign(kernel)
    probe = type(model)(model.inputs[0], [conv.output, model.get_layer("stage2_block1_pad").output])
    x = np.random.RandomState(0).randn(1, 8, 8, 3).astype(np.float32)
    return [t.numpy()[..., :16] for t in probe(x, training=False)]


def test_symmetric_padding_puts_the_stride2_conv_on_the_shortcuts_grid():
    """Option A keeps input pixel 2i; a symmetric stride-2 conv is centred there too, TensorFlow's "same" on 2i+1."""
    conv, shortcut = _stage2_conv_and_shortcut("symmetric")
    assert conv.shape == shortcut.shape == (1, 4, 4, 16)
    np.testing.assert_allclose(conv, shortcut, atol=1e-6)
    conv, shortcut = _stage2_conv_and_shortcut("same")
    assert not np.allclose(conv, shortcut, atol=1e-3)


def test_conv_padding_keeps_parameters_and_shapes():
    for name in ("resnet20", "resnet18"):
        same = resnet.build_model(name, (32, 32, 3), 10, conv_padding="same")
        symmetric = resnet.build_model(name, (32, 32, 3), 10, conv_padding="symmetric")
        assert resnet.trainable_params(same) == resnet.trainable_params(symmetric)
        assert [layer.output.shape for layer in same.layers if isinstance(layer, keras.layers.Conv2D)] == \
               [layer.output.shape for layer in symmetric.layers if isinstance(layer, keras.layers.Conv2D)]
    stem = resnet.build_model("resnet18", (64, 64, 3), 10, stem="imagenet", conv_padding="symmetric")
    assert stem.get_layer("stem_pool").output.shape == (None, 16, 16, 64)
    with pytest.raises(ValueError, match="conv_padding must be one of same, symmetric"):
        resnet.build_model("resnet20", (32, 32, 3), 10, conv_padding="valid")


# ---------------------------------------------------------------------------- issue 3: every paper's architecture

import tensorflow as tf  # noqa: E402

import cifar10_train  # noqa: E402


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_resnets_match_published_counts(depth):
    model = resnet.build_model(f"resnet{depth}", (224, 224, 3), 1000)
    expected = TORCHVISION_PARAMS_M[depth] * 1e6
    assert resnet.MODELS[f"resnet{depth}"].params_m == TORCHVISION_PARAMS_M[depth]
    assert abs(resnet.trainable_params(model) - expected) / expected < 0.005
    assert model.get_layer("stem_pool") is not None  # the ImageNet stem at 224x224
    _assert_logits(model, 1000)  # resnet101 and resnet152's registry check (the registry builds them here)
    if depth in (50, 152):  # keras.applications' ResNet50 and 152 differ from ours only by their conv biases
        reference = getattr(keras.applications, f"ResNet{depth}")(weights=None)
        conv_biases = sum(layer.filters for layer in reference.layers if isinstance(layer, keras.layers.Conv2D))
        assert resnet.trainable_params(reference) - resnet.trainable_params(model) == conv_biases


def test_stem_is_chosen_by_input_size():
    small = resnet.build_model("resnet18", (32, 32, 3), 10)
    assert "stem_pool" not in [layer.name for layer in small.layers]
    assert small.get_layer("stem_conv").kernel_size == (3, 3) and small.get_layer("stem_conv").strides == (1, 1)
    forced = resnet.build_model("resnet18", (64, 64, 3), 10, stem="cifar")
    assert forced.get_layer("stem_conv").strides == (1, 1)


def test_resnet_v2_matches_he_2016b():
    for name in ("resnet56_v2", "resnet110_v2", "resnet164_v2"):  # their registry check (built, not stepped)
        model = resnet.build_model(name, (32, 32, 3), 10)
        _assert_logits(model, 10)
    assert abs(resnet.trainable_params(model) - 1.7e6) / 1.7e6 < 0.02  # ResNet-164, the count 2016b gives
    with pytest.raises(ValueError, match="9n\\+2"):
        resnet.resnet_v2(21)


def test_inception_resnet_v1_structure_at_299():
    model = resnet.build_model("inception_resnet_v1", (299, 299, 3), 1000)
    # Shapes the paper gives: 35x35x256 after the stem, 17x17x896 after Reduction-A, 8x8x1792 after Reduction-B.
    assert model.get_layer("stem6_relu").output.shape[1:] == (35, 35, 256)
    assert model.get_layer("reduction_a").output.shape[1:] == (17, 17, 896)
    assert model.get_layer("reduction_b").output.shape[1:] == (8, 8, 1792)
    names = [layer.name for layer in model.layers]
    assert sum(n.endswith("_add") and n.startswith("block_a") for n in names) == 5
    assert sum(n.endswith("_add") and n.startswith("block_b") for n in names) == 10
    assert sum(n.endswith("_add") and n.startswith("block_c") for n in names) == 5
    assert model.get_layer("block_b3_scale").scale == pytest.approx(0.10)
    assert model.get_layer("dropout").rate == pytest.approx(0.2)  # keep probability 0.8


def test_inception_resnet_v1_small_keeps_block_structure():
    model = resnet.inception_resnet_v1_small((32, 32, 3), 10, repeats=(2, 1, 1))
    assert model.get_layer("stem6_relu").output.shape[1:] == (32, 32, 256)
    assert model.get_layer("reduction_a").output.shape[1:] == (15, 15, 896)
    assert model.get_layer("reduction_b").output.shape[1:] == (7, 7, 1792)
    assert "block_a2_add" in [layer.name for layer in model.layers]


def test_lenet5_counts_for_both_inputs():
    # conv1 6@5x5, conv2 16@5x5, dense 400-120-84-10, with biases.
    fc = 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    assert resnet.trainable_params(resnet.lenet5((28, 28, 1))) == 5 * 5 * 1 * 6 + 6 + 5 * 5 * 6 * 16 + 16 + fc
    assert resnet.trainable_params(resnet.lenet5((32, 32, 3))) == 5 * 5 * 3 * 6 + 6 + 5 * 5 * 6 * 16 + 16 + fc


def test_alexnet_has_five_convs_and_two_dropout_dense_layers():
    model = resnet.alexnet((28, 28, 1))
    convs = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == [96, 256, 384, 384, 256]
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 2


@pytest.mark.parametrize("k", [0, 1, 4])
def test_jin_cnn_adds_k_residual_blocks(k):
    model = resnet.build_model("jin_cnn", (32, 32, 3), 10, residual_blocks=k)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == k
    plain = resnet.trainable_params(resnet.jin_cnn(residual_blocks=0))
    per_block = 2 * (3 * 3 * 64 * 64) + 2 * 2 * 64  # two bias-free 3x3 convs and two BNs
    assert resnet.trainable_params(model) == plain + k * per_block


def test_unfit_input_and_unknown_option_are_clear_errors():
    with pytest.raises(resnet.ModelInputError, match="cannot take \\(8, 8, 1\\) images"):
        resnet.build_model("lenet5", (8, 8, 1), 10)  # its second 5x5 conv meets a 4x4 map
    with pytest.raises(resnet.ModelInputError, match="does not take option"):
        resnet.build_model("lenet5", (28, 28, 1), 10, shortcut="B")


# One training step per registered model on tiny data, at 32x32 (28x28x1 for LeNet-5).
# Left out: resnet1202 (1202 layers, minutes to build), resnet101/152 (the
# same bottleneck blocks as resnet50, tens of millions of weights: too slow for CI),
# inception_resnet_v1 at 299 (its blocks run in inception_resnet_v1_small), and the other keras.applications
# backbones (the same keras_resnet builder as resnet50_imagenet, which does take its step).
TOO_BIG_FOR_A_CI_STEP = {"resnet1202", "resnet101", "resnet152", "inception_resnet_v1", "resnet101_imagenet",
                         "resnet152_imagenet", "resnet50v2_imagenet", "resnet101v2_imagenet", "resnet152v2_imagenet"}
# The deeper CIFAR ResNets are their generic builder at another depth, which sets only how many blocks each stage
# has (checked against the papers' counts above): the traced steps of resnet20 and of resnet_v2 at its smallest
# depth, 11 (test_preactivation_builder_traces_its_step), run their code, so they are built and give logits in the
# count tests, not stepped again (their eager steps took 33 s of test time on the Xeon and checked nothing more).
DEPTH_VARIANTS = {"resnet_v1": ["resnet32", "resnet44", "resnet56", "resnet110"],
                  "resnet_v2": ["resnet56_v2", "resnet110_v2", "resnet164_v2"]}
# Deeper models of a builder already stepped through tf.function take their step eagerly (same math): tracing
# 50+ layers costs 10-40 s. resnet50's bottleneck blocks are made of the helpers resnet18's traced step runs
# (_conv, _bn, _projection); resnet50_imagenet's keras.applications graph is traced by the engine in
# tests/test_transfer.py.
EAGER_STEP = {"resnet34", "resnet50", "resnet50_imagenet"}


def _assert_logits(model, classes):
    assert model.output_shape == (None, classes)
    assert model.layers[-1].get_config()["activation"] == "linear"  # logits, softmax only in evaluation


BUILT_AT_32 = ["inception_resnet_v1", "resnet50v2_imagenet"]
DEEPER_KERAS_ROWS = ["resnet101_imagenet", "resnet152_imagenet", "resnet101v2_imagenet", "resnet152v2_imagenet"]


def test_every_model_too_big_for_a_step_is_built_somewhere():
    assert TOO_BIG_FOR_A_CI_STEP - {"resnet1202"} == {"resnet101", "resnet152", *BUILT_AT_32, *DEEPER_KERAS_ROWS}


# The models too big for a step still build and give logits: these two here, resnet101 and resnet152 where
# test_imagenet_resnets_match_published_counts builds them, the deeper keras.applications rows below; resnet1202 is
# left out: its 1202 layers take a minute to build, and its depth rule is the other CIFAR ResNets'.
@pytest.mark.parametrize("name", BUILT_AT_32)
def test_registry_builds_logits(name):
    model = resnet.build_model(name, (32, 32, 3), 7)
    assert model(np.zeros((2, 32, 32, 3), np.float32), training=False).shape == (2, 7)
    _assert_logits(model, 7)


# The deeper keras.applications rows run the code resnet50_imagenet and resnet50v2_imagenet run in full; what is
# theirs alone is the application they name (and its preprocessing), checked against
# keras.applications with a stand-in backbone: building ResNet101/152(V2) costs seconds each and tests Keras.
@pytest.mark.parametrize("name", DEEPER_KERAS_ROWS)
def test_deeper_keras_application_rows_name_their_backbone(name, monkeypatch):
    application = resnet.MODELS[name].keras_application
    assert application.builder == name.split("_")[0].replace("resnet", "ResNet").replace("v2", "V2")
    assert callable(getattr(keras.applications, application.builder))
    assert callable(getattr(keras.applications, application.preprocess_module).preprocess_input)
    calls = []

    def stand_in(**kwargs):
        calls.append(kwargs)
        return keras.Sequential([keras.Input(kwargs["input_shape"]), keras.layers.GlobalAveragePooling2D()],
                                name=kwargs["name"])

    monkeypatch.setattr(keras.applications, application.builder, stand_in)
    model = resnet.build_model(name, (32, 32, 3), 7)
    assert calls == [dict(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg",
                          name=resnet.BACKBONE)]
    _assert_logits(model, 7)


@pytest.mark.parametrize("name", [name for names in DEPTH_VARIANTS.values() for name in names])
def test_a_deeper_cifar_resnet_is_its_generic_builder_at_another_depth(name):
    """What lets test_one_training_step_per_model leave it out: its registry function only calls the generic
    builder the traced steps run, with the depth as the one value it holds."""
    builder = resnet.MODELS[name].builder
    generic = next(generic for generic, names in DEPTH_VARIANTS.items() if name in names)
    assert builder.__code__.co_names == (generic,) and builder.__code__.co_freevars == ("depth",)
    assert builder.__closure__[0].cell_contents == int(name[len("resnet"):].split("_")[0])
    assert resnet.MODELS["resnet20"].builder.__code__.co_names == ("resnet_v1",)  # the stepped v1 entry


@pytest.mark.parametrize("name", [name for name in resnet.MODELS if name not in TOO_BIG_FOR_A_CI_STEP
                                  and not any(name in names for names in DEPTH_VARIANTS.values())])
def test_one_training_step_per_model(name):
    shape = (28, 28, 1) if name == "lenet5" else (32, 32, 3)
    _assert_one_step_trains(resnet.build_model(name, shape, 7), shape, eager=name in EAGER_STEP)


def test_preactivation_builder_traces_its_step():
    _assert_one_step_trains(resnet.resnet_v2(11, (32, 32, 3), 7), (32, 32, 3), eager=False)


def _assert_one_step_trains(model, shape, eager):
    """One step of the engine's step function (traced once unless ``eager``) changes the weights and counts 2
    images."""
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    step, _ = cifar10_train.build_step_functions(model, optimizer, tf.distribute.get_strategy(), 2)
    x = tf.random.stateless_normal((2, *shape), seed=[0, 1])
    before = [w.numpy().copy() for w in model.trainable_weights]
    batches = iter(tf.data.Dataset.from_tensors((x, tf.constant([1, 3]))).repeat())
    tf.config.run_functions_eagerly(eager)
    try:
        totals, steps_run, last = step(batches, tf.constant(1))
        totals = totals.numpy()
    finally:
        tf.config.run_functions_eagerly(False)
    assert np.all(np.isfinite(totals)) and totals[2] == 2 and int(steps_run) == 1
    assert step.experimental_get_tracing_count() == (0 if eager else 1)  # the optimizer was built before the call
    np.testing.assert_array_equal(last.numpy(), totals)  # one step: the last batch is the whole call
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    _assert_logits(model, 7)


def test_multiply_adds_are_counted_from_the_layers():
    # ResNet-20 by hand: the 3x3 stem 32*32*16*27, six 3x3 16->16 convs at 32x32, then per stage of 32 and 64
    # channels one strided conv from half the channels and five at full width, and the 64->10 dense layer.
    by_hand = (32 * 32 * 16 * 27 + 6 * 32 * 32 * 16 * 144
               + 16 * 16 * 32 * 144 + 5 * 16 * 16 * 32 * 288
               + 8 * 8 * 64 * 288 + 5 * 8 * 8 * 64 * 576 + 64 * 10)
    resnet20 = resnet.build_model("resnet20", (32, 32, 3), 10)
    assert resnet.multiply_adds(resnet20) == by_hand == 40_551_040
    stem = 32 * 32 * 16 * 3 * 3 * 3  # the first conv needs no gradient of the image
    assert resnet.training_flops_per_image(resnet20) == 2 * (3 * by_hand - stem)
    # The counts the pruning literature gives for He's CIFAR ResNets (125M and 253M multiply-adds) and He et al.
    # 2016a's Table 1 for ResNet-50 (3.8 x 10^9 FLOPs, i.e. multiply-adds), through a keras.applications backbone.
    assert resnet.multiply_adds(resnet.build_model("resnet56", (32, 32, 3), 10)) == pytest.approx(125e6, rel=0.01)
    assert resnet.multiply_adds(resnet.build_model("resnet110", (32, 32, 3), 10)) == pytest.approx(253e6, rel=0.01)
    backbone = resnet.build_model("resnet50_imagenet", (224, 224, 3), 1000, weights="none")
    assert resnet.multiply_adds(backbone) == pytest.approx(3.8e9, rel=0.02)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_fused_batch_norm_computes_what_keras_batch_norm_does(policy, tmp_path):
    """Forward in training and inference, the moving statistics (biased variance) and every gradient."""
    x = tf.constant(np.random.RandomState(0).normal(2.0, 3.0, (4, 5, 5, 6)).astype(np.float32))
    keras.mixed_precision.set_global_policy(policy)
    try:
        ours = resnet.FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
        theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 6))
        layer.beta.assign(np.linspace(-1, 1, 6))
    weights = tf.range(6.0)
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(layer(x, training=True), tf.float32)
            loss = tf.reduce_sum(y * y * weights)
        results.append([y, *tape.gradient(loss, [x, layer.gamma, layer.beta]), layer.moving_mean, layer.moving_variance,
                        tf.cast(layer(x, training=False), tf.float32)])
    tolerance = 1e-5 if policy == "float32" else 2e-2
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tolerance, atol=tolerance * 10)
    assert ours(x, training=True).dtype == theirs(x, training=True).dtype


def test_models_with_fused_batch_norm_save_and_load(tmp_path):
    import cifar10_test

    model = resnet.build_model("resnet20", (32, 32, 3), 10)
    assert any(isinstance(layer, resnet.FusedBatchNormalization) for layer in model.layers)
    model.save(tmp_path / "m.keras")
    loaded = cifar10_test.load_model(str(tmp_path / "m.keras"))
    x = np.random.RandomState(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x, training=False), loaded(x, training=False))
    with resnet.keras_batch_norm():  # the benchmark's comparison row
        plain = resnet.build_model("resnet20", (32, 32, 3), 10)
    kinds = {type(layer) for layer in plain.layers}
    assert keras.layers.BatchNormalization in kinds and resnet.FusedBatchNormalization not in kinds
    fused = {type(layer) for layer in resnet.build_model("resnet20", (32, 32, 3), 10).layers}
    assert resnet.FusedBatchNormalization in fused
