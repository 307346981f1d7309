"""TensorBoard as the window onto a run: hparams session, confusion matrix and mistakes, learning-rate steps."""

import dataclasses
import glob
import gzip
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import tensorflow as tf

import api
import cifar10_main
from conftest import summary_events


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A trained and tested tiny run in runs/tiny: lr 0.1 divided at steps 4 and 6 of 8 (the 5th and 7th updates)."""
    from conftest import tiny_cifar, write_python_archive

    root = tmp_path_factory.mktemp("tensorboard")
    write_python_archive(root / "data" / "cifar-10-python.tar.gz", tiny_cifar())
    log_dir = root / "runs" / "tiny"
    common = ["--data_dir", str(root / "data")]
    assert cifar10_main.main(common + ["--model", "jin_cnn", "--train_steps", "8", "--report_freq", "4",
                                       "--batch_size", "5", "--steps_per_execution", "3", "--mixed_precision", "off",
                                       "--profile_steps", "2", "3", "--log_dir", str(log_dir)]) == 0
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(log_dir)]) == 0
    return root / "runs", log_dir


def test_event_files_hold_hparams_images_and_learning_rate_steps(tiny_runs):
    _, log_dir = tiny_runs
    root = summary_events(log_dir)
    assert ("_hparams_/session_start_info" in root and root["_hparams_/session_start_info"][0][1] == "hparams")
    validation, test, train = (summary_events(log_dir / name) for name in ("validation", "test", "train"))
    for images in (validation, test):
        assert [step for step, _ in images["confusion_matrix"]] == [8]  # the model's training step
        assert [step for step, _ in images["misclassified"]] == [8]
    assert [step for step, _ in validation["best_accuracy"]] == [4, 8]
    assert test["accuracy"][0][0] == 8
    expected = json.loads((log_dir / "test_metrics.json").read_text())["accuracy"]
    assert test["accuracy"][0][1] == pytest.approx(expected, abs=1e-6)
    # The schedule's steps where they are (reports at 4 and 8 log it too). Keras' PiecewiseConstantDecay with
    # boundaries 4 and 6 gives updates 1-5 the rate 0.1, 6-7 0.01, 8 0.001 (the update after the boundary is the
    # first at the new rate, as wenxinxu's loop decays after its step 40000); each change is logged with the old
    # rate at the step before, although with 3 steps per call it falls inside a call.
    logged = sorted(set(train["learning_rate"]))
    assert [step for step, _ in logged] == [1, 4, 5, 6, 7, 8]
    assert [rate for _, rate in logged] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001])


def test_replay_rebuilds_the_engines_report_scalars_hparams_and_test_from_the_committed_csvs(
        tiny_runs, tmp_path, capsys):
    """experiments/replay_tensorboard: a results folder as committed (the experiment's metrics.csv with run and seed,
    the run's config.json and test_metrics.json, no events) gives the scalars the engine wrote at each report."""
    import pandas as pd
    from experiments import replay_tensorboard

    _, log_dir = tiny_runs
    results = tmp_path / "results"
    (results / "tiny" / "seed0").mkdir(parents=True)
    for name in ("config.json", "test_metrics.json"):
        (results / "tiny" / "seed0" / name).write_text((log_dir / name).read_text())
    rows = pd.read_csv(log_dir / "metrics.csv").merge(pd.read_csv(log_dir / "timing.csv"), on="step")
    rows.insert(0, "seed", 0)
    rows.insert(0, "run", "tiny")
    rows.to_csv(results / "metrics.csv", index=False)
    assert replay_tensorboard.main([str(results)]) == 0
    replayed = results / "tensorboard" / "tiny" / "seed0"
    for split in ("train", "validation", "test"):
        engine, rebuilt = summary_events(log_dir / split), summary_events(replayed / split)
        scalars = {tag for tag, values in engine.items() if isinstance(values[0][1], float)}
        assert scalars - {"learning_rate"} == set(rebuilt) - {"learning_rate"}, split
        for tag in scalars:  # the engine also logs the learning rate where it steps between reports
            reported = {step: value for step, value in engine[tag] if step in set(rows["step"]) or split == "test"}
            assert [step for step, _ in rebuilt[tag]] == sorted(reported), (split, tag)
            assert dict(rebuilt[tag]) == pytest.approx(reported, rel=1e-5), (split, tag)
    assert summary_events(replayed)["_hparams_/session_start_info"][0][1] == "hparams"
    # Replaying again replaces its own folder (no curve drawn twice); a folder it did not write is refused.
    assert replay_tensorboard.main([str(results)]) == 0
    assert len(glob.glob(str(replayed / "validation" / "events.out.tfevents.*"))) == 1
    assert replay_tensorboard.main([str(results), "--logdir", str(log_dir)]) == 2
    assert replay_tensorboard.main([str(tmp_path / "nowhere")]) == 2
    (results / "tiny" / "seed0" / "config.json").write_text("{not json")
    assert replay_tensorboard.main([str(results)]) == 2
    assert "replay_tensorboard: error: cannot read" in capsys.readouterr().err


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        content = response.read()
        return json.loads(gzip.decompress(content) if response.headers.get("Content-Encoding") == "gzip" else content)


def test_a_real_tensorboard_lists_the_run_its_hparams_metrics_and_images(tiny_runs):
    runs, _ = tiny_runs
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(runs), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data"
    try:
        deadline = time.time() + 90
        while True:
            try:
                _get(f"{base}/plugins_listing", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("tensorboard did not start within 90 s") from None
                time.sleep(1)
        groups = _get(f"{base}/plugin/hparams/session_groups", {
            "experimentName": "", "colParams": [], "startIndex": 0, "sliceSize": 10,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})
        assert groups["totalSize"] == 1
        session = groups["sessionGroups"][0]
        assert session["hparams"]["model"] == "jin_cnn" and session["hparams"]["batch_size"] == 5
        metrics = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in session["metricValues"]}
        assert {("validation", "accuracy"), ("validation", "best_accuracy"), ("test", "accuracy")} <= set(metrics)
        tags = _get(f"{base}/plugin/images/tags")
        assert {"confusion_matrix", "misclassified"} <= set(tags["tiny/test"]) and "augmentation" in tags["tiny/train"]
        # The Profile tab lists the --profile_steps trace of the run's train/ with its tools.
        (profiled,) = _get(f"{base}/plugin/profile/runs")
        assert profiled.startswith("tiny/train/")
        assert "trace_viewer@" in _get(f"{base}/plugin/profile/run_tools?run={urllib.parse.quote(profiled)}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_tested_model_is_placed_at_the_step_it_was_saved(tmp_path):
    """latest.keras at the last report; best.keras at the first report with the highest validation accuracy."""
    import pandas as pd

    pd.DataFrame({"step": [2, 4, 6, 8], "val_accuracy": [0.2, 0.5, 0.5, 0.3]}).to_csv(tmp_path / "metrics.csv")
    assert api.trained_step(str(tmp_path), str(tmp_path / "latest.keras")) == 8
    assert api.trained_step(str(tmp_path), str(tmp_path / "best.keras")) == 4
    assert api.trained_step(str(tmp_path / "elsewhere"), "model.keras") == 0  # no metrics: step 0


def test_profile_steps_trace_exactly_those_steps_for_the_profile_tab(tmp_path, monkeypatch):
    import importlib.util

    import cifar10_train
    from test_train import _config, _tiny_data

    assert importlib.util.find_spec("tensorboard_plugin_profile"), "requirements.txt installs the Profile tab"
    config = _config(tmp_path / "run", model="jin_cnn", train_steps=6, report_freq=6, steps_per_execution=3,
                     profile_steps=(2, 4))
    cifar10_train.train(config, _tiny_data(), verbose=0)
    assert glob.glob(str(tmp_path / "run" / "train" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    # Calls end where the trace starts (before step 2) and stops (after step 4): it holds steps 2 to 4 only.
    events, real = [], cifar10_train.build_step_functions

    def recording(*args, **kwargs):
        train_steps_fn, eval_batch_fn = real(*args, **kwargs)
        return (lambda iterator, n: events.append(int(n)) or train_steps_fn(iterator, n)), eval_batch_fn

    monkeypatch.setattr(cifar10_train, "build_step_functions", recording)
    monkeypatch.setattr(tf.profiler.experimental, "start", lambda folder: events.append("start"))
    monkeypatch.setattr(tf.profiler.experimental, "stop", lambda: events.append("stop"))
    cifar10_train.train(dataclasses.replace(config, log_dir=str(tmp_path / "again")), _tiny_data(), verbose=0)
    assert events == [1, "start", 3, "stop", 2]
