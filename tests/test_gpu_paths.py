"""The GPU-only paths, run on the CPU: float16 loss scaling across replicas and resumes, device choice, install hint.

No GPU is available to this project: each test drives the code a GPU run takes (float16 with a
LossScaleOptimizer computes the same on a CPU, only slower; two logical CPUs stand for two GPUs)
or replaces TensorFlow's device listing with fake GPUs.
"""

import dataclasses
import json
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

import api
import cifar10_train
import hardware
import run_config
import run_folder
from conftest import ROOT, subprocess_env
from test_train import _config, _tiny_data


# Two logical CPUs as two replicas, in one process (one TensorFlow start-up for both checks):
# - float16 with loss scaling: the second replica's images overflow float16 (65504) in the forward pass;
# - fused batch norm (Jin's CNN with one residual block: ResNet-20's basic block) through the engine.
TWO_REPLICAS = """
import json, sys
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, cifar10_train, run_config, resnet
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
keras.mixed_precision.set_global_policy("mixed_float16")
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    optimizer.build(model.trainable_variables)
keras.mixed_precision.set_global_policy("float32")
train_steps_fn, _ = cifar10_train.build_step_functions(model, optimizer, strategy, 8, loss_scaling=True)

def step(second_half):
    images = np.ones((8, 4), np.float32)
    images[4:] = second_half
    dataset = tf.data.Dataset.from_tensors((images, np.zeros(8, np.int32))).repeat()
    train_steps_fn(iter(strategy.experimental_distribute_dataset(dataset)), tf.constant(1))
    return dict(finite=bool(all(np.isfinite(w.numpy()).all() for w in model.trainable_weights)),
                scales=[float(v) for v in strategy.experimental_local_results(optimizer.dynamic_scale.value)],
                applied=int(optimizer.iterations.numpy()))

overflow = [step(1e5), step(1.0)]
rng = np.random.RandomState(0)
x = rng.randint(0, 256, (32, 16, 16, 3), dtype=np.uint8); y = rng.randint(0, 4, 32).astype(np.int32)
data = {"x_train": x, "y_train": y, "x_val": x[:8], "y_val": y[:8], "class_names": list("abcd"),
        "validation": "first 8"}
config = run_config.resolve(run_config.RunConfig(model="jin_cnn", model_options={"residual_blocks": 1}, train_steps=2,
                            report_freq=2, batch_size=8, augment="none", mixed_precision="off", log_dir=sys.argv[1],
                            eval_batch_size=8, steps_per_execution=1), 32, replicas=2)
result = cifar10_train.train(config, data, strategy, verbose=0)
bn = next(l for l in result["model"].layers if isinstance(l, resnet.FusedBatchNormalization))
copies = [v.numpy() for v in strategy.experimental_local_results(bn.moving_mean.value)]
print(json.dumps({"overflow": overflow, "batch_norm": {
    "finite": bool(np.isfinite(result["train_loss"])), "moved": bool(np.abs(copies[0]).sum() > 0),
    "replicas_differ": bool(not np.allclose(copies[0], copies[1]))}}))
"""


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    """What the TWO_REPLICAS script saw, run once for the module's tests."""
    out = subprocess.run([sys.executable, "-c", TWO_REPLICAS, str(tmp_path_factory.mktemp("two_replicas") / "run")],
                         capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_overflow_on_one_replica_makes_every_replica_skip_the_step(two_replicas):
    overflowed, normal = two_replicas["overflow"]
    # Keras alone applies it (the first replica's gradients were finite): the weights became NaN, the scale stayed.
    assert overflowed == dict(finite=True, scales=[2.0 ** 14] * 2, applied=0)
    assert normal == dict(finite=True, scales=[2.0 ** 14] * 2, applied=1)  # the next good step is applied


def test_batch_norm_on_two_replicas_trains_and_each_keeps_its_own_statistics(two_replicas):
    """As in He et al.'s multi-GPU training, batch statistics are per replica (docs: several devices)."""
    assert two_replicas["batch_norm"] == {"finite": True, "moved": True, "replicas_differ": True}


class _Overflowing(keras.optimizers.LossScaleOptimizer):
    """A loss scale far beyond float16's range: every step of a small run overflows and is skipped."""

    def __init__(self, inner_optimizer, **kwargs):
        super().__init__(inner_optimizer, initial_scale=2.0 ** 40)


def _float16(config):
    return dataclasses.replace(config, mixed_precision="float16")  # resolve() refuses float16 without a GPU


def test_skipped_steps_count_and_a_resume_continues_after_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(keras.optimizers, "LossScaleOptimizer", _Overflowing)
    config = _config(tmp_path / "run", model="jin_cnn", model_options={"residual_blocks": 1}, train_steps=6,
                     report_freq=2, save_freq=3, steps_per_execution=1)
    cifar10_train.train(_float16(config), _tiny_data(), verbose=0)
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(tmp_path / "run" / run_folder.CHECKPOINTS))
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 0  # nothing was applied
    assert reader.get_tensor("optimizer_loss_scale/scale/.ATTRIBUTES/VARIABLE_VALUE") == 2.0 ** 34  # 6 skips
    resumed = cifar10_train.train(_float16(dataclasses.replace(config, train_steps=8)), _tiny_data(), verbose=1,
                                  resume=True)
    assert "from step 6" in capsys.readouterr().out and resumed["step"] == 8
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(tmp_path / "run" / run_folder.CHECKPOINTS))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 8
    assert reader.get_tensor("optimizer_loss_scale/scale/.ATTRIBUTES/VARIABLE_VALUE") == 2.0 ** 32  # restored, 2 more


