"""The training engine and the command line, on tiny data the tests write."""

import dataclasses
import glob
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import cifar10_main
import cifar10_train
import fileio
import hardware
import run_config
import run_folder
from run_config import RunConfig
from conftest import ROOT, summary_events


def _tiny_data(n=32, size=16, classes=4, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randint(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    y = rng.randint(0, classes, size=n).astype(np.int32)
    return {"x_train": x, "y_train": y, "x_val": x[:8], "y_val": y[:8],
            "class_names": [f"c{i}" for i in range(classes)], "validation": "first 8 training images"}


def _config(log_dir, **overrides):
    """A resolved RunConfig for the 32 tiny images (float32 unless a test asks otherwise). The engine's tests train
    Jin's CNN with one residual block (convolutions, batch norm, a shortcut): a fifth of ResNet-20's time."""
    config = RunConfig(model="jin_cnn", model_options={"residual_blocks": 1}, train_steps=40, batch_size=16,
                       learning_rate=0.05, augment="none", report_freq=10, steps_per_execution=3, log_dir=str(log_dir),
                       eval_batch_size=8, mixed_precision="off")
    return run_config.resolve(dataclasses.replace(config, **overrides), num_train_images=32)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("run") / "jin_cnn"
    result = cifar10_train.train(_config(log_dir), _tiny_data(), verbose=0)
    return log_dir, result


def test_training_lowers_the_loss(trained_run):
    log_dir, _ = trained_run
    metrics = pd.read_csv(log_dir / run_folder.METRICS)
    assert list(metrics["step"]) == [10, 20, 30, 40]
    assert metrics["train_loss"].iloc[-1] < 0.5 * metrics["train_loss"].iloc[0]
    assert list(metrics.columns) == list(cifar10_train.CSV_COLUMNS)
    np.testing.assert_allclose(metrics["train_error"], 1 - metrics["train_accuracy"])


def test_learning_rate_follows_he_schedule(trained_run):
    log_dir, _ = trained_run
    rates = pd.read_csv(log_dir / run_folder.METRICS)["learning_rate"].tolist()
    # Divided by 10 after 50% (step 20) and 75% (step 30) of the 40 steps.
    np.testing.assert_allclose(rates, [0.05, 0.05, 0.005, 0.0005], rtol=1e-6)


def test_run_folder_holds_models_config_and_summaries(trained_run):
    log_dir, result = trained_run
    for name in (run_folder.LATEST_MODEL, run_folder.BEST_MODEL, run_folder.CONFIG):
        assert (log_dir / name).exists()
    config, info = run_folder.saved_config(str(log_dir))
    assert config == _config(log_dir)  # config.json gives back the RunConfig that trained
    assert config.augment == "none" and len(info.norm["mean"]) == 3
    assert info.num_classes == 4 and info.input_shape == (16, 16, 3)
    assert {"loss", "error", "accuracy", "learning_rate", "augmentation"} <= set(summary_events(log_dir / "train"))
    assert {"loss", "error", "accuracy"} <= set(summary_events(log_dir / "validation"))
    assert result["step"] == 40 and 0 <= result["best_val_accuracy"] <= 1


def test_same_run_again_is_finished_another_is_refused_resume_extends(trained_run):
    log_dir, _ = trained_run
    # The same settings again: the finished run is returned, nothing is retrained.
    again = cifar10_train.train(_config(log_dir), _tiny_data(), verbose=0)
    assert again["step"] == 40 and pd.read_csv(log_dir / run_folder.METRICS)["step"].tolist() == [10, 20, 30, 40]
    # Different settings: refused, naming what differs.
    with pytest.raises(run_folder.RunFolderError,
                       match="another run.*learning_rate: 0.05 -> 0.1.*--resume.*--overwrite"):
        cifar10_train.train(_config(log_dir, learning_rate=0.1), _tiny_data(), verbose=0)
    # --resume continues it with the new settings (here: 10 more steps).
    result = cifar10_train.train(_config(log_dir, train_steps=50), _tiny_data(), verbose=0, resume=True)
    steps = pd.read_csv(log_dir / run_folder.METRICS)["step"].tolist()
    assert steps == [10, 20, 30, 40, 50] and result["step"] == 50
    assert json.loads((log_dir / run_folder.CONFIG).read_text())["run"]["train_steps"] == 50


def test_a_committed_result_without_its_checkpoint_is_kept_never_retrained_over(trained_run, tmp_path):
    """Results are committed without their checkpoints: the same command must report them, not train over them."""
    log_dir = tmp_path / "committed"
    shutil.copytree(trained_run[0], log_dir)
    shutil.rmtree(log_dir / run_folder.CHECKPOINTS)
    config = dataclasses.replace(run_folder.saved_config(str(log_dir))[0], log_dir=str(log_dir))
    metrics = (log_dir / run_folder.METRICS).read_bytes()
    again = cifar10_train.train(config, _tiny_data(), verbose=0)
    assert (again["step"], again["model"]) == (config.stages_steps, None)
    assert (log_dir / run_folder.METRICS).read_bytes() == metrics
    assert again["val_accuracy"] == pytest.approx(pd.read_csv(log_dir / run_folder.METRICS)["val_accuracy"].iloc[-1])
    # Unfinished and without a checkpoint: refused (restarting would overwrite its reports), nothing changes.
    half = b"".join(metrics.splitlines(keepends=True)[:3])  # the header and the reports at steps 10 and 20
    (log_dir / run_folder.METRICS).write_bytes(half)
    with pytest.raises(run_folder.RunFolderError,
                       match=f"reported up to step 20 of {config.stages_steps} but no checkpoint.*--overwrite"):
        cifar10_train.train(config, _tiny_data(), verbose=0)
    assert (log_dir / run_folder.METRICS).read_bytes() == half


def test_overwrite_removes_the_old_runs_files_and_test_results_only(tmp_path):
    log_dir = tmp_path / "run"
    (log_dir / run_folder.CHECKPOINTS).mkdir(parents=True)
    fileio.write_json(str(log_dir / run_folder.CONFIG), {"model": "resnet20"})
    for name in (run_folder.METRICS, run_folder.TEST_PROBABILITIES, run_folder.TEST_METRICS, "my_notes.txt"):
        (log_dir / name).write_text("old")
    with pytest.raises(run_folder.RunFolderError, match="already holds another run"):
        run_folder.prepare(str(log_dir), RunConfig(model="lenet5"))
    assert run_folder.prepare(str(log_dir), RunConfig(model="lenet5"), overwrite=True) is False
    assert sorted(os.listdir(log_dir)) == ["my_notes.txt"]  # the user's own file stays


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    log_dir = tmp_path / "nan"
    cifar10_train.train(_config(log_dir, train_steps=6, report_freq=6, lr_decay_at=[], save_freq=2), _tiny_data(),
                        verbose=0)  # 6 good steps
    # Continue at an absurd rate, 5 steps per tf.function call: step 7 still computes its loss
    # from step 6's good weights, its update ruins them, and step 8 is the first non-finite loss,
    # found inside the call that runs steps 7-11.
    with pytest.raises(cifar10_train.TrainingError, match=r"loss became nan at step 8; stopped. The last good "
                                                          r"checkpoint is .*ckpt-6"):
        cifar10_train.train(_config(log_dir, train_steps=12, report_freq=6, lr_decay_at=[], learning_rate=1e30,
                                    steps_per_execution=5), _tiny_data(), verbose=0, resume=True)
    assert tf.train.latest_checkpoint(str(log_dir / "ckpt")).endswith("ckpt-6")


def _interrupt_after(calls, monkeypatch):
    """Makes the engine's n-th training call raise KeyboardInterrupt, as Ctrl-C between steps does."""
    real = cifar10_train.build_step_functions
    count = {"calls": 0}

    def build(*args, **kwargs):
        train_steps_fn, eval_batch_fn = real(*args, **kwargs)

        def interrupted(iterator, num_steps):
            count["calls"] += 1
            if count["calls"] > calls:
                raise KeyboardInterrupt
            return train_steps_fn(iterator, num_steps)

        return interrupted, eval_batch_fn

    monkeypatch.setattr(cifar10_train, "build_step_functions", build)


def test_deterministic_runs_match_and_an_interrupted_run_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    config = dict(model="jin_cnn", model_options={"residual_blocks": 1}, train_steps=12, report_freq=4, save_freq=2,
                  steps_per_execution=1, augment="he", deterministic=True)
    first = tmp_path / "first"
    cifar10_train.train(_config(first, **config), _tiny_data(), verbose=0)
    second = tmp_path / "second"
    cifar10_train.train(_config(second, **config), _tiny_data(), verbose=0)
    assert (first / run_folder.METRICS).read_bytes() == (second / run_folder.METRICS).read_bytes()

    interrupted = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        _interrupt_after(7, patch)  # dies during step 8; the last checkpoint is step 6
        with pytest.raises(KeyboardInterrupt):
            cifar10_train.train(_config(interrupted, **config), _tiny_data(), verbose=0)
    assert tf.train.latest_checkpoint(str(interrupted / "ckpt")).endswith("ckpt-6")
    assert pd.read_csv(interrupted / run_folder.METRICS)["step"].tolist() == [4]
    result = cifar10_train.train(_config(interrupted, **config), _tiny_data(), verbose=0)  # the same command again
    assert result["step"] == 12
    # Step 6's partial report window came back from the checkpoint: the numbers are the uninterrupted run's.
    pd.testing.assert_frame_equal(pd.read_csv(interrupted / run_folder.METRICS),
                                  pd.read_csv(first / run_folder.METRICS), rtol=1e-5)


def test_bfloat16_and_xla_paths_train_and_save(tmp_path):
    log_dir = tmp_path / "fast"
    result = cifar10_train.train(_config(log_dir, train_steps=4, report_freq=2, mixed_precision="bfloat16",
                                         jit_compile="on"), _tiny_data(), verbose=0)
    assert np.isfinite(result["train_loss"])
    assert result["model"].get_layer("res1_conv1").dtype_policy.name == "mixed_bfloat16"
    import keras
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for whatever is built next


# ---------------------------------------------------------------------------- the command line


def _main(capsys, *argv):
    code = cifar10_main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_test_from_the_command_line(capsys, cifar_archive, tmp_path):
    log_dir = tmp_path / "cli_run"
    code, out, err = _main(capsys, "--mode", "train", "--data_dir", str(cifar_archive), "--train_steps", "4",
                           "--report_freq", "2", "--batch_size", "5", "--log_dir", str(log_dir))
    assert code == 0, err
    assert "step 4/4" in out and "validating on the test set" in out
    code, out, err = _main(capsys, "--mode", "test", "--checkpoint", str(log_dir))
    assert code == 0, err
    probabilities = np.load(log_dir / "test_probabilities.npy")
    predictions = pd.read_csv(log_dir / "test_predictions.csv")
    assert probabilities.shape == (7, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(1) == predictions["true_label"]))
    assert f"accuracy {accuracy:.4f}" in out
    np.testing.assert_array_equal(predictions["predicted_label"], probabilities.argmax(1))
    saved_metrics = json.loads((log_dir / "test_metrics.json").read_text())
    assert saved_metrics["accuracy"] == pytest.approx(accuracy) and saved_metrics["trained_step"] == 4
    # --output sends the files elsewhere; a .keras path works as well as the folder.
    code, _, err = _main(capsys, "--mode", "test", "--checkpoint", str(log_dir / "best.keras"),
                         "--output", str(tmp_path / "elsewhere"))
    assert code == 0, err
    assert (tmp_path / "elsewhere" / "test_predictions.csv").exists()
    assert glob.glob(str(tmp_path / "elsewhere" / "test" / "events.out.tfevents.*"))  # TensorBoard's test/ too


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        cifar10_main.main(["--help"])
    out = capsys.readouterr().out
    for action in cifar10_main.build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
    assert "GLOBAL batch size" in out


# Flags the docs name that belong to other programs: TensorBoard's, pytest's (and pytest-xdist's), pip's and git's.
OTHER_PROGRAMS_FLAGS = {"--logdir", "--durations", "--dist", "--maxprocesses", "--dry", "--detach"}


def _user_pages():
    """The pages a user runs commands from: the README and docs/."""
    return [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))]


