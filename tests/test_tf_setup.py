"""The suite's TensorFlow environment defaults: oneDNN on wherever the suite is entered, the user's value wins, and
TensorFlow's start-up chatter muted."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import tf_setup

ROOT = Path(__file__).resolve().parents[1]


def test_onednn_is_on_by_default_and_a_users_setting_wins(monkeypatch):
    # TensorFlow itself turns oneDNN on only on CPUs with AVX-512 VNNI/BF16 or AMX (2-2.8x slower without it on
    # an AVX2 EPYC): importing any suite module before TensorFlow sets it on elsewhere too, in a fresh process.
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    # The import, then a first operation (TensorFlow's device set-up: CUDA's start-up fails on a machine without a GPU).
    code = "import os, resnet, tensorflow as tf; tf.constant(1.0) + 1; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1"
    # TensorFlow's C++ start-up lines (oneDNN notice, CUDA stub) come before its log level applies: the suite's
    # import mutes them, so every entry point's --help and one-line errors stand alone; without a GPU, so is CUDA's
    # "failed call to cuInit" at the device set-up (where a GPU could be, its set-up messages show).
    if not tf_setup.nvidia_device_present():
        assert done.stderr == ""
    else:
        assert "oneDNN custom operations" not in done.stderr
    # A value the user set wins (the module's own code, run again here: TensorFlow is imported already).
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    importlib.reload(tf_setup)
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
