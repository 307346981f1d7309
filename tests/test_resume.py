"""A real training process killed (SIGKILL) or stopped (SIGTERM, handled as Ctrl-C) mid-run continues when the same
command runs again."""

import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import tensorflow as tf

import cifar10_main
from conftest import ROOT, subprocess_env


def _flags(data_dir, log_dir, precision):
    # Jin's CNN with one residual block has what a resume must restore (batch norm's moving statistics, momentum)
    # and builds and traces in a fifth of ResNet-20's time.
    return ["--data_dir", str(data_dir), "--log_dir", str(log_dir), "--model", "jin_cnn", "--residual_blocks", "1",
            "--train_steps", "100", "--report_freq", "50", "--save_freq", "5", "--batch_size", "8",
            "--steps_per_execution", "1", "--eval_batch_size", "7", "--deterministic", "--seed", "1",
            "--mixed_precision", precision]


def _command(data_dir, log_dir, precision):
    return [sys.executable, str(ROOT / "cifar10_main.py"), *_flags(data_dir, log_dir, precision)]


def test_ctrl_c_exits_130_with_one_line_and_sigterm_is_handled_as_ctrl_c(monkeypatch, capsys):
    """Ctrl-C raises KeyboardInterrupt in Python's main thread; the CLI turns it into one line and exit 130. SIGTERM
    is given the same meaning (the subprocess test above sends it to a real training)."""
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cifar10_main, "run_train", interrupted)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert cifar10_main.main(["--mode", "train"]) == 130
        assert "interrupted; the last checkpoint is kept" in capsys.readouterr().err
        assert callable(signal.getsignal(signal.SIGTERM))  # main installed a handler (the default would end pytest)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _saved_step(log_dir):
    """The newest checkpoint's step, from its index files, in plain Python. Polled through TensorFlow
    (tf.train.latest_checkpoint), a loaded test worker once saw no step-20 checkpoint until the 100-step run had
    ended (2026-12-05), so Ctrl-C came too late; this keeps TensorFlow out of the loop."""
    steps = [int(path.name[len("ckpt-"):-len(".index")]) for path in (log_dir / "ckpt").glob("ckpt-*.index")]
    return max(steps, default=0)


@pytest.mark.parametrize("stop, precision", [(signal.SIGKILL, "off"), (signal.SIGTERM, "auto")])
def test_stopped_run_then_same_command_continues_to_the_same_bytes(cifar_archive, tmp_path, stop, precision,
                                                                    capsys):
    log_dir = tmp_path / "run"
    command = _command(cifar_archive, log_dir, precision)
    env = subprocess_env()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if _saved_step(log_dir) >= 20:
                break
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        else:
            raise AssertionError("no checkpoint at step 20 within 240 s")
        process.send_signal(stop)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    if stop == signal.SIGTERM:  # kill, a scheduler's stop: as Ctrl-C, exit 130, one line saying the checkpoint is kept
        assert process.returncode == 130, process.stderr.read().decode()[-2000:]
        assert "interrupted; the last checkpoint is kept" in process.stderr.read().decode()
    else:
        assert process.returncode == -signal.SIGKILL
    killed_at = int(tf.train.latest_checkpoint(str(log_dir / "ckpt")).rsplit("-", 1)[1])
    assert killed_at < 100  # stopped mid-run, not after the end
    # What an atomic write killed half-way leaves behind must not be trusted: the resumed run removes it.
    (log_dir / ".metrics.csv.half-written.csv").write_text("step,epoch\n100,")

    # The same command again, in this process (no TensorFlow start-up of its own): what it runs is cifar10_main's.
    capsys.readouterr()
    assert cifar10_main.main(_flags(cifar_archive, log_dir, precision)) == 0
    resumed_from = int(re.search(r"Resuming \S+ from step (\d+)", capsys.readouterr().out).group(1))
    assert resumed_from >= killed_at and resumed_from % 5 == 0  # at most --save_freq steps lost
    metrics = pd.read_csv(log_dir / "metrics.csv")
    assert metrics["step"].tolist() == [50, 100]  # complete: no row missing, none twice
    assert metrics.notna().all().all()
    assert tf.train.latest_checkpoint(str(log_dir / "ckpt")).endswith("ckpt-100")
    assert (log_dir / "latest.keras").exists() and (log_dir / "best.keras").exists()
    # No temporary file of an interrupted atomic write is left for a later run to trust.
    assert not [p for p in log_dir.iterdir() if p.name.startswith(".")]
    # --deterministic: the stopped-and-resumed run wrote the uninterrupted run's numbers, byte for byte. The
    # uninterrupted run trains in this process (no TensorFlow start-up of its own), after the others.
    reference = tmp_path / "uninterrupted"
    assert cifar10_main.main(_flags(cifar_archive, reference, precision)) == 0
    assert (log_dir / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