def test_every_flag_the_docs_name_exists():
    """A renamed or removed flag fails here until the README and docs/ say the new one: the docs name a flag of
    cifar10_main.py (its parser, built from RunConfig) or one a suite tool declares (add_argument in its source)."""
    flags = {option for action in cifar10_main.build_parser()._actions for option in action.option_strings}
    for source in [*ROOT.glob("*.py"), *ROOT.glob("experiments/*.py"), *ROOT.glob("benchmarks/*.py")]:
        flags.update(re.findall(r"add_argument\(\s*\"(--[a-z0-9_]+)\"", source.read_text()))
    known = flags | OTHER_PROGRAMS_FLAGS
    unknown = {f"{page.name}: {flag}" for page in _user_pages()
               for flag in re.findall(r"--[a-z][a-z0-9_]+", page.read_text()) if flag not in known}
    assert not unknown, sorted(unknown)


def _documented_commands(program):
    """Every command line of ``program`` in the README and docs/, continuation lines joined, comments, output
    redirections and a trailing ``&`` cut."""
    text = "\n".join(page.read_text() for page in _user_pages())
    text = text.replace("\\\n", " ")
    return sorted({re.split(r"\s+#|`|\||\s+\d?>|\s+&", line[line.index(program):])[0].strip()
                   for line in text.splitlines() if program in line})


