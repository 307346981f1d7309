"""Bad input costs one clear line, exit code 2, and leaves nothing behind (issue 7's list)."""

import hashlib
import signal
import sys
import types
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

import api
import cifar10_input
import cifar10_main
import hardware
import run_folder
from conftest import write_python_archive


def _run(capsys, argv):
    """Runs the CLI; returns (exit code, stderr). argparse's own errors exit through SystemExit."""
    try:
        code = cifar10_main.main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


def _assert_one_line_error(capsys, argv, message, *must_not_exist):
    code, err = _run(capsys, argv)
    assert code == 2, err
    assert message in err, err
    assert err.count("\n") == 1, err
    for path in must_not_exist:
        assert not path.exists(), f"{path} was left behind"


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet7"], "argument --model: invalid choice: 'resnet7'"),
    (["--dataset", "imagenet21k"], "argument --dataset: invalid choice: 'imagenet21k'"),
    (["--augment", "magic"], "argument --augment: invalid choice: 'magic'"),
    (["--mode", "fly"], "argument --mode: invalid choice: 'fly'"),
    (["--train_steps", "0"], "argument --train_steps: must be a positive integer, got 0"),
    (["--train_steps", "-5"], "argument --train_steps: must be a positive integer, got -5"),
    (["--epochs", "-1"], "argument --epochs: must be a positive number, got -1"),
    (["--batch_size", "0"], "argument --batch_size: must be a positive integer, got 0"),
    (["--batch_size", "many"], "argument --batch_size: must be a positive integer, got many"),
    (["--learning_rate", "0"], "argument --learning_rate: must be a positive number, got 0"),
    (["--learning_rate", "-0.1"], "argument --learning_rate: must be a positive number, got -0.1"),
    (["--learning_rate", "nan"], "argument --learning_rate: must be a positive number, got nan"),
    (["--save_freq", "0"], "argument --save_freq: must be a positive integer, got 0"),
    (["--validation_split", "1.5"], "argument --validation_split: must be in [0, 1), got 1.5"),
    (["--steps_per_execution", "fast"], "argument --steps_per_execution: must be a positive integer, got fast"),
    (["--train_steps", "10", "--report_freq", "20"], "--report_freq 20 is larger than --train_steps 10"),
    (["--train_steps", "10", "--epochs", "2"], "give --train_steps or --epochs, not both"),
    (["--weights", "imagenet"], "--weights applies to the keras.applications models (*_imagenet), not resnet20"),
    (["--image_size", "64", "64"], "--image_size applies to --dataset folder only"),
    (["--dataset", "folder"], "--dataset folder needs --data_dir"),
    (["--mode", "test"], "--mode test needs --checkpoint"),
    (["--mode", "test", "--checkpoint", "/nonexistent/run"], "--checkpoint /nonexistent/run does not exist"),
    (["--mode", "predict", "--checkpoint", "/nonexistent/run"], "--mode predict needs --images"),
    (["--model", "resnet50_imagenet", "--fine_tune_at", "0.1"], "--fine_tune_at unfreezes part of a frozen backbone"),
    (["--profile_steps", "5", "3"], "--profile_steps 5 3: give FIRST LAST with 1 <= FIRST <= LAST"),
    (["--profile_steps", "0", "3"], "argument --profile_steps: must be a positive integer, got 0"),
    (["--train_steps", "10", "--report_freq", "5", "--batch_size", "5", "--profile_steps", "8", "12", "--data_dir",
      "TINY_CIFAR"],
     "--profile_steps ends at step 12, after the run's last step"),
])
def test_bad_flags(capsys, tmp_path, argv, message, request):
    if "TINY_CIFAR" in argv:  # a check that needs the data (how many steps the run has)
        argv = [str(request.getfixturevalue("cifar_archive")) if word == "TINY_CIFAR" else word for word in argv]
    _assert_one_line_error(capsys, argv + ["--log_dir", str(tmp_path / "run")], message, tmp_path / "run")


def test_batch_that_does_not_divide_among_replicas(capsys, tmp_path, monkeypatch, cifar_archive):
    # Three replicas need no hardware to be refused: the check happens before any device is used.
    monkeypatch.setattr(api, "make_strategy", lambda *args: types.SimpleNamespace(num_replicas_in_sync=3))
    _assert_one_line_error(capsys, ["--batch_size", "128", "--data_dir", str(cifar_archive), "--log_dir",
                                    str(tmp_path / "run")], "--batch_size 128 does not divide among 3 replicas",
                           tmp_path / "run")


