"""tf.distribute code paths on CPU: MirroredStrategy over two logical CPUs, and two local workers."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

import cifar10_main
import distributed_worker
from conftest import subprocess_env

WORKER = Path(__file__).with_name("distributed_worker.py")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _weights(path):
    stored = np.load(path)
    return int(stored["replicas"]), [stored[f"arr_{i}"] for i in range(len(stored.files) - 1)]


def _single_device_weights(cifar_archive, tmp_path):
    """The same training on one device, in this process (no TensorFlow start-up of its own): what two replicas
    must reproduce (global-batch loss, scaled L2)."""
    flags = distributed_worker.flags("default", cifar_archive, tmp_path / "single")
    result = cifar10_main.run_train(cifar10_main.build_parser().parse_args(flags))
    assert result["num_replicas"] == 1
    return [np.asarray(w) for w in result["model"].trainable_weights]


def _assert_same_training(weights, reference):
    assert len(weights) == len(reference)
    for ours, single in zip(weights, reference):
        np.testing.assert_allclose(ours, single, rtol=1e-4, atol=1e-6)


def test_mirrored_on_two_logical_cpus(cifar_archive, tmp_path):
    out = tmp_path / "weights.npz"
    log_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, str(WORKER), "mirrored", str(cifar_archive), str(log_dir), str(out)],
                          capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert done.returncode == 0, done.stderr[-2000:]
    replicas, weights = _weights(out)
    assert replicas == 2
    assert "2 replica(s)" in done.stdout
    assert (log_dir / "latest.keras").exists() and (log_dir / "metrics.csv").exists()
    _assert_same_training(weights, _single_device_weights(cifar_archive, tmp_path))


def _two_workers(cifar_archive, log_dir, scratch, out_dir):
    """Trains the worker script as a cluster of two local workers; returns their standard outputs."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = subprocess_env(TMPDIR=str(scratch),
                             TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, str(WORKER), "multi_worker", str(cifar_archive), str(log_dir),
             str(out_dir / f"w{index}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in processes]
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-2000:]
    return [out for out, _ in outputs]


def test_two_workers_end_with_identical_weights_and_chief_checkpoints(cifar_archive, tmp_path):
    log_dir = tmp_path / "run"
    scratch = tmp_path / "tmp"  # the workers' temporary folder: the non-chief's scratch saves go here
    scratch.mkdir()
    _two_workers(cifar_archive, log_dir, scratch, tmp_path)
    (replicas0, weights0), (replicas1, weights1) = _weights(tmp_path / "w0.npz"), _weights(tmp_path / "w1.npz")
    assert replicas0 == replicas1 == 2
    for a, b in zip(weights0, weights1):
        np.testing.assert_array_equal(a, b)
    _assert_same_training(weights0, _single_device_weights(cifar_archive, tmp_path))
    # Worker 0 is the chief: it alone writes the run folder.
    assert (log_dir / "latest.keras").exists() and (log_dir / "ckpt").is_dir()
    assert sorted(os.listdir(log_dir / "ckpt"))
    assert not [name for name in os.listdir(scratch) if name.startswith("worker_")], \
        "the non-chief's scratch folder is left"
    # Committed without its checkpoint, the finished run ends both workers at once (none waits on the other).
    shutil.rmtree(log_dir / "ckpt")
    metrics = (log_dir / "metrics.csv").read_bytes()
    outputs = _two_workers(cifar_archive, log_dir, scratch, tmp_path)
    assert all("from step 4 (already finished)" in out for out in outputs)
    assert (log_dir / "metrics.csv").read_bytes() == metrics