def test_every_documented_command_parses(capsys):
    """The commands the README and docs/ show are accepted as written: by cifar10_main.py's parser and RunConfig,
    and by each experiment's parser."""
    import importlib
    import shlex

    from experiments import common

    main_commands = [c for c in _documented_commands("python cifar10_main.py") if "--help" not in c]
    assert len(main_commands) > 10  # the README's four and the docs' walk-throughs
    for command in main_commands:
        cifar10_main.config_from_flags(cifar10_main.build_parser().parse_args(shlex.split(command)[2:]))
    experiment_commands = [c for c in _documented_commands("python -m experiments.") if "--" in c]
    for command in experiment_commands:
        words = shlex.split(command)
        module = importlib.import_module(words[2])
        if hasattr(module, "PAPER"):  # the papers' experiments share one parser; the tools have their own
            common.experiment_parser(module).parse_args(words[3:])
    assert not capsys.readouterr().err


def test_list_models_prints_every_model_with_its_params(capsys, monkeypatch):
    import resnet

    # Four models stand for all of them: every model's build is tested in test_models, and building all of them
    # here took over a minute on a slow 2-core machine.
    listed = {name: resnet.MODELS[name] for name in ("resnet20", "resnet18", "resnet1202", "lenet5")}
    monkeypatch.setattr(resnet, "MODELS", listed)
    code, out, _ = _main(capsys, "--list_models")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1 + len(listed) + 1  # header, one line per model, the footnote
    for name, line in zip(listed, lines[1:]):
        assert line.startswith(name)
    assert "11,689,512" in lines[2] and "269,722" in lines[1]  # ResNet-18 at 224, ResNet-20 at 32
    assert "not built" in lines[3] and "19.4M" in lines[3]


