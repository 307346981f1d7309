"""Run by tests/test_distributed.py in a fresh process: train a tiny model under a strategy, save its weights.

usage: distributed_worker.py STRATEGY ARCHIVE_DIR LOG_DIR WEIGHTS_OUT
STRATEGY is mirrored (the CPU split into two logical devices) or multi_worker (TF_CONFIG set by the caller).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy_name, data_dir, log_dir, weights_out = sys.argv[1:5]
if strategy_name == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import cifar10_main  # noqa: E402
import cifar10_train  # noqa: E402

captured = {}
original_train = cifar10_train.train


def train_and_keep(config, data, strategy=None, verbose=1):
    result = original_train(config, data, strategy, verbose)
    captured["weights"] = [np.asarray(w) for w in result["model"].trainable_weights]
    captured["replicas"] = strategy.num_replicas_in_sync
    return result


cifar10_train.train = train_and_keep
code = cifar10_main.main([
    "--distribution_strategy", strategy_name, "--data_dir", data_dir, "--log_dir", log_dir,
    "--train_steps", "4", "--report_freq", "2", "--batch_size", "8", "--steps_per_execution", "2",
])
if code == 0:
    np.savez(weights_out, replicas=captured["replicas"], *captured["weights"])
sys.exit(code)