def test_missing_data_dir_offline(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10_input, "CIFAR10_URL", "file:///nonexistent/cifar-10-python.tar.gz")
    missing = tmp_path / "no_such_folder"
    _assert_one_line_error(capsys, ["--data_dir", str(missing), "--log_dir", str(tmp_path / "run")],
                           "could not download CIFAR-10", missing, tmp_path / "run")
    code, err = _run(capsys, ["--data_dir", str(missing), "--log_dir", str(tmp_path / "run")])
    assert "pass --data_dir DIR" in err


def test_data_dir_that_is_not_a_dataset(capsys, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not CIFAR-10")
    _assert_one_line_error(capsys, ["--data_dir", str(bogus), "--log_dir", str(tmp_path / "run")],
                           f"CIFAR-10 archive {bogus} is truncated or corrupt", tmp_path / "run")


def test_truncated_archive(capsys, tmp_path, cifar_batches):
    archive = write_python_archive(tmp_path / "data" / "cifar-10-python.tar.gz", cifar_batches)
    archive.write_bytes(archive.read_bytes()[:3000])
    _assert_one_line_error(capsys, ["--data_dir", str(archive.parent), "--log_dir", str(tmp_path / "run")],
                           "cifar-10-python.tar.gz is truncated or corrupt", tmp_path / "run")


def test_md5_mismatch(capsys, tmp_path, monkeypatch, cifar_batches):
    source = write_python_archive(tmp_path / "server" / "cifar-10-python.tar.gz", cifar_batches)
    monkeypatch.setattr(cifar10_input, "CIFAR10_URL", source.as_uri())
    monkeypatch.setattr(cifar10_input, "CIFAR10_MD5", hashlib.md5(b"something else").hexdigest())
    cache = tmp_path / "cache"
    _assert_one_line_error(capsys, ["--data_dir", str(cache), "--log_dir", str(tmp_path / "run")],
                           "failed its MD5 check", cache, tmp_path / "run")


def test_bfloat16_under_a_onednn_isa_cap_is_one_line_and_auto_takes_float32(capsys, tmp_path, cifar_archive,
                                                                            monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 (how one mimics an older CPU) keeps oneDNN from bfloat16 while TensorFlow still sends
    it bfloat16 convolutions: the run used to fail at its first step, with auto as well on a bfloat16 CPU."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert hardware.onednn_isa_cap() == "AVX2" and not hardware.cpu_has_native_bfloat16()
    assert hardware.resolve_mixed_precision("auto") == "off"
    argv = ["--data_dir", str(cifar_archive), "--batch_size", "4", "--mixed_precision", "bfloat16", "--log_dir",
            str(tmp_path / "run")]
    _assert_one_line_error(capsys, argv, "--mixed_precision bfloat16 with ONEDNN_MAX_CPU_ISA=AVX2", tmp_path / "run")
    # An experiment's plan in bfloat16 (Jin's) is refused the same way before any timing (it failed mid-plan).
    from experiments import jin

    plan_argv = ["--tiny", "--plan", "--cifar10_dir", str(cifar_archive), "--results_dir", str(tmp_path / "jin")]
    assert jin.main(plan_argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("jin: error: --mixed_precision bfloat16 with ONEDNN_MAX_CPU_ISA=AVX2")
    assert err.count("\n") == 1 and not out.count("error")
    assert not (tmp_path / "jin" / "plan.md").exists()
    for allowing in ("AVX512_CORE_BF16", "avx512_core_amx", "ALL", ""):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", allowing)
        assert hardware.onednn_isa_cap() is None and hardware.resolve_mixed_precision("bfloat16") == "bfloat16"


def test_image_folder_without_images(capsys, tmp_path):
    (tmp_path / "flowers" / "daisy").mkdir(parents=True)
    (tmp_path / "flowers" / "daisy" / "readme.txt").write_text("no photos yet")
    _assert_one_line_error(capsys, ["--dataset", "folder", "--data_dir", str(tmp_path / "flowers"), "--model",
                                    "jin_cnn", "--log_dir", str(tmp_path / "run")],
                           "daisy holds no readable images", tmp_path / "run")


def test_unwritable_log_folder(capsys, tmp_path, cifar_archive):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should go")
    _assert_one_line_error(capsys, ["--data_dir", str(cifar_archive), "--batch_size", "5", "--train_steps", "2",
                                    "--report_freq", "1", "--log_dir", str(blocker / "run")],
                           f"cannot write to --log_dir {blocker / 'run'}")


def test_model_that_does_not_fit_the_images(capsys, tmp_path):
    folder = tmp_path / "tiny"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for index in range(3):
            cv2.imwrite(str(folder / name / f"{index}.png"), np.full((12, 12, 3), 40 * index, np.uint8))
    _assert_one_line_error(capsys, ["--dataset", "folder", "--data_dir", str(folder), "--model", "lenet5",
                                    "--image_size", "8", "8", "--augment", "none", "--batch_size", "2",
                                    "--train_steps", "2", "--report_freq", "1", "--log_dir", str(tmp_path / "run")],
                           "model lenet5 cannot take (8, 8, 3) images", tmp_path / "run")


def test_checkpoint_that_holds_another_model(capsys, tmp_path, cifar_archive):
    run = tmp_path / "run"
    assert cifar10_main.main(["--data_dir", str(cifar_archive), "--batch_size", "5", "--train_steps", "2",
                              "--report_freq", "2", "--model", "jin_cnn", "--log_dir", str(run)]) == 0
    capsys.readouterr()
    _assert_one_line_error(capsys, ["--mode", "test", "--checkpoint", str(run), "--model", "resnet56",
                                    "--output", str(tmp_path / "out")],
                           "holds a jin_cnn run, not --model resnet56", tmp_path / "out")
    (run / "latest.keras").write_bytes(b"not a keras file")
    _assert_one_line_error(capsys, ["--mode", "test", "--checkpoint", str(run), "--output", str(tmp_path / "out")],
                           "cannot load", tmp_path / "out")


def _trained(capsys, cifar_archive, run, *flags):
    """Trains a two-step run with ``flags`` into ``run``; returns the command that trained it."""
    command = ["--data_dir", str(cifar_archive), "--batch_size", "5", "--train_steps", "2", "--log_dir", str(run),
               *flags]
    assert cifar10_main.main(command) == 0
    capsys.readouterr()
    return command


def test_another_run_in_the_log_folder(capsys, tmp_path, cifar_archive):
    run = tmp_path / "run"
    common = _trained(capsys, cifar_archive, run, "--report_freq", "2", "--model", "jin_cnn")
    before = sorted(p.name for p in run.iterdir())
    _assert_one_line_error(capsys, common + ["--learning_rate", "0.5"],
                           "already holds another run (learning_rate: 0.1 -> 0.5); pass --resume")
    assert sorted(p.name for p in run.iterdir()) == before


def _folder_bytes(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_with_another_model_leaves_the_folder_as_it_was(capsys, tmp_path, cifar_archive):
    """The bug of issue 19: config.json was rewritten to the new model before its checkpoint failed to restore."""
    run = tmp_path / "run"
    common = _trained(capsys, cifar_archive, run, "--report_freq", "2", "--model", "jin_cnn")[:-2]  # without the model
    before = _folder_bytes(run)
    for other in (["--model", "lenet5"], ["--model", "jin_cnn", "--residual_blocks", "2"],
                  ["--model", "jin_cnn", "--optimizer", "adam"]):
        _assert_one_line_error(capsys, common + other + ["--resume", "--train_steps", "4"],
                               "--resume cannot continue the run in")
    assert _folder_bytes(run) == before  # config.json, checkpoint, models, CSVs: not a byte changed


def test_a_damaged_metrics_or_timing_csv_is_one_line_and_nothing_changes(capsys, tmp_path, cifar_archive):
    """Issue 36: a damaged metrics.csv was resumed as 'already finished' with 'val accuracy nan ... best -1.0000'."""
    run = tmp_path / "run"
    command = _trained(capsys, cifar_archive, run, "--report_freq", "1", "--model", "jin_cnn")
    metrics, timing = (run / "metrics.csv").read_text(), (run / "timing.csv").read_text()
    damages = [
        ("metrics.csv", metrics[:-len(metrics.splitlines()[-1]) // 2 - 1], "row 2 has no number in"),  # cut short
        ("metrics.csv", metrics.replace(metrics.splitlines()[1].split(",")[0] + ",", "oops,", 1),
         "row 1 has no number"),
        ("metrics.csv", "\n".join(line.split(",", 1)[1] for line in metrics.splitlines()), "no step column"),
        ("metrics.csv", "\n".join([metrics.splitlines()[0], *reversed(metrics.splitlines()[1:])]), "do not rise"),
        ("metrics.csv", "", "No columns to parse"),
        ("timing.csv", timing.replace("elapsed_sec", "elapsed"), "no elapsed_sec column"),
    ]
    for name, text, why in damages:
        (run / "metrics.csv").write_text(metrics)
        (run / "timing.csv").write_text(timing)
        (run / name).write_text(text)
        before = _folder_bytes(run)
        code, err = _run(capsys, command)
        assert code == 2 and err.count("\n") == 1, err
        assert f"{run / name} is damaged (" in err and why in err and "--overwrite" in err, err
        assert _folder_bytes(run) == before, name  # nothing restored, appended or rewritten


@pytest.mark.parametrize("tf_config, message", [
    (None, "--distribution_strategy multi_worker needs TF_CONFIG"),
    ("not json", "TF_CONFIG is not JSON"),
    ('{"cluster": ["localhost:1"]}', "TF_CONFIG must be {\"cluster\""),
])
def test_bad_tf_config_is_one_line(capsys, tmp_path, monkeypatch, tf_config, message):
    # Checked before TensorFlow's strategy starts: nothing of the cluster runtime is configured in this process.
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    _assert_one_line_error(capsys, ["--distribution_strategy", "multi_worker", "--log_dir", str(tmp_path / "run")],
                           message, tmp_path / "run")


def test_overwrite_from_the_cli_restarts_at_step_0_with_no_old_file_left(capsys, tmp_path, cifar_archive):
    run = tmp_path / "run"
    common = ["--data_dir", str(cifar_archive), "--batch_size", "5", "--report_freq", "2", "--model", "jin_cnn",
              "--log_dir", str(run)]
    assert cifar10_main.main(common + ["--train_steps", "4"]) == 0
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(run)]) == 0
    (run / "notes.txt").write_text("mine")
    old = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != "notes.txt"}
    capsys.readouterr()
    _assert_one_line_error(capsys, common + ["--train_steps", "2", "--resume", "--overwrite"],
                           "--resume and --overwrite contradict each other")
    assert cifar10_main.main(common + ["--train_steps", "2", "--learning_rate", "0.05", "--overwrite"]) == 0
    assert "Resuming" not in capsys.readouterr().out  # started afresh
    assert pd.read_csv(run / "metrics.csv")["step"].tolist() == [2]
    assert not any(p.exists() and p.stat().st_mtime_ns == mtime for p, mtime in old.items())  # every old file went
    for name in ("test_metrics.json", "test_predictions.csv", "test_probabilities.npy", "test_confusion_matrix.png"):
        assert not (run / name).exists()  # the replaced run's test results are not passed off as the new run's
    assert (run / "notes.txt").read_text() == "mine"
    assert run_folder.saved_config(str(run))[0].learning_rate == 0.05


def test_the_commands_own_warnings_are_one_line(monkeypatch, tmp_path, capsys):
    """Run as a command, a warning of the suite's own (an unreadable file skipped) is one line under the program's
    name, as its errors are, not Python's file:line plus a source line; other packages' warnings keep Python's."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() as the process replaces it
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # nor may it take this process's SIGTERM
    monkeypatch.setattr(sys, "argv", ["cifar10_main.py", "--mode", "test", "--checkpoint", str(tmp_path / "none")])
    assert cifar10_main.main() == 2
    capsys.readouterr()
    own = warnings.formatwarning(UserWarning("skipped 1 file(s) that are not readable images: notes.txt"),
                                 UserWarning, cifar10_main.__file__, 129, "return api.predict(...)")
    assert own == "cifar10_main.py: warning: skipped 1 file(s) that are not readable images: notes.txt\n"
    other = warnings.formatwarning(UserWarning("deprecated"), UserWarning, "/site-packages/keras/layer.py", 7, "")
    assert other.startswith("/site-packages/keras/layer.py:7: UserWarning: deprecated")
    # Called from Python (a test, a notebook), main leaves Python's warnings as they were.
    monkeypatch.setattr(warnings, "formatwarning", cifar10_main.PYTHON_FORMATWARNING)
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(tmp_path / "none")]) == 2
    assert warnings.formatwarning is cifar10_main.PYTHON_FORMATWARNING
