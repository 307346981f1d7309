"""The suite's TensorFlow environment defaults: oneDNN on wherever the suite is entered, the user's value wins, and
TensorFlow's start-up chatter muted."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _start(env_value):
    """A fresh process printing TF_ENABLE_ONEDNN_OPTS as it sees it after importing the suite's resnet module."""
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    code = "import os, resnet; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _seen(process):
    """(the value the process saw, what it wrote to stderr)."""
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    return out.strip().splitlines()[-1], err


def test_onednn_is_on_by_default_and_a_users_setting_wins():
    # TensorFlow itself turns oneDNN on only on CPUs with AVX-512 VNNI/BF16 or AMX (2-2.8x slower without it on
    # an AVX2 EPYC): importing any suite module before TensorFlow sets it on elsewhere too. Both processes start
    # at once (their TensorFlow imports overlap).
    unset, users = _start(None), _start("0")
    # TensorFlow's C++ start-up lines (oneDNN notice, CUDA stub) come before its log level applies: the suite's
    # import mutes them, so every entry point's --help and one-line errors stand alone.
    assert _seen(unset) == ("1", "")
    assert _seen(users)[0] == "0"
