"""The benchmark scripts run end to end on tiny inputs (their speed targets live in benchmarks/README.md)."""

import sys
import types

import pytest

from benchmarks import profile_ops, throughput, time_to_accuracy


def test_throughput_measures_every_requested_row(capsys, monkeypatch):
    # A clock that advances a quarter second per reading: every timed stretch lasts 0.25 s, so each rate is
    # exactly the images the row really trained (or the pipeline really delivered) divided by 0.25 s.
    ticks = iter(range(10**6))
    monkeypatch.setattr(throughput, "time", types.SimpleNamespace(perf_counter=lambda: 0.25 * next(ticks)))
    trained = []
    real = throughput.cifar10_train.build_step_functions

    def counting(*args, **kwargs):
        train_steps_fn, eval_batch_fn = real(*args, **kwargs)
        return (lambda iterator, n: trained.append(int(n)) or train_steps_fn(iterator, n)), eval_batch_fn

    monkeypatch.setattr(throughput.cifar10_train, "build_step_functions", counting)
    pulled = []
    real_pipeline = throughput.pipeline_dataset

    class Counting:  # the pipeline-alone dataset, counting the batches taken from it
        def __init__(self, dataset):
            self.dataset = dataset

        def __iter__(self):
            iterator = iter(self.dataset)
            return (pulled.append(1) or batch for batch in iterator)

    monkeypatch.setattr(throughput, "pipeline_dataset", lambda *args: Counting(real_pipeline(*args)))
    rates = throughput.main(["--models", "lenet5", "--feeds", "default", "ceiling", "--steps", "4",
                             "--warmup", "1", "--rounds", "2", "--batch_size", "16", "--num_images", "64",
                             "--matmul_size", "64"])
    out = capsys.readouterr().out
    assert set(rates["lenet5"]) == {"default", "ceiling", "pipeline_only"}
    # Two rounds of 2 steps of 16 images per row, each round timed at 0.25 s: 128 images/s.
    assert rates["lenet5"]["default"] == rates["lenet5"]["ceiling"] == pytest.approx(2 * 16 / 0.25)
    assert trained == [1] * 10  # per row a 1-step warm-up, then 2 rounds of 2 steps, one step per call
    assert rates["lenet5"]["pipeline_only"] == pytest.approx(200 * 16 / 0.25)  # 200 batches of 16 in 0.25 s
    assert len(pulled) == 1 + 200  # one untimed, then the 200 it counts
    assert "   128.0 images/s" in out and "default / ceiling" in out and "peak resident memory" in out
    # The peak: the faster of a 64x64 matmul (2 x 64^3 FLOPs) and the 3x3 convolution, each timed at 0.25 s;
    # MFU = images/s x FLOPs per image / peak.
    matmul, conv = 2 * 64 ** 3 / 0.25 / 1e9, 2 * 64 * 16 * 16 * 256 * 256 * 9 / 0.25 / 1e9
    peak = max(matmul, conv)
    assert f"float32 {peak:.0f} GFLOP/s (matmul {matmul:.0f}, conv {conv:.0f})" in out
    first = 6 * 28 * 28 * 5 * 5 * 3  # LeNet-5's first conv: no gradient of the image
    flops = 2 * (3 * (first + 16 * 10 * 10 * 5 * 5 * 6 + 400 * 120 + 120 * 84 + 84 * 10) - first)
    assert f"{flops / 1e9:.4f} GFLOP per training image" in out
    assert f"128.0 images/s  MFU {128 * flops / (peak * 1e9):6.1%}" in out


def test_throughput_leaves_out_bfloat16_where_onednn_is_capped_below_it(capsys, monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 (an older CPU mimicked): a bfloat16 matmul there ends the process in oneDNN, so the
    peak and the rows are measured in float32 only and the rows left out are named. No TensorFlow op runs here:
    oneDNN reads the variable at its first kernel, and would keep the cap for this worker's later tests."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    timed, measured = [], []
    monkeypatch.setattr(throughput, "matmul_peak", lambda dtype, size: timed.append(dtype.name) or 100.0)
    monkeypatch.setattr(throughput, "conv_peak", lambda dtype: timed.append(dtype.name) or 200.0)
    monkeypatch.setattr(throughput, "measure_model",
                        lambda name, args, *_: measured.append(list(args.feeds)) or {"default": 1.0})
    throughput.main(["--models", "lenet5", "--feeds", "default", "mixed_precision", "auto", "keras_bn_mixed",
                     "--num_images", "16"])
    out = capsys.readouterr().out
    assert timed == ["float32", "float32"] and measured == [["default", "auto"]]
    assert ("not measured: mixed_precision, keras_bn_mixed (bfloat16, which ONEDNN_MAX_CPU_ISA=AVX2 keeps oneDNN "
            "from; unset it to measure them)") in out
    assert "machine peak, measured (best of a 4096x4096 matmul and a 3x3 256-channel convolution): float32 200 " \
           "GFLOP/s (matmul 100, conv 200)\n" in out
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")  # uncapped: both precisions, every row asked for
    throughput.main(["--models", "lenet5", "--feeds", "default", "mixed_precision", "--num_images", "16"])
    assert timed[2:] == ["float32", "float32", "bfloat16", "bfloat16"] and measured[1] == ["default", "mixed_precision"]


def test_the_pytorch_row_says_how_to_get_pytorch_when_it_is_missing(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    monkeypatch.delitem(sys.modules, "pytorch_peer", raising=False)
    assert throughput.measure_peer(types.SimpleNamespace(), None, None) is None
    assert "pip install torch==2.13.0" in capsys.readouterr().out


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


def test_profile_ops_sums_a_real_trace_by_op_type(cifar_archive, capsys):
    assert profile_ops.main(["--data_dir", str(cifar_archive), "--model", "jin_cnn", "--batch_size", "8",
                             "--steps", "3", "4"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "%" in line]
    shares = [float(line.split("|")[2].strip().rstrip("%")) for line in rows]
    assert any("Conv2D" in line for line in rows)  # the model's convolutions are in the trace
    assert sum(shares) == pytest.approx(100, abs=0.5)  # the listed types plus "everything else" are all of it
    assert "2 steps traced" in out


def test_profile_ops_on_a_run_without_a_trace_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        profile_ops.main(["--trace", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no profiler trace in" in capsys.readouterr().err
