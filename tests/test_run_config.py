"""The run contract: RunConfig from flags == from config.json == built directly; old run folders; one-entry models."""

import dataclasses
import inspect
import json
import re
import shlex

import keras
import pytest
import tensorflow as tf

import cifar10_main
import cifar10_train
import provenance
import resnet
import fileio
import run_config
import run_folder
import summaries
from run_config import RunConfig


def _flags(*argv):
    return cifar10_main.config_from_flags(cifar10_main.build_parser().parse_args(list(argv)))


def test_flags_config_json_and_a_direct_config_are_the_same_run(capsys, cifar_archive, tmp_path):
    log_dir = str(tmp_path / "run")
    argv = ["--model", "jin_cnn", "--residual_blocks", "1", "--data_dir", str(cifar_archive), "--train_steps", "4",
            "--report_freq", "2", "--batch_size", "5", "--lr_decay_at", "0.25", "--mixed_precision", "off",
            "--seed", "3", "--log_dir", log_dir]
    direct = RunConfig(model="jin_cnn", model_options={"residual_blocks": 1}, data_dir=str(cifar_archive),
                       train_steps=4, report_freq=2, batch_size=5, lr_decay_at=(0.25,), mixed_precision="off", seed=3,
                       log_dir=log_dir)
    assert _flags(*argv) == direct
    assert cifar10_main.main(argv) == 0
    saved, info = run_folder.saved_config(log_dir)
    resolved = run_config.resolve(direct, info.num_train_images, data_source=saved.data_dir)
    assert saved == resolved
    assert (saved.learning_rate, saved.save_freq, saved.augment, saved.validation_split) == (0.1, 2, "he", 0.0)
    # The printed command trains the same config again; run_config.resolve is idempotent.
    assert _flags(*shlex.split(run_config.command(saved))[2:]) == saved
    assert run_config.resolve(saved, info.num_train_images) == saved


def test_the_engine_never_changes_the_config(tmp_path):
    import numpy as np

    config = run_config.resolve(RunConfig(model="lenet5", train_steps=2, report_freq=2, batch_size=4,
                                          augment="none", mixed_precision="off", log_dir=str(tmp_path / "r")), 8)
    frozen = dataclasses.replace(config)
    x = np.zeros((8, 28, 28, 1), np.uint8)
    data = {"x_train": x, "y_train": np.arange(8) % 2, "x_val": x, "y_val": np.arange(8) % 2,
            "class_names": ["a", "b"], "validation": "the training images"}
    cifar10_train.train(config, data, verbose=0)
    assert config == frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train_steps = 3


# A config.json written by the suite before RunConfig (config_version absent: 2026-11-22), trimmed to its keys.
OLD_FLAT_CONFIG = {
    "mode": "train", "dataset": "cifar10", "data_dir": "/data/cifar-10-python.tar.gz", "validation_split": None,
    "image_size": [32, 32], "input_shape": [32, 32, 3], "model": "resnet20", "model_options": {}, "pretrained": False,
    "train_steps": 400, "epochs": None, "batch_size": 128, "optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9,
    "lr_decay_at": [0.5, 0.75], "lr_decay_factor": 0.1, "weight_decay": 0.0001, "augment": "he",
    "fine_tune_at": None, "fine_tune_steps": None, "fine_tune_learning_rate": None, "report_freq": 100,
    "save_freq": 100, "steps_per_execution": "auto", "eval_batch_size": 500, "seed": 0, "deterministic": False,
    "log_dir": "runs/resnet20_400", "resume": False, "overwrite": False, "distribution_strategy": "auto",
    "num_replicas": 1, "mixed_precision": "bfloat16", "jit_compile": False,
    "preprocessing": {"augment": "he", "norm": {"mean": [125.3, 122.9, 113.9], "std": [63.0, 62.1, 66.7]}},
    "num_classes": 10, "class_names": ["c%d" % i for i in range(10)], "validation": "the test set (10000 images)",
    "num_train_images": 50000,
}


def test_a_config_from_before_runconfig_loads_with_its_old_option_a(tmp_path):
    config, info = run_config.from_json(OLD_FLAT_CONFIG)
    # "A" (and the default) built Liang's average-pool shortcut then: the old run keeps its architecture.
    assert config.model_options == {"shortcut": "A_avgpool", "conv_padding": "same"}
    assert (config.train_steps, config.jit_compile, config.mixed_precision) == (400, "off", "bfloat16")
    assert info.input_shape == (32, 32, 3) and info.num_classes == 10 and info.norm["mean"][0] == 125.3
    # The same command with today's code builds He's option A: a different run, refused with the reason.
    fileio.write_json(str(tmp_path / run_folder.CONFIG), OLD_FLAT_CONFIG)
    today = dataclasses.replace(config, model_options={"conv_padding": "same"})
    changed = r"model_options: \{'shortcut': 'A_avgpool', 'conv_padding': 'same'\} -> \{'conv_padding': 'same'\}"
    with pytest.raises(run_folder.RunFolderError, match=changed):
        run_folder.prepare(str(tmp_path), today)


