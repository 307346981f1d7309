"""The benchmark scripts run end to end on tiny inputs (their speed targets live in benchmarks/README.md)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import throughput  # noqa: E402
import time_to_accuracy  # noqa: E402


def test_throughput_measures_every_requested_row(capsys):
    rates = throughput.main(["--models", "lenet5", "--feeds", "default", "ceiling", "auto", "--steps", "4",
                             "--warmup", "1", "--rounds", "2", "--batch_size", "16", "--num_images", "64"])
    out = capsys.readouterr().out
    assert set(rates["lenet5"]) == {"default", "ceiling", "auto", "pipeline_only"}
    assert all(rate > 0 for rate in rates["lenet5"].values())
    assert "default / ceiling" in out and "auto / all off" in out and "peak resident memory" in out


def test_time_to_accuracy_stops_at_the_target(cifar_archive, tmp_path, capsys):
    result = time_to_accuracy.main(["--model", "jin_cnn", "--target", "0.0", "--check_every", "2",
                                    "--data_dir", str(cifar_archive), "--log_dir", str(tmp_path / "tta"),
                                    "--", "--batch_size", "5", "--train_steps", "40"])
    assert result["reached"] and result["step"] == 2  # the first check already meets a target of 0
    assert "reached test accuracy 0.0000" in capsys.readouterr().out


def test_a_corrupt_archive_is_one_line_and_exit_code_2(tmp_path, capsys):
    broken = tmp_path / "cifar-10-python.tar.gz"
    broken.write_bytes(b"not a gzip archive")
    for main, argv in ((throughput.main, ["--models", "lenet5", "--data_dir", str(broken)]),
                       (time_to_accuracy.main, ["--data_dir", str(broken), "--log_dir", str(tmp_path / "tta")])):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error: CIFAR-10 archive" in err and "truncated or corrupt" in err
    assert not (tmp_path / "tta").exists()  # nothing written