def test_any_model_trains_with_its_option_from_the_cli(capsys, cifar_archive, tmp_path):
    log_dir = tmp_path / "jin"
    code, _, err = _main(capsys, "--model", "jin_cnn", "--residual_blocks", "2", "--data_dir", str(cifar_archive),
                         "--train_steps", "2", "--report_freq", "2", "--batch_size", "5", "--log_dir", str(log_dir))
    assert code == 0, err
    config = json.loads((log_dir / "config.json").read_text())
    assert config["run"]["model_options"] == {"residual_blocks": 2}


def test_option_a_model_does_not_take_is_one_line(capsys, cifar_archive, tmp_path):
    code, _, err = _main(capsys, "--model", "lenet5", "--shortcut", "B", "--data_dir", str(cifar_archive),
                         "--train_steps", "2", "--report_freq", "2", "--batch_size", "5",
                         "--log_dir", str(tmp_path / "run"))
    assert code == 2 and "model lenet5 does not take option(s) ['shortcut']" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_auto_steps_per_execution_fills_a_quarter_second_call_within_1_to_100():
    assert hardware.auto_steps_per_execution(0.141) == 1  # ResNet-20 here: one step per call
    assert hardware.auto_steps_per_execution(0.008) == 31  # LeNet-5-sized steps: about 30
    assert hardware.auto_steps_per_execution(1e-5) == 100
    assert hardware.auto_steps_per_execution(5.0) == 1


