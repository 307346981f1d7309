"""The suite's defaults for what TensorFlow reads from the environment once, at its first import.

Every module of the suite that imports TensorFlow imports this first, so the defaults hold however the suite
is entered (the CLI, experiments, benchmarks, tests or a user's own script). A value the user set wins.

- ``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512
  VNNI/BF16 or AMX; elsewhere it trains with Eigen's kernels. On a 2-core AMD EPYC with AVX2 only
  (2026-11-30) ResNet-20 trained 2-2.8x faster with oneDNN (benchmarks/README.md); ``=0`` turns it off.
- ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ log shows warnings and errors only.

It then imports TensorFlow with file descriptor 2 muted (unless TF_CPP_MIN_LOG_LEVEL is 0): TF's C++ start-up
lines (oneDNN notice, CUDA stub lookup) are written before its log level applies, so ``--help`` or a bad flag
would otherwise come after six lines of chatter. On a machine with no NVIDIA driver or device
(``nvidia_device_present``), the device list is made there too: CUDA's "failed call to cuInit: ... UNKNOWN
ERROR (303)" line, certain without a GPU, read like an error on every run of a CPU machine. Where a GPU could
be, device set-up messages still show: they matter there.
"""

import glob
import os
import sys

DEFAULTS = {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}

for _name, _value in DEFAULTS.items():
    os.environ.setdefault(_name, _value)


def nvidia_device_present():
    """True when the machine has an NVIDIA driver loaded, its device files or WSL2's GPU bridge (whether or not
    TensorFlow can use it); without any, CUDA cannot start here."""
    return (os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))
            or os.path.exists("/dev/dxg"))


def _import_tensorflow_quietly():
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow
            if not nvidia_device_present():  # no GPU: CUDA's failing start-up, muted (logical devices can still be set)
                tensorflow.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_import_tensorflow_quietly()