def test_a_run_saved_before_version_4_keeps_kernel_decay_and_tensorflows_padding():
    """Runs saved before weight_decay_scope and conv_padding were recorded load as what they trained with, whatever
    the defaults become; a resolved config records both, so its config.json never depends on a default."""
    saved = {"config_version": 3, "run": dataclasses.asdict(RunConfig(model="resnet20", train_steps=4, report_freq=2)),
             "data": None}
    del saved["run"]["weight_decay_scope"]
    config, _ = run_config.from_json(saved)
    assert config.weight_decay_scope == "kernels" and config.model_options == {"conv_padding": "same"}
    lenet = dict(saved, run=dict(saved["run"], model="lenet5"))
    assert run_config.from_json(lenet)[0].model_options == {}  # a model without the option gets none
    resolved = run_config.resolve(RunConfig(model="resnet20", weight_decay_scope="all",
                                            model_options={"conv_padding": "symmetric"}, mixed_precision="off"), 1000)
    written = {"config_version": run_config.VERSION, "run": dataclasses.asdict(resolved), "data": None}
    assert run_config.from_json(json.loads(json.dumps(written)))[0] == resolved
    assert run_config.resolve(RunConfig(mixed_precision="off"), 1000).model_options == {"conv_padding": "same"}
    with pytest.raises(run_config.ConfigError, match="--weight_decay_scope 'bn': choose one of kernels, all"):
        run_config.check(RunConfig(weight_decay_scope="bn"))


def test_he_warms_resnet110_up_and_a_run_saved_before_warm_ups_keeps_none():
    """ResNet-110 and 1202 start at a tenth of the rate for 400 steps (He et al. 2016a), the others do not; a warm-up
    given is checked against the schedule; a run saved before version 5 trained without one and stays so."""
    def resolved(**settings):
        return run_config.resolve(RunConfig(mixed_precision="off", train_steps=16000, report_freq=500, **settings),
                                  50000)

    he = resolved(model="resnet110")
    assert (he.lr_warmup_steps, he.lr_warmup_rate, he.learning_rate) == (400, pytest.approx(0.01), 0.1)
    assert (resolved(model="resnet1202").lr_warmup_steps, resolved(model="resnet20").lr_warmup_steps) == (400, 0)
    assert resolved(model="resnet20").lr_warmup_rate is None and run_config.resolve(he, 50000) == he
    mine = resolved(model="resnet20", lr_warmup_steps=100, lr_warmup_rate=0.02)
    assert (mine.lr_warmup_steps, mine.lr_warmup_rate) == (100, 0.02)
    assert resolved(model="resnet110", lr_warmup_steps=0).lr_warmup_steps == 0
    with pytest.raises(run_config.ConfigError, match=r"--lr_warmup_steps 400 \(resnet110's default, He et al.'s "
                                                      r"warm-up\) does not end before step 250.*\(0 for none\)"):
        run_config.resolve(RunConfig(model="resnet110", mixed_precision="off", train_steps=500, report_freq=100), 50000)
    with pytest.raises(run_config.ConfigError, match="--lr_warmup_rate needs a warm-up: --lr_warmup_steps is 0"):
        resolved(model="resnet20", lr_warmup_rate=0.01)
    saved = {"config_version": 4, "run": dataclasses.asdict(he), "data": None}
    del saved["run"]["lr_warmup_steps"], saved["run"]["lr_warmup_rate"]
    old = run_config.from_json(saved)[0]
    assert (old.lr_warmup_steps, old.lr_warmup_rate) == (0, None)
    assert [line.split(":")[0] for line in run_config.differences(old, he)] == ["lr_warmup_steps", "lr_warmup_rate"]