def test_step_0_report_last_batch_error_and_a_longer_schedule(tmp_path):
    """Liang's code reports before training and prints one batch's error; a run may stop inside a longer schedule."""
    log_dir = tmp_path / "liang_like"
    cifar10_train.train(_config(log_dir, train_steps=4, report_freq=2, steps_per_execution=1, report_at_start=True,
                                lr_decay_at=[0.5], lr_schedule_steps=8), _tiny_data(), verbose=0)
    metrics = pd.read_csv(log_dir / run_folder.METRICS)
    assert metrics["step"].tolist() == [0, 2, 4]
    start = metrics.iloc[0]
    assert np.isnan(start["train_loss"]) and np.isnan(start["train_batch_error"]) and 0 <= start["val_error"] <= 1
    # Decay at half of 8 steps, not of the 4 run: every update of this run is at the initial rate.
    np.testing.assert_allclose(metrics["learning_rate"], [0.05, 0.05, 0.05])
    batch_errors = metrics["train_batch_error"].iloc[1:] * 16  # one batch of 16: whole numbers of images
    np.testing.assert_allclose(batch_errors, np.round(batch_errors), atol=1e-6)
    # The step-0 report has no images/s (nothing trained yet): read back as it was written, not as damage.
    timing = run_folder.read_timing(str(log_dir / run_folder.TIMING))
    assert np.isnan(timing["images_per_sec"].iloc[0])
    assert run_folder.read_metrics(str(log_dir / run_folder.METRICS)).equals(metrics)
    again = cifar10_train.train(_config(log_dir, train_steps=4, report_freq=2, steps_per_execution=1,
                                        report_at_start=True, lr_decay_at=[0.5], lr_schedule_steps=8),
                                _tiny_data(), verbose=0)
    assert again["step"] == 4  # the finished run is reported again, not refused


def _record_applied_rates(monkeypatch):
    """The rate each training call's optimizer applies (Keras evaluates its schedule at its own iterations)."""
    rates = []
    real = cifar10_train.build_step_functions

    def build(model, optimizer, *args, **kwargs):
        train_steps_fn, eval_batch_fn = real(model, optimizer, *args, **kwargs)

        def recorded(iterator, num_steps):
            rates.append(float(optimizer.learning_rate))
            return train_steps_fn(iterator, num_steps)

        return recorded, eval_batch_fn

    monkeypatch.setattr(cifar10_train, "build_step_functions", build)
    return rates


def test_the_optimizer_applies_the_rates_the_csv_reports_also_after_a_longer_resume(tmp_path, monkeypatch):
    rates = _record_applied_rates(monkeypatch)
    log_dir = tmp_path / "rates"
    cifar10_train.train(_config(log_dir, steps_per_execution=1), _tiny_data(), verbose=0)
    # 40 steps, boundaries 20 and 30: updates 1-21 at 0.05, 22-31 at 0.005, then 0.0005.
    np.testing.assert_allclose(rates, [0.05] * 21 + [0.005] * 10 + [0.0005] * 9, rtol=1e-6)
    # --resume with 60 steps: the boundaries move to 30 and 45, and the restored optimizer follows them.
    cifar10_train.train(_config(log_dir, steps_per_execution=1, train_steps=60), _tiny_data(), verbose=0, resume=True)
    np.testing.assert_allclose(rates[40:], [0.005] * 6 + [0.0005] * 14, rtol=1e-6)
    csv = pd.read_csv(log_dir / run_folder.METRICS).set_index("step")["learning_rate"]
    for step in csv.index:  # the CSV's rate of a report step is the one applied by that step's update
        assert csv[step] == pytest.approx(rates[step - 1], rel=1e-6)


