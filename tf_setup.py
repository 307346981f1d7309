"""The suite's defaults for what TensorFlow reads from the environment once, at its first import.

Every module of the suite that imports TensorFlow imports this first, so the defaults hold however the suite
is entered (the CLI, experiments, benchmarks, tests or a user's own script). A value the user set wins.

- ``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512
  VNNI/BF16 or AMX; elsewhere it trains with Eigen's kernels. On a 2-core AMD EPYC with AVX2 only
  (2026-11-30) ResNet-20 trained 2-2.8x faster with oneDNN (benchmarks/README.md); ``=0`` turns it off.
- ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ log shows warnings and errors only.
"""

import os

DEFAULTS = {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}

for _name, _value in DEFAULTS.items():
    os.environ.setdefault(_name, _value)