def test_an_option_given_at_its_default_is_the_same_run():
    """he2016's folders record shortcut "A" (the builder's default); the CLI leaves it out: the same model,
    so no "another run" refusal. An option at another value still differs."""
    saved = RunConfig(model="resnet20", model_options={"shortcut": "A", "conv_padding": "same"})
    assert run_config.differences(saved, RunConfig(model="resnet20", model_options={"conv_padding": "same"})) == []
    other = RunConfig(model="resnet20", model_options={"shortcut": "B", "conv_padding": "same"})
    assert [line.split(":")[0] for line in run_config.differences(saved, other)] == ["model_options"]
    assert resnet.option_defaults("resnet18") == {"stem": "auto", "conv_padding": "same"}
    assert resnet.option_defaults("resnet20") == {"shortcut": "A", "preactivation": False, "conv_padding": "same"}
    # Read from the registry function's own signature, which help() shows: its family builder's less the depth.
    for name in ("resnet20", "resnet18"):
        assert list(inspect.signature(resnet.MODELS[name].builder).parameters)[:3] == [
            "input_shape", "num_classes", "weight_decay"]


@pytest.mark.parametrize("saved, message", [
    ({"config_version": 99, "run": {}}, "config_version 99; this code reads 1 to 5"),
    ({"config_version": 3, "run": {"model": "resnet20", "colour": "blue"}, "data": None}, "does not know: colour"),
    ([1, 2], "does not hold a JSON object"),
])
def test_an_unreadable_config_is_a_one_line_error(saved, message):
    with pytest.raises(run_config.ConfigError, match=message):
        run_config.from_json(saved)


def test_config_json_round_trips(tmp_path):
    config = RunConfig(model="resnet50_imagenet", dataset="folder", image_size=(64, 64),
                       model_options={"weights": "none", "freeze_backbone": True}, fine_tune_at="0.1",
                       fine_tune_steps=3, lr_decay_at=())
    info = run_config.DataInfo(("a", "b"), (74, 74), (64, 64, 3), {"keras_preprocess": "resnet", "mean": [1, 2, 3]},
                               "20%", 10)
    text = json.dumps(run_config.to_json(config, info))
    assert run_config.from_json(json.loads(text)) == (config, info)


def test_a_model_is_one_table_entry(monkeypatch, tmp_path):
    """A throwaway model registered in resnet.MODELS trains through the engine and the CLI's checks."""
    import numpy as np

    def tiny_dense(input_shape, num_classes, weight_decay=0.0, width=4):
        inputs = keras.Input(shape=input_shape)
        hidden = keras.layers.Dense(width, activation="relu")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, keras.layers.Dense(num_classes)(hidden))

    monkeypatch.setitem(resnet.MODELS, "tiny_dense", resnet.ModelSpec(tiny_dense, (8, 8, 3), "a test",
                                                                      default_learning_rate=0.05, options=("width",)))
    config = run_config.resolve(RunConfig(model="tiny_dense", model_options={"width": 3}, train_steps=1, report_freq=1,
                                          batch_size=4, augment="none", mixed_precision="off",
                                          log_dir=str(tmp_path / "r")), 8)
    assert config.learning_rate == 0.05  # the entry's own default
    x = np.random.RandomState(0).randint(0, 256, (8, 8, 8, 3)).astype(np.uint8)
    data = {"x_train": x, "y_train": np.arange(8) % 2, "x_val": x, "y_val": np.arange(8) % 2,
            "class_names": ["a", "b"], "validation": "the training images"}
    result = cifar10_train.train(config, data, verbose=0)
    assert result["step"] == 1 and result["model"].layers[-2].units == 3
    with pytest.raises(run_config.ConfigError, match=r"does not take option\(s\) \['depth'\]"):
        run_config.check(RunConfig(model="tiny_dense", model_options={"depth": 2}))


def test_every_setting_is_a_flag_of_the_cli():
    """So that run_config.command can print any config as a command line, and --help explains each."""
    actions = {action.dest: action for action in cifar10_main.build_parser()._actions}
    for field in dataclasses.fields(RunConfig):
        if field.name != "model_options":
            assert field.metadata["help"] and field.metadata["group"] in cifar10_main.GROUPS, field.name
            assert actions[field.name].help, field.name
    assert set(run_config.OPTION_FLAGS) <= set(actions)
    options = {option for spec in resnet.MODELS.values() for option in spec.options}
    assert options <= set(run_config.OPTION_FLAGS)


def test_a_settings_roles_are_declared_with_it():
    """NOT_IDENTITY, CANNOT_RESUME and the HParams come from the fields' declarations: these are what they were
    as hand-kept lists (a changed role changes which folders hold the same run)."""
    assert run_config.NOT_IDENTITY == {"data_dir", "log_dir", "save_freq", "steps_per_execution", "eval_batch_size",
                                       "distribution_strategy", "num_gpus", "mixed_precision", "jit_compile",
                                       "deterministic", "profile_steps"}
    assert run_config.CANNOT_RESUME == {"dataset", "model", "model_options", "optimizer", "fine_tune_at"}
    resolved = run_config.resolve(RunConfig(train_steps=10, report_freq=5, mixed_precision="off"), 1000)
    assert set(summaries.hparams_of(resolved, 1)) == {
        "model", "model_options", "dataset", "augment", "optimizer", "learning_rate", "lr_decay_at",
        "lr_schedule_steps", "lr_warmup_steps", "batch_size", "weight_decay", "weight_decay_scope", "train_steps",
        "seed", "mixed_precision", "replicas"}