def test_a_warm_up_is_applied_and_tensorboard_shows_it_inside_one_report_interval(tmp_path, monkeypatch):
    """12 warm-up updates at 0.005, then 0.05 until the decay at 40% (updates 13-17), then 0.005 again: the steps
    10 and 20 that start and end a call both say 0.005, so only a look at every step finds the 0.05 between them."""
    rates = _record_applied_rates(monkeypatch)
    warm = dict(lr_decay_at=[0.4], lr_warmup_steps=12, lr_warmup_rate=0.005)
    cifar10_train.train(_config(tmp_path / "each_step", steps_per_execution=1, **warm), _tiny_data(), verbose=0)
    np.testing.assert_allclose(rates, [0.005] * 12 + [0.05] * 5 + [0.005] * 23, rtol=1e-6)
    log_dir = tmp_path / "ten_steps_a_call"  # one call from step 10 to 20: 0.005 at both ends
    cifar10_train.train(_config(log_dir, steps_per_execution=10, **warm), _tiny_data(), verbose=0)
    assert pd.read_csv(log_dir / run_folder.METRICS)["learning_rate"].tolist() == pytest.approx([0.005] * 4)
    logged = dict(summary_events(log_dir / "train")["learning_rate"])
    assert {step: logged[step] for step in (12, 13, 17, 18)} == pytest.approx(
        {12: 0.005, 13: 0.05, 17: 0.05, 18: 0.005})


def test_adam_keeps_its_rate_by_default(tmp_path, monkeypatch):
    rates = _record_applied_rates(monkeypatch)
    cifar10_train.train(_config(tmp_path / "adam", optimizer="adam", learning_rate=1e-3, train_steps=12, report_freq=4,
                                steps_per_execution=1), _tiny_data(), verbose=0)
    np.testing.assert_allclose(rates, [1e-3] * 12, rtol=1e-6)


def test_float16_with_loss_scaling_trains_on_cpu_and_an_overflowing_step_changes_no_weight(tmp_path):
    """The GPU default (auto = float16 with a LossScaleOptimizer) has no GPU here, so this runs it on the CPU, where
    float16 is slow but computes the same: a few engine steps, then one step whose scaled gradients overflow."""
    import keras

    config = dataclasses.replace(_config(tmp_path / "fp16", train_steps=4, report_freq=2), mixed_precision="float16")
    result = cifar10_train.train(config, _tiny_data(), verbose=0)  # resolve() refuses float16 without a GPU
    assert np.isfinite(result["train_loss"]) and result["step"] == 4
    assert result["model"].get_layer("res1_conv1").dtype_policy.name == "mixed_float16"

    model = cifar10_train.build_for_training(config, (16, 16, 3), 4)
    optimizer = cifar10_train.make_optimizer(config, loss_scaling=True)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    optimizer.build(model.trainable_variables)
    optimizer.dynamic_scale.assign(2.0 ** 40)  # far beyond float16's 65504: the gradients overflow
    train_steps_fn, _ = cifar10_train.build_step_functions(model, optimizer, tf.distribute.get_strategy(), 16,
                                                           loss_scaling=True)
    data = _tiny_data()
    batches = iter(tf.data.Dataset.from_tensors((tf.cast(data["x_train"][:16], tf.float32) / 255.0,
                                                 data["y_train"][:16])).repeat())
    before = [w.numpy().copy() for w in model.trainable_weights]
    totals, steps_run, _ = train_steps_fn(batches, tf.constant(1))
    assert np.isfinite(totals.numpy()[0]) and int(steps_run) == 1  # the loss itself is fine
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))  # step skipped
    assert float(optimizer.dynamic_scale.numpy()) == 2.0 ** 39  # and the scale halved


# ---------------------------------------------------------------------------- auto precision, measured


@pytest.fixture
def calibrating(monkeypatch, tmp_path):
    """Calibration on, with bfloat16 and float32 to choose from, cached in the test's folder."""
    monkeypatch.delenv("RESNET_SUITE_CALIBRATE")
    monkeypatch.setenv("RESNET_SUITE_CACHE", str(tmp_path / "cache" / "precision.json"))
    monkeypatch.setattr(hardware, "precision_candidates", lambda: ["bfloat16", "off"])
    monkeypatch.setattr(hardware, "busy_share", lambda seconds=0.5: 0.0)  # the other test worker is not load
    return tmp_path / "cache" / "precision.json"


