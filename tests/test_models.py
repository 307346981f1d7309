"""Model builders: parameter counts against He et al. Table 6, shapes, variants, errors."""

import numpy as np
import pytest

import resnet


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
@pytest.mark.parametrize("preactivation", [False, True])
def test_cifar_resnet_params_match_he_table6(depth, preactivation):
    model = resnet.resnet_v1(depth, preactivation=preactivation)
    expected = resnet.HE_CIFAR_PARAMS_M[depth] * 1e6
    assert abs(resnet.trainable_params(model) - expected) / expected < 0.02


def test_exact_resnet20_count_and_projection_shortcut():
    # 16-32-64 option A ResNet-20 without conv biases: 0.27M learned (He et al. Table 6),
    # the same 269,722 that akamaster/pytorch_resnet_cifar10 reports.
    assert resnet.trainable_params(resnet.resnet20()) == 269722
    # Option B adds two 1x1 projections (16*32 + 32*64 weights) and their BN scales and offsets.
    assert resnet.trainable_params(resnet.resnet20(shortcut="B")) == 269722 + 16 * 32 + 32 * 64 + 2 * 32 + 2 * 64


@pytest.mark.parametrize("name", list(resnet.MODELS))
def test_registry_builds_logits(name):
    if name == "resnet1202":
        pytest.skip("1202 layers take a minute to build; its depth rule is the same as the others'")
    model = resnet.build_model(name, (32, 32, 3), 7)
    out = model(np.zeros((2, 32, 32, 3), np.float32), training=False)
    assert out.shape == (2, 7)
    assert model.layers[-1].get_config()["activation"] == "linear"  # logits, softmax only in evaluation


def test_option_a_shortcut_is_pool_plus_zero_channels():
    model = resnet.resnet_v1(8, input_shape=(8, 8, 3), num_classes=2)
    shortcut = model.get_layer("stage2_block1_pad").output
    probe = type(model)(model.inputs[0], shortcut)
    x = np.random.RandomState(0).randn(1, 8, 8, 3).astype(np.float32)
    out = probe(x, training=False).numpy()
    assert out.shape == (1, 4, 4, 32)
    assert np.all(out[..., 16:] == 0)  # padded channels are zeros
    assert np.any(out[..., :16] != 0)


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