@pytest.mark.parametrize("settings, message", [
    ({"batch_size": 0}, "--batch_size 0: must be a positive integer"),
    ({"lr_decay_at": (0.5, 1.5)}, "--lr_decay_at 1.5: must be in"),
    ({"mixed_precision": "fp8"}, "--mixed_precision 'fp8': choose one of auto, off"),
    ({"model_options": {"shortcut": "C"}}, "--shortcut 'C': choose one of A, A_avgpool, B"),
    ({"augment": "cutout"}, "--augment 'cutout': choose one of he,"),
    ({"lr_warmup_steps": -1}, "--lr_warmup_steps -1: must be an integer >= 0"),
])
def test_a_config_built_in_python_is_checked_as_its_flags_are(settings, message):
    with pytest.raises(run_config.ConfigError, match=re.escape(message)):
        run_config.check(RunConfig(**settings))


def test_a_recipe_is_one_table_entry(monkeypatch, tmp_path, capsys):
    """A throwaway recipe in augment.RECIPES is a CLI choice, trains a step and tests with its own evaluation."""
    import numpy as np
    import augment

    def invert(images, seed, output_size):
        return 255.0 - images

    monkeypatch.setitem(augment.RECIPES, "inverted", augment.Recipe("a test", "colours inverted; mean/std",
                                                                    augment.channel_stats, invert))
    assert "inverted" in cifar10_main.build_parser().parse_args(["--augment", "inverted"]).augment
    config = run_config.resolve(RunConfig(model="lenet5", augment="inverted", train_steps=1, report_freq=1,
                                          batch_size=4, mixed_precision="off", log_dir=str(tmp_path / "r")), 8)
    x = np.random.RandomState(0).randint(0, 256, (8, 28, 28, 1)).astype(np.uint8)
    data = {"x_train": x, "y_train": np.arange(8) % 2, "x_val": x, "y_val": np.arange(8) % 2,
            "class_names": ["a", "b"], "validation": "the training images"}
    assert cifar10_train.train(config, data, verbose=0)["step"] == 1
    norm = augment.normalization("inverted", x)
    out = augment.train_transform("inverted", norm)(x, tf.constant([0, 0], tf.int64)).numpy()
    np.testing.assert_allclose(out, augment.normalize(255.0 - x.astype(np.float32), norm).numpy(), rtol=1e-6)


def test_a_config_in_epochs_resolves_to_steps_and_stays_resolved():
    config = RunConfig(model="resnet50_imagenet", dataset="folder", epochs=2.5, batch_size=64,
                       model_options={"weights": "none", "freeze_backbone": True}, fine_tune_at="0.1",
                       fine_tune_epochs=1, report_freq=10)
    resolved = run_config.resolve(config, 320)
    assert (resolved.train_steps, resolved.fine_tune_steps) == (13, 5)  # ceil(2.5 * 320 / 64), 320 / 64
    assert resolved.epochs is None and resolved.fine_tune_epochs is None
    assert run_config.resolve(resolved, 320) == resolved
    assert "--epochs" not in run_config.command(resolved) and "--train_steps 13" in run_config.command(resolved)


def test_the_readmes_python_example_trains(cifar_archive, tmp_path, monkeypatch):
    """The README's 'From Python' block, run as written but on tiny data, for two steps, with Jin's CNN."""
    import re

    readme = (provenance.ROOT + "/README.md")
    with open(readme) as handle:
        block = re.search(r"```python\n(.*?)```", handle.read(), re.S).group(1)
    assert "api.train(config)" in block and 'api.test("runs/r20_2k")' in block
    assert 'model="resnet20"' in block
    tiny = (block.replace('"../shared/datasets/cifar10"', repr(str(cifar_archive))).replace("resnet20", "jin_cnn")
            .replace("train_steps=2000", "train_steps=2").replace("report_freq=500", "report_freq=1, batch_size=5"))
    monkeypatch.chdir(tmp_path)
    exec(compile(tiny, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "r20_2k" / "metrics.csv").exists()
    assert (tmp_path / "runs" / "r20_2k" / "test_metrics.json").exists()