def test_auto_precision_picks_the_faster_measured_one_and_caches_it(calibrating, capsys):
    config = RunConfig(model="lenet5", batch_size=64)
    measured = []
    rates = {"bfloat16": 300.0, "off": 400.0}  # bfloat16 slower, as on the Xeon of issue 14
    choice, seen, source = hardware.auto_precision(config, (32, 32, 3), 1, lambda p: measured.append(p) or rates[p])
    assert (choice, seen, measured) == ("off", rates, ["bfloat16", "off"]) and "measured now" in source
    again = hardware.auto_precision(config, (32, 32, 3), 1, lambda p: pytest.fail("measured twice"))
    assert again[:2] == ("off", rates) and "cached" in again[2]
    # Another batch per replica is another question.
    other = hardware.auto_precision(config, (32, 32, 3), 2, lambda p: {"bfloat16": 9, "off": 1}[p])
    assert other[0] == "bfloat16"
    # A corrupt cache is said in one line and measured afresh.
    calibrating.write_text("{not json")
    assert hardware.auto_precision(config, (32, 32, 3), 1, rates.get)[0] == "off"
    assert "unreadable precision cache" in capsys.readouterr().err
    assert len(json.loads(calibrating.read_text())) == 1


def test_auto_precision_on_a_busy_machine_chooses_but_keeps_nothing(calibrating, monkeypatch, capsys):
    monkeypatch.setattr(hardware, "busy_share", lambda seconds=0.5: 0.9)
    rates = {"bfloat16": 30.0, "off": 40.0}
    choice, seen, source = hardware.auto_precision(RunConfig(model="lenet5"), (32, 32, 3), 1, rates.get)
    assert (choice, seen) == ("off", rates) and "not cached" in source and not calibrating.exists()
    assert "BUSY" in capsys.readouterr().err


def test_auto_precision_follows_the_rule_when_told_not_to_measure(calibrating, monkeypatch):
    monkeypatch.setenv("RESNET_SUITE_CALIBRATE", "0")
    assert hardware.auto_precision(RunConfig(), (32, 32, 3), 1, lambda p: pytest.fail("measured")) == \
        ("bfloat16", None, "rule")
    monkeypatch.delenv("RESNET_SUITE_CALIBRATE")
    monkeypatch.setattr(hardware, "precision_candidates", lambda: ["off"])  # nothing to choose from
    assert hardware.auto_precision(RunConfig(), (32, 32, 3), 1, lambda p: pytest.fail("measured"))[0] == "off"


def test_auto_precision_times_the_real_step_in_each_precision(calibrating):
    choice, rates, _ = cifar10_train.auto_precision(RunConfig(model="lenet5", batch_size=16), (32, 32, 3))
    assert set(rates) == {"bfloat16", "off"} and choice == max(rates, key=rates.get)
    (entry,) = json.loads(calibrating.read_text()).values()
    assert entry["choice"] == choice and entry["images_per_sec"] == rates


def test_the_run_says_and_records_how_auto_chose(calibrating, monkeypatch, capsys, cifar_archive, tmp_path):
    monkeypatch.setattr(cifar10_train, "images_per_sec", lambda config, shape, batch, p: {"bfloat16": 250.0,
                                                                                          "off": 200.0}[p])
    log_dir = tmp_path / "run"
    code, out, err = _main(capsys, "--data_dir", str(cifar_archive), "--train_steps", "2", "--report_freq", "2",
                           "--batch_size", "5", "--model", "jin_cnn", "--log_dir", str(log_dir))
    assert code == 0, err
    assert "precision bfloat16 (auto: bfloat16 250, off 200 images/s, measured now" in out
    config = run_folder.read_config(log_dir)
    assert config["run"]["mixed_precision"] == "bfloat16"
    assert config["sessions"][-1]["auto_precision"]["images_per_sec"] == {"bfloat16": 250.0, "off": 200.0}
