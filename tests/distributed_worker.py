"""Run by tests/test_distributed.py in a fresh process: train a tiny model under a strategy, save its weights.

usage: distributed_worker.py STRATEGY ARCHIVE_DIR LOG_DIR WEIGHTS_OUT
STRATEGY is mirrored (the CPU split into two logical devices) or multi_worker (TF_CONFIG set by the caller);
the test trains the one-device reference they must match in its own process, with the same ``flags``. The model
is LeNet-5, which has no batch norm (whose per-replica statistics would differ by design), with weight decay, in
float32, without augmentation, so that every strategy computes the same updates up to float rounding.
"""

import sys

import tf_setup  # noqa: F401  (the checkout is on PYTHONPATH: tests/test_distributed.py sets it)

import numpy as np
import tensorflow as tf


def flags(strategy_name, data_dir, log_dir):
    """The command-line flags of the run every strategy trains."""
    return ["--distribution_strategy", strategy_name, "--data_dir", str(data_dir), "--log_dir", str(log_dir),
            "--train_steps", "4", "--report_freq", "2", "--batch_size", "8", "--steps_per_execution", "2",
            "--model", "lenet5", "--augment", "none", "--weight_decay", "1e-2", "--learning_rate", "0.05",
            "--mixed_precision", "off"]


def main(strategy_name, data_dir, log_dir, weights_out):
    if strategy_name == "mirrored":  # before TensorFlow initialises its devices
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import cifar10_main
    result = cifar10_main.run_train(cifar10_main.build_parser().parse_args(flags(strategy_name, data_dir, log_dir)))
    # A finished run whose checkpoint was removed comes back without a model: nothing to save but the replicas.
    weights = [np.asarray(w) for w in result["model"].trainable_weights] if result["model"] else []
    np.savez(weights_out, *weights, replicas=result["num_replicas"])


if __name__ == "__main__":
    main(*sys.argv[1:5])