def test_a_run_resumes_in_another_precision_and_each_session_records_its_own(tmp_path, capsys):
    """A CPU run (off) continued on a GPU (float16, a LossScaleOptimizer) and back: one checkpoint layout."""
    config = _config(tmp_path / "run", model="jin_cnn", model_options={"residual_blocks": 1}, train_steps=4,
                     report_freq=2, steps_per_execution=1)
    cifar10_train.train(config, _tiny_data(), verbose=0)
    on_gpu = cifar10_train.train(_float16(dataclasses.replace(config, train_steps=6)), _tiny_data(), verbose=1,
                                 resume=True)
    assert on_gpu["step"] == 6 and on_gpu["model"].get_layer("res1_conv1").dtype_policy.name == "mixed_float16"
    back = cifar10_train.train(dataclasses.replace(config, train_steps=8), _tiny_data(), verbose=1, resume=True)
    assert back["step"] == 8 and back["model"].get_layer("res1_conv1").dtype_policy.name == "float32"
    out = capsys.readouterr().out
    assert "from step 4" in out and "from step 6" in out
    sessions = run_folder.read_config(tmp_path / "run")["sessions"]
    assert [(s["from_step"], s["mixed_precision"]) for s in sessions] == [(0, "off"), (4, "float16"), (6, "off")]


def _fake_gpus(monkeypatch, count, capability=(8, 0)):
    gpus = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(count)]
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else real(kind))
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda device: {"compute_capability": capability, "device_name": "fake"})
    return gpus


@pytest.mark.parametrize("capability, expected", [((9, 0), "bfloat16"), ((8, 0), "bfloat16"), ((7, 5), "float16"),
                                                  ((6, 1), "off")])
def test_auto_precision_on_gpus_follows_the_compute_capability(monkeypatch, capability, expected):
    _fake_gpus(monkeypatch, 2, capability)
    assert hardware.resolve_mixed_precision("auto") == expected
    assert hardware.resolve_mixed_precision("float16") == "float16"  # an explicit choice stands


def test_xla_with_float16_on_several_replicas_is_refused(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    config = run_config.RunConfig(mixed_precision="float16", jit_compile="on", train_steps=10, report_freq=5)
    with pytest.raises(run_config.ConfigError, match="jit_compile off"):
        run_config.resolve(config, num_train_images=1000, replicas=2)
    assert run_config.resolve(config, num_train_images=1000, replicas=1).jit_compile == "on"
    assert run_config.resolve(dataclasses.replace(config, jit_compile="off"), 1000, replicas=2).mixed_precision == \
        "float16"


def test_num_gpus_hides_the_other_gpus_before_the_runtime_starts(monkeypatch):
    gpus = _fake_gpus(monkeypatch, 2)
    calls = []
    monkeypatch.setattr(tf.config, "set_visible_devices", lambda devices, kind: calls.append(("visible", devices)))
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: calls.append(("runtime", kind)) or [])
    api.make_strategy("default", 1)
    assert calls[0] == ("visible", gpus[:1])  # before anything lists logical devices (which starts the runtime)
    calls.clear()
    api.make_strategy("auto", 0)
    assert calls[0] == ("visible", [])  # 0: the CPU only
    with pytest.raises(api.UsageError, match="--num_gpus 3 but 2 GPU"):
        api.make_strategy("default", 3)

    def started(devices, kind):
        raise RuntimeError("Visible devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "set_visible_devices", started)
    with pytest.raises(api.UsageError, match="CUDA_VISIBLE_DEVICES"):
        api.make_strategy("default", 1)


def test_a_gpu_that_tensorflow_cannot_see_is_named_with_the_fix(monkeypatch):
    monkeypatch.setattr(api, "nvidia_device_present", lambda: True)
    assert "pip install -r requirements-gpu.txt" in api.gpu_warning()
    _fake_gpus(monkeypatch, 1)
    assert api.gpu_warning() is None  # TensorFlow sees it: nothing to say
    monkeypatch.setattr(api, "nvidia_device_present", lambda: False)
    assert api.gpu_warning() is None


def test_the_gpu_requirements_add_cuda_to_the_cpu_install():
    with open(ROOT / "requirements-gpu.txt") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    assert "-r requirements.txt" in lines
    with open(ROOT / "requirements.txt") as handle:
        cpu_pin = next(line.strip() for line in handle if line.startswith("tensorflow=="))
    assert f"tensorflow[and-cuda]=={cpu_pin.split('==')[1]}" in lines  # the same TensorFlow, with its CUDA libraries
