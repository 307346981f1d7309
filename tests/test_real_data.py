"""The real CIFAR-10 copy in ../shared/datasets (JPEG-derived, official python layout)."""

import numpy as np
import pandas as pd

import cifar10_main
import augment
import cifar10_input
from conftest import require_shared


def test_real_cifar10_loads_with_published_counts():
    archive = require_shared("cifar10", "cifar-10-python-jpeg75.tar.gz")
    data = cifar10_input.load_cifar10(str(archive.parent), download=False)
    assert data["x_train"].shape == (50000, 32, 32, 3) and data["x_test"].shape == (10000, 32, 32, 3)
    assert data["x_train"].dtype == np.uint8
    # 5,000 training and 1,000 test images per class (the dataset README).
    assert np.bincount(data["y_train"]).tolist() == [5000] * 10
    assert np.bincount(data["y_test"]).tolist() == [1000] * 10
    mean, _ = augment.channel_stats(data["x_train"])
    np.testing.assert_allclose(mean, [125.3, 122.9, 113.9], atol=1.0)  # CIFAR-10's well-known channel means


def test_short_real_run_trains_and_tests(tmp_path, capsys):
    archive = require_shared("cifar10", "cifar-10-python-jpeg75.tar.gz")
    log_dir = tmp_path / "real"
    # Jin's plain CNN: the real files through training, validation and test mode, not ResNet-20's cost (ResNet-20
    # trains in test_train's command-line test and meets the real test set in the shipped weights' test).
    code = cifar10_main.main(["--data_dir", str(archive.parent), "--train_steps", "6", "--report_freq", "3",
                              "--batch_size", "32", "--validation_split", "0.02", "--log_dir", str(log_dir),
                              "--model", "jin_cnn"])
    out = capsys.readouterr().out
    assert code == 0 and "1000 images held out" in out
    metrics = pd.read_csv(log_dir / "metrics.csv")
    assert metrics["step"].tolist() == [3, 6] and metrics["val_loss"].notna().all()
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(log_dir)]) == 0
    assert np.load(log_dir / "test_probabilities.npy").shape == (10000, 10)
