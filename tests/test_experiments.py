"""experiments/: run lists build and parse, the report computes differences, one experiment runs end to end."""

import datetime
import hashlib
import os
import json
import importlib
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest

import cifar10_main
import cifar10_train
import hardware
import provenance
import run_folder
import run_config
from experiments import common, gather, peer, plans, plots, reports, stats

EXPERIMENTS = ["he2016", "he2016_matched", "liang2020", "lu_song", "jin", "xu", "yuan"]


@pytest.mark.parametrize("name", EXPERIMENTS)
@pytest.mark.parametrize("mode", common.MODES)
def test_run_lists_build_and_every_run_is_a_valid_command(name, mode, tmp_path):
    module = importlib.import_module(f"experiments.{name}")
    args = common.experiment_parser(module).parse_args(["--results_dir", str(tmp_path)])
    runs = module.runs(mode, args)
    assert runs and len({run.name for run in runs}) == len(runs)
    for run in runs:
        config = run.located("DATA", str(tmp_path))
        run_config.check(config)  # the combinations argparse cannot see
        # The command the report prints trains exactly this config.
        argv = shlex.split(run_config.command(config))[2:]
        assert cifar10_main.config_from_flags(cifar10_main.build_parser().parse_args(argv)) == config
    assert all(isinstance(note, str) and note for note in module.notes(mode))
    if name not in ("he2016", "he2016_matched") and any(run.config.dataset == "cifar10" for run in runs):
        # What the data is and what the data-or-code runs (He's own reports) found about it.
        assert any(common.CIFAR10_DATA_NOTE in note for note in module.notes(mode))
    if mode != "full":
        assert any(note.startswith("REDUCED") for note in module.notes(mode))  # the reduction is said


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_computes_in_one_precision_that_a_flag_overrides(name, tmp_path):
    module = importlib.import_module(f"experiments.{name}")
    other = {"off": "bfloat16", "bfloat16": "off"}[module.PRECISION]
    args = common.experiment_parser(module).parse_args(["--results_dir", str(tmp_path), "--mixed_precision", other])
    runs = module.runs("full", args)
    own = {run.name for run in runs if run.config.mixed_precision != module.PRECISION}
    assert own == ({"bfloat16"} if name == "he2016_matched" else set())  # the matched runs' precision arm
    overridden = common.with_precision(runs, module, args.mixed_precision)
    assert [run.config.mixed_precision for run in overridden if run.name not in own] == [other] * (len(runs) - len(own))
    assert common.with_precision(runs, module, None) == runs
    assert f"the experiment's, {module.PRECISION}" in " ".join(common.experiment_parser(module).format_help().split())


@pytest.mark.parametrize("name", ["he2016", "he2016_matched", "liang2020", "lu_song", "jin", "xu"])
def test_report_of_no_finished_runs_says_n_a_instead_of_failing(name, tmp_path):
    module = importlib.import_module(f"experiments.{name}")
    args = common.experiment_parser(module).parse_args(["--results_dir", str(tmp_path)])
    metrics = gather.collect(module.runs("quick", args), str(tmp_path))
    assert metrics.empty and "val_accuracy" in metrics.columns
    rows = module.report_rows(metrics, "quick", args)
    assert all(stats.summary(row["ours"])[2] == 0 for row in rows)  # no value: shown as n/a
    assert all("| n/a |" in line for line in reports.report_table(rows).splitlines()[2:])


def test_xu_rows_carry_their_own_models_wall_time(tmp_path):
    from experiments import xu
    metrics = pd.DataFrame({"run": ["resnet18", "resnet18", "resnet50"], "seed": 0, "step": [1, 2, 1],
                            "epoch": [1.0, 2.0, 1.0], "val_accuracy": 0.5, "train_loss": 1.0, "train_accuracy": 0.5,
                            "elapsed_sec": [1800.0, 3600.0, 7200.0]})
    numbers = reports.numbers_frame(xu.report_rows(metrics, "full", None), xu, "full", metrics, xu.runs("full"),
                                    str(tmp_path))
    hours = numbers.set_index("quantity")["wall_hours"]
    assert hours["ResNet18 test accuracy"] == 1 and hours["Table 2: ResNet50 epoch 1 training loss"] == 2
    assert numbers["hardware"].eq("").all() and numbers["date"].eq("").all()  # nothing trained: no machine, no day
    assert numbers["schedule"].eq("100 epochs, 39,063 steps x 128, SGD lr 0.01 constant, crop + flip").all()


def _peer_folder(folder, errors, steps):
    """A finished-or-not peer run folder as benchmarks/pytorch_peer_train.py writes it."""
    folder.mkdir(parents=True)
    reported = list(range(500, 500 * len(errors) + 1, 500))
    pd.DataFrame({"step": reported, "val_error": errors, "val_accuracy": 1 - np.array(errors), "val_loss": 0.5}).to_csv(
        folder / "metrics.csv", index=False)
    pd.DataFrame({"step": reported, "images_per_sec": 500.0, "elapsed_sec": 60.0}).to_csv(folder / "timing.csv",
                                                                                          index=False)
    session = {"started": "2026-12-04T00:00:00+00:00", "from_step": 0, "commit": "abc1234567", "uncommitted": [],
               "torch": "2.13.0", "cpu": "AMD EPYC", "cpu_cores": 2, "data_sha256": "c389", "command": "python -m x"}
    (folder / "peer_config.json").write_text(json.dumps({"settings": {"train_steps": steps}, "sessions": [session]}))


def test_matched_runs_pair_the_tensorflow_arms_and_judge_the_peer_unpaired(tmp_path):
    from experiments import he2016_matched as matched
    _peer_folder(tmp_path / "peer" / "seed0", [0.30, 0.20], 1000)
    _peer_folder(tmp_path / "peer" / "seed1", [0.30, 0.22], 1000)
    _peer_folder(tmp_path / "peer" / "seed2", [0.30], 1000)  # training elsewhere: left out, named unfinished
    peer_rows = peer.metrics(str(tmp_path), matched.PEER, matched.PEER_LABEL)
    assert sorted(peer_rows["seed"].unique()) == [0, 1] and set(peer_rows["run"]) == {"peer"}
    ours = pd.DataFrame({"run": ["ours", "ours", "decay_all", "decay_all"], "seed": [0, 1, 0, 1], "step": 1000,
                         "val_error": [0.25, 0.27, 0.20, 0.23], "val_loss": 0.6})
    rows = {row["quantity"]: row for row in matched.report_rows(pd.concat([ours, peer_rows]), "quick", None)}
    decay = rows["decay on every parameter minus ours as it was: test error"]
    np.testing.assert_allclose(decay["ours"], [-0.05, -0.04])  # seed by seed
    assert "beyond noise" in decay["settings"]
    peer_row = rows["PyTorch peer, same recipe minus ours as it was: test error"]
    np.testing.assert_allclose(peer_row["ours"], [0.21 - 0.26])  # the difference of the means
    assert "unpaired" in peer_row["settings"]
    assert "no result" in rows["PyTorch peer, same recipe minus symmetric stride-2 padding: test error"]["settings"]
    lines = peer.provenance_lines(str(tmp_path), matched.PEER)
    assert len(lines) == 3 and "UNFINISHED" in lines[2] and "commit abc1234567" in lines[0]
    # The batch-norm scales come from each seed's cached summary of its last model (the model is not committed).
    for seed, mean in ((0, 1.0), (1, 0.8)):
        (tmp_path / "decay_all" / f"seed{seed}").mkdir(parents=True)
        (tmp_path / "decay_all" / f"seed{seed}" / matched.BN_SCALES).write_text(
            json.dumps({"mean_abs": mean, "max_abs": 2 * mean}))
    args = common.experiment_parser(matched).parse_args(["--results_dir", str(tmp_path)])
    rows = {row["quantity"]: row for row in matched.report_rows(pd.concat([ours, peer_rows]), "quick", args)}
    scale = rows["decay on every parameter: batch-norm scale, mean absolute gamma over every layer of the last model"]
    assert scale["ours"] == [1.0, 0.8] and scale["settings"].startswith("largest 2.00")
    gamma = "ours as it was: batch-norm scale, mean absolute gamma over every layer of the last model"
    assert rows[gamma]["ours"] == []


def test_a_report_takes_the_peer_runs_a_module_names(tmp_path, capsys):
    """The runner reads the peer's folders of a module naming PEER into its metrics.csv, report and numbers."""
    from experiments import he2016_matched as matched
    _peer_folder(tmp_path / "peer" / "seed0", [0.30, 0.20], 1000)
    assert common.main(matched, ["--report", "--tiny", "--results_dir", str(tmp_path)]) == 0
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics.loc[metrics["run"] == "peer", "val_error"].tolist() == [0.30, 0.20]
    assert "`peer/seed0` (PyTorch peer, wall time" in (tmp_path / "report.md").read_text()
    numbers = pd.read_csv(tmp_path / "numbers.csv")
    assert "2026-12-04" in set(numbers["date"].astype(str))


def test_he2016_splits_the_gap_into_the_data_and_the_code(tmp_path):
    from experiments import he2016
    _peer_folder(tmp_path / "peer" / "seed0", [0.30, 0.10], 1000)
    _peer_folder(tmp_path / "peer" / "seed1", [0.30, 0.12], 1000)
    peer_rows = peer.metrics(str(tmp_path), he2016.PEER, he2016.PEER_LABEL)
    ours = pd.DataFrame({"run": "resnet20", "seed": [0, 1, 2], "step": 1000, "val_error": [0.12, 0.13, 0.14],
                         "val_loss": 0.5})
    rows = {row["quantity"]: row for row in he2016.report_rows(pd.concat([ours, peer_rows]), "full", None)}
    np.testing.assert_allclose(rows["PyTorch peer, same recipe and data: ResNet-20 test error, last model"]["ours"],
                               [0.10, 0.12])
    data = rows["gap the data explains, with what both implementations do unlike He's: peer minus paper, test error"]
    np.testing.assert_allclose(data["ours"], [0.11 - 0.0875])
    code = rows["gap the code explains: ours minus peer, test error"]
    np.testing.assert_allclose(code["ours"], [0.13 - 0.11])
    assert "unpaired" in code["settings"] and "(n = 3 and 2)" in code["settings"]
    # One peer seed: ours' seed sd (0.01 over 3 seeds) stands for both, 2 x 0.01 x sqrt(1/3 + 1) = 0.0231.
    one_peer = peer_rows[peer_rows["seed"] == 0]
    rows = {row["quantity"]: row for row in he2016.report_rows(pd.concat([ours, one_peer]), "full", None)}
    code = rows["gap the code explains: ours minus peer, test error"]
    np.testing.assert_allclose(code["ours"], [0.13 - 0.10])
    assert code["settings"] == ("unpaired: beyond noise, |difference of means| vs 2 s.e. = 0.0231 (n = 3 and 1; the "
                                "sd of the 3 seeds stands for both sides)")
    assert "--weight_decay_scope kernels --conv_padding same" in he2016.peer_command("full", 0, "r")
    # The results table names the machine and day the peer's numbers come from (its peer_config.json), as it does
    # for the engine's runs; they were empty before, shown as "nan".
    numbers = reports.numbers_frame(list(rows.values()), he2016, "full", pd.concat([ours, peer_rows]), [],
                                    str(tmp_path)).set_index("quantity")
    peer_row = numbers.loc["PyTorch peer, same recipe and data: ResNet-20 test error, last model"]
    assert (peer_row["hardware"], peer_row["date"]) == ("AMD EPYC, 2 CPU cores, no GPU", "2026-12-04")


def test_he2016_quarter_trains_every_depth_of_table6_and_judges_the_order_by_depth(tmp_path, monkeypatch):
    from experiments import he2016
    args = common.experiment_parser(he2016).parse_args(["--quarter", "--results_dir", str(tmp_path / "he2016_quarter")])
    assert common.run_mode(he2016, args) == "quarter"
    runs = he2016.runs("quarter", args)
    assert [run.name for run in runs] == ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]
    assert {(run.config.train_steps, run.config.lr_decay_at, run.config.batch_size) for run in runs} == {
        (16000, (0.5, 0.75), 128)}  # the rate divided at 8,000 and 12,000
    assert [run.name for run in he2016.runs("full", args)] == [run.name for run in runs]
    assert {run.config.train_steps for run in he2016.runs("full", args)} == {64000}
    # He's warm-up of ResNet-110 (0.01 for about 400 iterations), and only of it, in either schedule.
    for mode in ("quarter", "full"):
        warmups = [(r.lr_warmup_steps, r.lr_warmup_rate) for r in
                   (run_config.resolve(run.config, 50000) for run in he2016.runs(mode, args))]
        assert warmups == [(0, None)] * 4 + [(400, pytest.approx(0.01))]
    # Two seeds of ResNet-20 and 56, one of 32; 44 and 110 not run.
    metrics = pd.DataFrame({"run": ["resnet20", "resnet20", "resnet32", "resnet56", "resnet56"],
                            "seed": [0, 1, 0, 0, 1], "step": 16000, "val_error": [0.100, 0.104, 0.098, 0.080, 0.082],
                            "train_error": 0.01, "val_loss": 0.4})
    rows = {row["quantity"]: row for row in he2016.report_rows(metrics, "quarter", args)}
    assert all(name.startswith("Quarter schedule: ") for name in rows)  # never taken for the paper's schedule
    assert all(row["comparable"] is False for row in rows.values() if row["paper"] is not None)
    assert not any("PyTorch peer" in name for name in rows)
    resnet56 = rows["Quarter schedule: ResNet-56 (0.85M parameters) test error, last model (Table 6)"]
    np.testing.assert_allclose(resnet56["ours"], [0.080, 0.082])
    assert "16,000 steps x 128 (41 epochs)" in resnet56["schedule"]
    resnet44 = rows["Quarter schedule: ResNet-44 (0.66M parameters) test error, last model (Table 6)"]
    assert "not run here" in resnet44["settings"] and "--quarter --only resnet44" in resnet44["settings"]
    small = rows["Quarter schedule: ResNet-32 minus ResNet-20, test error"]
    np.testing.assert_allclose(small["ours"], [0.098 - 0.102])  # one seed against two: ResNet-20's sd for both
    assert small["paper"] == pytest.approx(0.0751 - 0.0875) and small["settings"] == (
        "unpaired: within noise, |difference of means| vs 2 s.e. = 0.0069 (n = 1 and 2; the sd of the 2 seeds "
        "stands for both sides)")
    large = rows["Quarter schedule: ResNet-56 minus ResNet-32, test error"]
    np.testing.assert_allclose(large["ours"], [0.081 - 0.098])
    assert large["settings"].startswith("unpaired: beyond noise")
    order = rows["Quarter schedule: consecutive depths where the deeper net has the lower test error"]
    assert (order["ours"], order["paper"]) == ([2], 2)
    # What the quarter costs, calibrated on ResNet-20 against the full schedule's runs beside it (results/he2016).
    cost = "Quarter schedule: what it costs ResNet-20, quarter minus He's full schedule, test error"
    assert "no result" in rows[cost]["settings"]  # no full-schedule results beside this folder yet
    (tmp_path / "he2016").mkdir()
    pd.DataFrame({"run": ["resnet20", "resnet20", "peer"], "seed": 0, "step": [32000, 64000, 64000],
                  "val_error": [0.15, 0.09, 0.05]}).to_csv(tmp_path / "he2016" / "metrics.csv", index=False)
    rows = {row["quantity"]: row for row in he2016.report_rows(metrics, "quarter", args)}
    np.testing.assert_allclose(rows[cost]["ours"], [0.102 - 0.09])  # the last model's, ResNet-20's, not the peer's
    assert rows[cost]["settings"].startswith("unpaired: beyond noise")  # the quarter's sd for both
    assert rows[cost]["settings"].endswith(f"the full schedule's runs: {tmp_path / 'he2016' / 'metrics.csv'}")
    # The depth figure marks ResNet-20 on the full schedule beside the quarter's depths.
    legends, save = {}, plots.save_figure

    def save_and_read_legend(figure, path):
        legends[os.path.basename(path)] = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
        return save(figure, path)

    monkeypatch.setattr(plots, "save_figure", save_and_read_legend)
    (tmp_path / "he2016_quarter").mkdir()
    paths = he2016.figures(metrics, str(tmp_path / "he2016_quarter"), "quarter", args)
    assert [os.path.basename(p) for p in paths] == ["fig6_test_error.png", "table6_depth.png"]
    assert legends["table6_depth.png"] == ["He et al. Table 6 (64k steps)", "ours, 16,000 steps (mean ± sd; n = 2/1/2)",
                                           "ours, ResNet-20 at He's 64,000 steps (mean ± sd; n = 1)"]


def test_the_peer_writes_the_engines_columns_and_keeps_a_finished_run(tmp_path, cifar_archive):
    """benchmarks/pytorch_peer_train.py, where its virtual environment exists (PyTorch is never a requirement)."""
    import subprocess
    root = provenance.ROOT
    python = f"{root}/.venv-peer/bin/python"
    if not os.path.exists(python):
        pytest.skip("no .venv-peer with PyTorch (python -m venv .venv-peer && .venv-peer/bin/pip install "
                    "torch==2.13.0 numpy pandas)")

    def train_peer(steps):
        command = [python, "-m", "benchmarks.pytorch_peer_train", "--data_dir", str(cifar_archive), "--train_steps",
                   str(steps), "--report_freq", "1", "--save_freq", "1", "--batch_size", "4", "--log_dir",
                   str(tmp_path / "peer")]
        return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)

    assert train_peer(2).returncode == 0
    first = pd.read_csv(tmp_path / "peer" / "metrics.csv")
    assert tuple(first.columns) == tuple(cifar10_train.CSV_COLUMNS) and list(first["step"]) == [1, 2]
    refused = train_peer(3)  # other settings in the same folder: refused, not mixed
    assert refused.returncode != 0 and "other settings" in refused.stderr
    again = train_peer(2)  # the same command on a finished run trains nothing
    assert again.returncode == 0 and "finished at step 2" in again.stdout
    assert pd.read_csv(tmp_path / "peer" / "metrics.csv").equals(first)


def test_he2016_report_keeps_the_test_metrics_of_a_seed_whose_model_was_not_kept(tmp_path, capsys, monkeypatch):
    from experiments import he2016
    seed = tmp_path / "resnet20" / "seed0"
    seed.mkdir(parents=True)
    (seed / "test_metrics.json").write_text('{"test_error": 0.1259}')  # as committed: no latest.keras, no ckpt/
    training = tmp_path / "resnet20" / "seed1"  # still training (in another process, say), at step 1,000
    training.mkdir()
    (training / run_folder.LATEST_MODEL).write_bytes(b"a model at step 1,000")
    started = tmp_path / "resnet32" / "seed0"  # training, before its first report: no metrics.csv, no model yet
    started.mkdir(parents=True)
    steps = {str(seed): 64000, str(training): 1000}
    monkeypatch.setattr(gather, "progress", lambda folder: gather.Progress(pd.DataFrame(), steps[folder], 64000)
                        if folder in steps else None)
    args = common.experiment_parser(he2016).parse_args(["--results_dir", str(tmp_path)])
    he2016._test_last_models(str(tmp_path), args)
    out = capsys.readouterr().out
    assert (seed / "test_metrics.json").read_text() == '{"test_error": 0.1259}'
    assert f"{seed}: no latest.keras (its model was not kept): its test_metrics.json stays as it was" in out
    # Unfinished seeds are not tested: their folders are not written into.
    assert sorted(path.name for path in training.iterdir()) == [run_folder.LATEST_MODEL]
    assert f"{training}: UNFINISHED, not tested" in out
    assert f"{started}: UNFINISHED, not tested" in out and not any(started.iterdir())
    # The report's row of a depth with no finished seed says which seeds are under way, not "not run here".
    rows = {depth: he2016._depth_row([], "full", depth, str(tmp_path))["settings"] for depth in (20, 32, 44)}
    assert "UNFINISHED (seed1 at step 1,000 of 64,000), no result until it finishes" in rows[20]
    assert "UNFINISHED (seed0 before its first report)" in rows[32] and "not run here" not in rows[32]
    assert "not run here: about 2.3x ResNet-20's hours" in rows[44]


def test_report_table_computes_the_differences_and_keeps_the_papers_precision():
    table = reports.report_table([
        {"quantity": "a", "paper": 0.9, "ours": 0.85, "settings": "quick"},
        {"quantity": "b", "paper": 20, "ours": 25.0, "format": "{:.1f}"},
        {"quantity": "c", "paper": None, "ours": 0.5},
        {"quantity": "d", "paper": 0.1, "ours": float("nan")},
        {"quantity": "e", "paper": 0.947368, "ours": np.array([0.80, 0.84, 0.82]), "test_images": 10000},
        {"quantity": "f", "paper": 0.99665, "ours": [0.99], "comparable": False, "settings": "at epoch 3, not 30"},
        {"quantity": "g", "paper": 0.754, "paper_format": "{:.4f}", "ours": 0.75},
        {"quantity": "h", "paper": 20, "ours": 19.99, "format": "{:.1f}"},
    ]).splitlines()
    assert table[2] == "| a | 0.9 | 0.8500 | -0.0500 | quick |"
    assert table[3] == "| b | 20 | 25.0 | +5.0 |  |"
    assert table[4] == "| c | n/a | 0.5000 | n/a |  |"
    assert table[5] == "| d | 0.1 | n/a | n/a |  |"
    # Several seeds: mean +- sd (n); the paper's six decimals are kept; a test accuracy gets its binomial s.e.
    assert table[6] == "| e | 0.947368 | 0.8200 ± 0.0200 (n = 3) | -0.1274 | binomial s.e. of one run 0.0038 |"
    # Taken at another step than the paper's: no difference is printed.
    assert table[7] == "| f | 0.99665 | 0.9900 |  | at epoch 3, not 30 |"
    assert table[8] == "| g | 0.7540 | 0.7500 | -0.0040 |  |"  # the paper's trailing zero, as it printed 0.7540
    assert table[9] == "| h | 20 | 20.0 | +0.0 |  |"  # a difference that rounds to zero has no minus sign


def test_verdict_says_beyond_or_within_noise():
    assert stats.verdict(np.array([0.05, 0.06, 0.055])).startswith("beyond noise")
    assert stats.verdict(np.array([0.05, -0.04, 0.01])).startswith("within noise")
    assert stats.verdict(np.array([0.05])).startswith("one seed: no spread")
    # One seed of two test accuracies: judged against the test set's sampling noise, 2 * sqrt(0.5 / 10000).
    assert stats.verdict(np.array([0.015]), 10000).startswith("one seed: beyond the test set's sampling noise")
    assert "<= 0.0141" in stats.verdict(np.array([-0.013]), 10000)
    assert stats.verdict(np.array([-0.013]), 10000).startswith("one seed: within")
    assert stats.verdict(np.array([])).startswith("not run here")  # one of the runs has no seed yet


def test_curve_legend_gives_seeds_and_marks_a_run_with_no_result():
    metrics = pd.DataFrame({"run": ["a"] * 4 + ["b"] * 2, "seed": [0, 0, 1, 1, 0, 0], "step": [1, 2, 1, 2, 1, 2],
                            "val_accuracy": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    _, axis = plots.pyplot().subplots()
    for run in ("a", "b", "c"):
        plots.plot_mean(axis, metrics, run, "val_accuracy", label=run.upper())
    assert [line.get_label() for line in axis.get_lines()] == ["A (n = 2)", "B", "C (no result)"]
    assert axis.get_lines()[0].get_ydata().tolist() == pytest.approx([0.2, 0.3])  # the mean over seeds


def test_summary_points_have_a_bar_from_two_seeds_and_none_for_one():
    _, axis = plots.pyplot().subplots()
    summaries = [stats.summary([0.1, 0.3]), stats.summary([0.2]), stats.summary([])]  # n = 2, 1 and 0
    plots.plot_summaries(axis, [20, 32, 44], summaries, fmt="o-")
    (container,) = axis.containers
    line, _, (bars,) = container.lines
    assert line.get_xdata().tolist() == [20, 32] and line.get_ydata().tolist() == pytest.approx([0.2, 0.2])
    spans = [segment[:, 1] for segment in bars.get_segments()]  # each bar's (low, high)
    assert [high - low for low, high in spans] == pytest.approx([2 * np.std([0.1, 0.3], ddof=1), 0.0])


def test_lu_song_table1_comes_from_the_metrics(tmp_path):
    from experiments import lu_song

    rows = []
    curves = {"resnet20_cifar10": ((0.5, 0.8), (0.6, 0.7)), "lenet5_cifar10": ((0.4, 0.45), (0.3, 0.5)),
              "alexnet_cifar10": ((0.2, 0.3), (0.25, 0.35))}
    for run, (train, test) in curves.items():
        for step, (train_accuracy, val_accuracy) in enumerate(zip(train, test), start=1):
            rows.append({"run": run, "seed": 0, "step": step, "train_accuracy": train_accuracy,
                         "val_accuracy": val_accuracy})
    metrics = pd.DataFrame(rows)
    report = {row["quantity"]: row for row in lu_song.report_rows(metrics, "quick", None)}
    resnet = report["Table 1: ResNet (ResNet-20), CIFAR-10, highest test accuracy"]
    assert resnet["paper"] == 0.866 and list(resnet["ours"]) == [0.7]  # the maximum over the reports
    assert "| 0.86600 | 0.7000 |" in reports.report_table([resnet])  # as the paper prints it: 86.600%
    assert list(report["Table 1: LeNet-5, CIFAR-10, highest training accuracy"]["ours"]) == [0.45]
    gap = report["CIFAR-10: ResNet's highest test accuracy minus LeNet-5's"]
    assert gap["paper"] == pytest.approx(0.8660 - 0.6347) and list(gap["ours"]) == pytest.approx([0.7 - 0.5])
    missing = report["Table 1: AlexNet, MNIST, highest test accuracy"]
    assert len(missing["ours"]) == 0  # a run not made is not invented
    assert resnet["schedule"] == "800 steps x 128, SGD lr 0.1, /10 at 50% and 75%, no augmentation"
    assert lu_song._schedule("lenet5", "mnist", "full") == ("30 epochs, 14,063 steps x 128, SGD lr 0.01, /10 at 50% "
                                                            "and 75%, no augmentation")


def test_jin_reads_windows_of_reports_not_single_swinging_ones():
    from experiments import jin

    epochs = np.arange(1, 41, dtype=float) - 0.001  # a report at the end of each epoch, as the engine writes them
    swing = np.where(np.arange(40) % 2, 0.2, -0.2)  # Adam's report-to-report swing
    loss = np.where(epochs < 20, 2.0 - 0.05 * epochs, 1.0 + 0.02 * (epochs - 20)) + swing  # lowest near epoch 20
    loss[32] -= 0.5  # one report's dip at epoch 33, the lowest single value
    accuracy = np.minimum(epochs / 20, 1.0) * 0.6 + swing / 4
    metrics = pd.DataFrame({"run": "k1", "seed": 0, "epoch": epochs, "val_loss": loss, "val_accuracy": accuracy})
    late = accuracy[35:].mean()  # epochs 36-40
    assert jin._late_mean(metrics, "k1", "val_accuracy") == pytest.approx([late])
    # The loss of epochs 31-40 against that of epochs 16-25, each a mean of ten reports: the swing cancels.
    assert jin._loss_rebound(metrics, "k1") == pytest.approx([loss[30:].mean() - loss[15:25].mean()])
    assert jin._loss_rebound(metrics, "k1")[0] > 0.1
    assert loss.argmin() == 32 and jin._epoch_of_min_loss(metrics, "k1") == pytest.approx([20], abs=2)
    first = np.argmax(accuracy >= 0.95 * late)
    assert jin._epoch_converged(metrics, "k1") == pytest.approx([epochs[first]])
    assert np.isnan(jin._loss_rebound(metrics[metrics["epoch"] < 34], "k1")[0])  # windows would overlap: n/a


def test_jin_end_to_end_in_tiny_mode_then_reuses_its_runs(cifar_archive, tmp_path, capsys, monkeypatch):
    from experiments import common, jin

    results = tmp_path / "results"
    # In float32, not the experiment's bfloat16: the flag that replaces it is checked end to end, and a CPU without
    # bfloat16 instructions (where it is emulated, far slower) keeps the suite fast.
    argv = ["--tiny", "--seeds", "2", "--cifar10_dir", str(cifar_archive), "--results_dir", str(results),
            "--mixed_precision", "off"]
    # First the compute plan: each distinct model timed once (here a fixed rate), hours = (training images + a
    # third of the validation images) / images/s; plan.md then opens the report.
    timed = []
    monkeypatch.setattr(hardware, "busy_warning", lambda: "")  # the suite's other workers may keep the CPUs busy
    monkeypatch.setattr(plans, "_model_rate",
                        lambda config, shape: timed.append((config.model, shape)) or (500.0, "off"))
    assert jin.main(argv + ["--plan"]) == 0
    runs = common.seeded(common.with_precision(jin.runs("tiny"), jin, "off"), 2)
    assert len(timed) == len({json.dumps(r.config.model_options, sort_keys=True) for r in runs})
    plan = (results / "plan.md").read_text()
    for run in runs:
        config = run.config
        images = config.train_steps * config.batch_size + config.train_steps // config.report_freq * 10000 / 3
        hours = images / 500 / 3600
        assert (f"| {run.folder} | jin_cnn | {config.train_steps} x {config.batch_size} | off | 500 | {hours:.2f} |"
                in plan)
    planned = pd.read_csv(results / "plan.csv")  # the same plan as data, every run, with or without --only
    assert planned["run"].tolist() == [run.folder for run in runs]
    # A run not made is reported as such, with the hours the plan says it needs on the machine it was measured on.
    measured_on = f"{hardware.describe()}, {datetime.date.today().isoformat()}"
    assert planned["measured_on"].tolist() == [measured_on] * len(runs)
    assert plan.startswith(f"Measured on {measured_on}:")
    assert reports.provenance_lines(runs[:1], str(results))[-1] == (
        f"- `{runs[0].folder}`: not run here: needs about {planned['hours'][0]:.1f} hours on {measured_on} "
        "(plan.md; machines differ); its command is under Runs")
    # A plan.csv from before it named its machine says whose hours they are without naming it.
    planned.drop(columns="measured_on").to_csv(results / "plan.csv", index=False)
    last_line = reports.provenance_lines(runs[:1], str(results))[-1]
    assert "hours on the machine plan.md was measured on (plan.md" in last_line
    planned.to_csv(results / "plan.csv", index=False)
    k0 = planned[planned["run"].str.startswith("k0/")]
    assert f"Planned here (--only k0): {k0['hours'].sum():.1f} hours for 2 run(s)" in plans.plan_text(planned, ["k0"])
    assert jin.main(argv) == 0
    report_text = (results / "report.md").read_text()
    assert report_text.index("## Compute plan") < report_text.index("## Numbers")
    assert ("Precision: off for every run (`--mixed_precision off`; the experiment's own is bfloat16). Every"
            in report_text)
    metrics = pd.read_csv(results / "metrics.csv")
    assert sorted(metrics["run"].unique()) == ["k0", "k1", "k2", "k4"]
    assert metrics.groupby(["run", "seed"])["step"].apply(list).tolist() == [[2, 4]] * 8
    assert sorted(p.name for p in (results / "k2").iterdir()) == ["seed0", "seed1"]
    assert run_folder.saved_config(str(results / "k2" / "seed1"))[0].seed == 1
    for figure in ("fig2_loss.png", "fig3_accuracy.png", "accuracy_by_k.png"):
        assert (results / figure).stat().st_size > 10_000
    report = (results / "report.md").read_text()
    finals = metrics[metrics["run"] == "k2"].groupby("seed")["val_accuracy"].last()
    assert f"| final test accuracy, k = 2 | n/a | {finals.mean():.4f} ± {finals.std():.4f} (n = 2) |" in report
    assert "REDUCED (tiny)" in report and "python -m experiments.jin --tiny" in report
    late_by_run = metrics.groupby(["run", "seed"])["val_accuracy"].mean()  # a tiny run is all "last 5 epochs"
    gains = late_by_run["k4"] - late_by_run["k0"]  # seed by seed
    assert f"| late test accuracy, k = 4 minus the plain CNN (seed by seed) | n/a | {gains.mean():.4f} ± " \
           f"{gains.std():.4f} (n = 2) |" in report
    assert "(the rebound), k = 1 | n/a | n/a | n/a |" in report  # too short for the windows around epoch 20
    epoch_rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| epoch ")]
    assert len(epoch_rows) == 8 and all(cells[1] == "20" and cells[3] == "" for cells in epoch_rows)  # not epoch 20
    numbers = pd.read_csv(results / "numbers.csv")  # the report's rows as data, for the README's table
    k2 = numbers[numbers["quantity"] == "final test accuracy, k = 2"].iloc[0]
    assert (k2["ours_mean"], k2["n"], k2["mode"]) == (pytest.approx(finals.mean()), 2, "tiny")
    # Its wall time is k = 2's two seeds', not the whole experiment's.
    hours = metrics.groupby(["run", "seed"])["elapsed_sec"].max() / 3600
    assert k2["wall_hours"] == pytest.approx(hours["k2"].sum(), rel=1e-4) and k2["wall_hours"] < hours.sum()
    assert k2["schedule"] == "4 steps x 5, Adam lr 0.001 constant, flips"
    # Its machine and day are those of the sessions that trained k = 2 (config.json), not the report writer's.
    config_path = results / "k2" / "seed1" / run_folder.CONFIG
    saved = json.loads(config_path.read_text())
    first = saved["sessions"][0]
    machine = f"{first['cpu']}, {first['cpu_cores']} CPU cores, no GPU"
    assert (k2["hardware"], k2["date"]) == (machine, first["started"][:10])
    later = {**first, "cpu": "Other CPU (AVX2)", "cpu_cores": 8, "started": "2099-01-02T03:04:05+00:00",
             "mixed_precision": "bfloat16"}
    old = {"from_step": 4, "commit": "0" * 40}  # a session recorded before config.json named the machine
    config_path.write_text(json.dumps({**saved, "sessions": [first, later, first, old]}))
    sessions_by_run = gather.finished_sessions(runs, str(results))
    assert gather.trained_on(sessions_by_run, ["k2"]) == (
        f"{machine} + Other CPU (AVX2), 8 CPU cores, no GPU + machine not recorded", "2099-01-02")
    assert gather.trained_on(sessions_by_run, ["k1"]) == (machine, first["started"][:10])
    # One precision per experiment: a session in another is named, with where it began.
    assert reports.precision_line(runs, str(results), jin.PRECISION) == (
        "Precision: off for every run (`--mixed_precision off`; the experiment's own is bfloat16). Sessions of "
        "finished runs in another precision: `k2/seed1` (bfloat16 from step 0). Sessions from before the suite "
        "recorded each session's precision: `k2/seed1` (from steps 4; its config.json: off).")
    config_path.write_text(json.dumps(saved))
    assert reports.precision_line(runs, str(results), "off") == (
        "Precision: off for every run (the experiment's; `--mixed_precision` overrides it). Every session of every "
        "finished run computed in it.")
    # Provenance: the commit of this code, the CPU, each session's precision, the sha256 of the data.
    commit, _ = provenance.git_state()
    assert f"commit {commit[:10]}" in report and provenance.cpu_description() in report
    jin_precision = run_folder.saved_config(str(results / "k2" / "seed1"))[0].mixed_precision
    assert f"no GPU, precision {jin_precision}, TF_ENABLE_ONEDNN_OPTS 1, Python" in report
    assert hashlib.sha256((cifar_archive / "cifar-10-python.tar.gz").read_bytes()).hexdigest() in report
    capsys.readouterr()
    # Again: every run is found finished and reused, nothing retrains and no file of a run changes, also where
    # only the committed files are left (config.json, metrics.csv, timing.csv: no checkpoint, no model).
    for leftover in ("ckpt", "train", "validation", run_folder.LATEST_MODEL, run_folder.BEST_MODEL):
        path = results / "k1" / "seed0" / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    before = {path: path.read_bytes() for path in (results / "k1").rglob("*") if path.is_file()}
    assert jin.main(argv) == 0
    assert capsys.readouterr().out.count("(already finished)") == 8
    assert {path: path.read_bytes() for path in (results / "k1").rglob("*") if path.is_file()} == before
    # --only with --force retrains just that run; a command with fewer seeds (one seed of a long run) retrains only
    # its seeds, and keeps every seed trained so far in the report.
    one_seed = [arg if arg != "2" else "1" for arg in argv]
    assert jin.main(one_seed + ["--only", "k0", "--force"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== jin: run") == 1 and "run k0/seed0" in out and "(already finished)" not in out
    numbers = pd.read_csv(results / "numbers.csv")
    assert numbers[numbers["quantity"] == "final test accuracy, k = 2"].iloc[0]["n"] == 2
    # --report trains nothing, not even a seed the command names and nobody has trained.
    assert jin.main([arg if arg != "2" else "3" for arg in argv] + ["--report"]) == 0
    out = capsys.readouterr().out
    assert "Resuming" not in out and "Training" not in out and not (results / "k0" / "seed2").exists()
    assert "- `k0/seed2`: not run here" in (results / "report.md").read_text()
    # A finished run whose folder is gone (never committed, deleted) is not silently dropped from the report.
    report_before = (results / "report.md").read_text()
    shutil.move(results / "k2" / "seed1", tmp_path / "k2_seed1")
    assert jin.main(argv + ["--report"]) == 2
    assert "holds finished runs whose run folders are gone (k2/seed1)" in capsys.readouterr().err
    assert (results / "report.md").read_text() == report_before and "k2,1," in (results / "metrics.csv").read_text()
    shutil.move(tmp_path / "k2_seed1", results / "k2" / "seed1")
    # An unfinished seed (interrupted, or still training in another process) is in no number, and is named.
    shutil.copytree(results / "k4" / "seed1", results / "k4" / "seed2")
    partial = results / "k4" / "seed2" / "metrics.csv"
    pd.read_csv(partial).iloc[:1].to_csv(partial, index=False)
    every = common.with_trained_seeds(runs, str(results))
    assert "k4/seed2" in [run.folder for run in every]
    assert (gather.collect(every, str(results))[["run", "seed"]].drop_duplicates().shape[0] == 8)
    assert ("- `k4/seed2`: UNFINISHED at step 2 of 4, left out of every number and figure; the same command "
            "continues it") in reports.provenance_lines(every, str(results))


def test_unknown_only_run_is_a_clear_error(capsys, tmp_path):
    from experiments import jin

    assert jin.main(["--tiny", "--only", "k9", "--results_dir", str(tmp_path)]) == 2
    assert "--only k9: no such run; runs are: k0, k1, k2, k4" in capsys.readouterr().err
    # --list with --only lists the runs that command would train, each as its command.
    assert jin.main(["--tiny", "--only", "k2", "--seeds", "2", "--list", "--results_dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in listed] == ["k2/seed0", "k2/seed1"]


def test_an_uncreatable_results_dir_or_a_damaged_file_in_it_is_one_line(capsys, tmp_path):
    from experiments import jin

    (tmp_path / "a_file").write_text("")
    for flags in (["--report"], ["--plan"]):
        assert jin.main(["--tiny", *flags, "--results_dir", str(tmp_path / "a_file" / "results")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "jin: error: cannot write to --results_dir" in err, err
    results = tmp_path / "results"
    results.mkdir()
    (results / "metrics.csv").write_text('run,seed,step\nk0,0,"1\n')  # an unclosed quote: a bad merge
    (results / "plan.csv").write_text("run,hours\nk0/seed0,soon\n")
    before = (results / "metrics.csv").read_bytes()
    assert jin.main(["--tiny", "--report", "--results_dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{results / 'metrics.csv'} is damaged" in err, err
    assert (results / "metrics.csv").read_bytes() == before
    (results / "metrics.csv").unlink()
    assert jin.main(["--tiny", "--report", "--results_dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plan.csv is damaged (row 1 has no number in hours: 'soon')" in err, err
    assert "again with --plan" in err


def test_liang_run_follows_his_text_and_wenxinxus_defaults():
    """Issue 15's values: batch 128, report every 391 and at step 0, 0.1 /10 at 40k and 60k of 80k, weight decay
    2e-4 (gradient 2e-4 * w), ImageDataGenerator with per-image standardisation, the full test set validating."""
    from experiments import liang2020

    args = common.experiment_parser(liang2020).parse_args(["--main_steps", "9775"])
    runs = liang2020.runs("full", args)
    main = runs[0].config
    # Stopped at 9775, the main run is not the 80k sweep's depth-20 point: that is a run of its own.
    assert [run.name for run in runs if run.group == "depth"] == [f"depth{d}" for d in liang2020.DEPTHS]
    assert [run.name for run in liang2020.runs("full") if run.group == "depth"][0] == "depth32"
    resolved = run_config.resolve(main, 50000)
    assert (resolved.batch_size, resolved.report_freq, resolved.report_at_start) == (128, 391, True)
    assert (resolved.train_steps, resolved.lr_schedule_steps, resolved.lr_decay_at) == (9775, 80000, (0.5, 0.75))
    optimizer = (resolved.optimizer, resolved.learning_rate, resolved.momentum, resolved.weight_decay)
    assert optimizer == ("sgd", 0.1, 0.9, 2e-4)
    # wenxinxu's convolutions pad as TensorFlow's "SAME" does: the resolved run records it
    assert resolved.model_options == {"preactivation": True, "shortcut": "A_avgpool", "conv_padding": "same"}
    assert resolved.augment == "liang" and resolved.validation_split == 0.0
    import augment
    import cifar10_train

    assert augment.normalization("liang", np.zeros((2, 32, 32, 3), np.uint8)) == {"per_image": True}
    schedule = cifar10_train.learning_rate_schedule(resolved)
    # The rate of the update with 0-based index i; wenxinxu decays after the update of index 40000, as Keras does.
    assert ([float(schedule(i)) for i in (9774, 40000, 40001, 60000, 60001)]
            == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001]))
    assert 9775 % resolved.report_freq == 0  # step 9775 is a report


def test_batch_statistics_evaluation_normalises_each_batch_by_its_own_moments():
    """wenxinxu's validation, which Liang's numbers come from: batch norm on each test batch's own statistics."""
    import keras

    import cifar10_test
    import resnet

    inputs = keras.Input((6, 6, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    normed = resnet.FusedBatchNormalization(epsilon=1e-5, name="bn")(conv)
    # Max pooling: an average of a batch of one normalised over itself would be all zeros, every class tied.
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalMaxPooling2D()(normed)))
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(4, 5.0, np.float32))  # moving averages far from any batch's statistics
    images = np.random.RandomState(0).randint(0, 256, (7, 6, 6, 3)).astype(np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    norm = {"mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0]}
    result = cifar10_test.evaluate_with_batch_statistics(model, images, labels, "none", norm, batch_size=3)

    # By hand: batches of 3, 3 and 1; each conv output normalised by its own batch's mean and biased variance.
    features = keras.Model(inputs, conv)(images / 255.0).numpy()
    logits = []
    for start in (0, 3, 6):
        x = features[start:start + 3]
        x = (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-5) * bn.gamma.numpy() + bn.beta.numpy()
        logits.append(model.layers[-1](x.max(axis=(1, 2))).numpy())
    logits = np.concatenate(logits).astype(np.float64)
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    assert result["loss"] == pytest.approx(-log_p[np.arange(7), labels].mean(), rel=1e-4)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    assert bn.moving_mean.numpy() == pytest.approx(np.full(4, 5.0))  # the model's own averages are untouched
    with_dropout = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dropout(0.5)(keras.layers.Flatten()(normed))))
    with pytest.raises(ValueError, match="has dropout"):
        cifar10_test.evaluate_with_batch_statistics(with_dropout, images, labels, "none", norm)


def test_liangs_step_9775_is_revalidated_his_way_once_and_cached(cifar_archive, tmp_path, monkeypatch):
    import cifar10_test
    from experiments import liang2020

    run_dir = tmp_path / "resnet20_liang" / "seed0"
    assert cifar10_main.main(["--data_dir", str(cifar_archive), "--train_steps", "4", "--report_freq", "2",
                              "--batch_size", "5", "--mixed_precision", "off", "--log_dir", str(run_dir)]) == 0
    first = liang2020.his_validation(str(run_dir), str(cifar_archive))
    assert (first["step"], first["num_images"], first["batch_size"]) == (4, 7, 250)
    assert json.loads((run_dir / liang2020.HIS_VALIDATION).read_text()) == first
    monkeypatch.setattr(cifar10_test, "evaluate_with_batch_statistics", lambda *args, **kwargs: 1 / 0)
    assert liang2020.his_validation(str(run_dir), str(cifar_archive)) == first  # cached: not evaluated again
    # The report uses it only where the run's last model is the step-9775 one.
    metrics = pd.read_csv(run_dir / run_folder.METRICS).assign(run="resnet20_liang", seed=0)
    args = common.experiment_parser(liang2020).parse_args(
        ["--results_dir", str(tmp_path), "--cifar10_dir", str(cifar_archive)])
    rows = liang2020._his_validation_rows(metrics, args)
    assert [row["ours"] for row in rows] == [[], []] and "only with --main_steps 9775" in rows[0]["settings"]
    # As if the run had stopped at step 9775: its metrics and its cached result say so (still not evaluated again).
    csv = pd.read_csv(run_dir / run_folder.METRICS)
    csv.loc[csv.index[-1], "step"] = liang2020.PAPER_STEP
    csv.to_csv(run_dir / run_folder.METRICS, index=False)
    (run_dir / liang2020.HIS_VALIDATION).write_text(json.dumps(dict(first, step=liang2020.PAPER_STEP)))
    rows = liang2020._his_validation_rows(csv.assign(run="resnet20_liang", seed=0), args)
    assert [row["ours"] for row in rows] == [[first["error"]], [first["loss"]]]


def test_the_readme_results_table_is_built_from_full_mode_numbers(tmp_path):
    from experiments import results_table

    def numbers(paper, mode, rows):
        folder = tmp_path / "results" / paper
        folder.mkdir(parents=True)
        pd.DataFrame([dict(paper=paper, mode=mode, comparable=True, hardware="AMD EPYC, 2 CPU cores, no GPU",
                           wall_hours=4.25, date="2026-11-24", **row) for row in rows]).to_csv(folder / "numbers.csv")

    numbers("He", "full", [
        dict(quantity="ResNet-20 test error", paper_value=0.0875, ours_mean=0.0912, ours_sd=0.0021, n=3,
             test_images=10000, schedule="64,000 steps x 128", settings="JPEG CIFAR-10"),
        dict(quantity="ResNet-110 test error", paper_value=0.0643, ours_mean=float("nan"), ours_sd=float("nan"), n=0,
             test_images=None, settings="not run here: `python cifar10_main.py --model resnet110`"),
        dict(quantity="epoch of the lowest loss", paper_value=20, ours_mean=39.9872, ours_sd=0.51, n=2,
             test_images=None, format="{:.1f}"),
        dict(quantity="Table 2 loss", paper_value=0.754, paper_format="{:.4f}", ours_mean=0.8, ours_sd=None, n=1,
             test_images=None)])
    numbers("Quick", "quick", [dict(quantity="x", paper_value=1.0, ours_mean=0.5, ours_sd=0.1, n=2, test_images=None,
                                    settings="")])
    numbers("Quarter", "quarter", [dict(quantity="Quarter schedule: ResNet-56 test error", paper_value=0.0697,
                                        ours_mean=0.09, ours_sd=0.002, n=2, test_images=10000,
                                        schedule="16,000 steps x 128", settings="a quarter of He's 64k steps")])
    text = results_table.table(str(tmp_path / "results"))
    lines = text.splitlines()
    assert "Quick" not in text  # quick-mode numbers are no reproduction
    # He's depth trend at a quarter of his schedule is a result, named as such with its schedule.
    assert "| Quarter | Quarter schedule: ResNet-56 test error | 0.0697 | 0.0900 ± 0.0020 (2)" in lines.pop()
    assert len(lines) == 6
    assert lines[2] == ("| He | ResNet-20 test error | 0.0875 | 0.0912 ± 0.0021 (3), binomial s.e. 0.0029 | "
                        "64,000 steps x 128 | JPEG CIFAR-10 | AMD EPYC, 2 CPU cores, no GPU | 4.2 h, 2026-11-24 |")
    # A row without a schedule (numbers.csv written before the column existed) leaves the cell empty.
    assert lines[3].startswith("| He | ResNet-110 test error | 0.0643 | not run here |  | not run here: `python")
    assert "| 20 | 40.0 ± 0.5 (2) |" in lines[4]  # the report's own format; 4 decimals where none is given
    assert "| Table 2 loss | 0.7540 | 0.8000 (1) |" in lines[5]  # and the paper's precision
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n{results_table.SUMMARY_BEGIN}\nold\n{results_table.SUMMARY_END}\nafter\n")
    results_page = tmp_path / "RESULTS.md"
    results_page.write_text(f"# all\n{results_table.BEGIN}\nold\n{results_table.END}\n")
    assert results_table.main(["--results_root", str(tmp_path / "results"), "--update", str(readme),
                               str(results_page)]) == 0
    assert results_page.read_text() == f"# all\n{results_table.BEGIN}\n{text}\n{results_table.END}\n"
    short = results_table.summary(str(tmp_path / "results"))
    expected = f"# title\n{results_table.SUMMARY_BEGIN}\n{short}\n{results_table.SUMMARY_END}\nafter\n"
    assert readme.read_text() == expected
    unmarked = tmp_path / "notes.md"
    unmarked.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="has no"):
        results_table.update(str(unmarked), [(results_table.BEGIN, results_table.END, text)])
    assert unmarked.read_text() == "# no markers\n"


def test_every_headline_of_the_readme_summary_is_one_row_of_the_committed_results():
    """The README's first screen shows HEADLINES: each must select exactly one full-schedule row, or the summary
    would silently lose (or double) a paper's number."""
    from experiments import results_table

    rows = pd.concat(results_table._frames(str(provenance.ROOT) + "/experiments/results"), ignore_index=True)
    for paper, pattern in results_table.HEADLINES:
        assert len(results_table.headline_rows(rows, paper, pattern)) == 1, (paper, pattern)
    summary = results_table.summary(str(provenance.ROOT) + "/experiments/results")
    assert len(summary.splitlines()) == 2 + len(results_table.HEADLINES)
    readme = (provenance.ROOT + "/README.md")
    with open(readme) as handle:
        assert summary in handle.read()  # the README shows the committed numbers (rebuild with --update)


def test_the_plateau_rule_compares_the_last_fifth_of_a_curve_with_what_came_before():
    steps = np.arange(1, 11) * 100
    flat = [0.5, 0.7, 0.8, 0.85, 0.86, 0.87, 0.87, 0.87, 0.871, 0.869]  # last 20%: steps 900-1000
    rising = [0.5, 0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.78, 0.80, 0.83]
    metrics = pd.DataFrame({"run": ["a"] * 10 + ["b"] * 10, "seed": 0, "step": np.tile(steps, 2),
                            "val_accuracy": flat + rising})
    np.testing.assert_allclose(stats.late_gain(metrics, "a", "val_accuracy"), [0.871 - 0.87])
    np.testing.assert_allclose(stats.late_gain(metrics, "b", "val_accuracy"), [0.83 - 0.78])
    assert stats.plateau_verdict([0.001], 10000).startswith("plateaued: gain below 0.0050")
    assert stats.plateau_verdict([0.05], 10000).startswith("still rising")


def test_a_runs_own_results_changing_do_not_make_the_code_dirty(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "experiments" / "results" / "he2016").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "experiments" / "results" / "he2016" / "metrics.csv").write_text("step\n1000\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    (tmp_path / "experiments" / "results" / "he2016" / "metrics.csv").write_text("step\n1000\n2000\n")
    assert provenance.git_state(str(tmp_path))[1] == ()  # a long run's committed results grew: still clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_state(str(tmp_path))[1] == ("code.py",)


def test_provenance_names_the_uncommitted_files(monkeypatch):
    """A session and a report header say which tracked files differed from the commit, not only that some did."""
    changed = ("README.md", "resnet.py", "cifar10_train.py", "augment.py", "summaries.py")
    monkeypatch.setattr(provenance, "loaded_code_state", lambda: ("ab" * 20, changed))
    session = provenance.session(None, from_step=0)
    assert session["dirty"] is True and session["uncommitted"] == list(changed)
    assert reports.machine().endswith("code at commit ababababab with uncommitted changes to README.md, resnet.py, "
                                      "cifar10_train.py, augment.py and 1 more")
    monkeypatch.setattr(provenance, "loaded_code_state", lambda: ("ab" * 20, ()))
    assert provenance.session(None, from_step=0)["uncommitted"] == [] and reports.machine().endswith("ababababab")


def test_a_long_process_credits_the_code_it_loaded_not_later_commits(monkeypatch):
    states = iter([("aaaa", ()), ("bbbb", ("code.py",))])
    monkeypatch.setattr(provenance, "git_state", lambda root=provenance.ROOT: next(states))
    provenance.loaded_code_state.cache_clear()
    try:
        assert provenance.loaded_code_state() == ("aaaa", ())
        assert provenance.loaded_code_state() == ("aaaa", ())  # a commit made mid-run is not this process's code
    finally:
        provenance.loaded_code_state.cache_clear()


def test_the_cpu_is_named_with_its_widest_vector_extension(tmp_path):
    # Two "AMD EPYC" machines here train 2-4x apart (AVX-512 against AVX2): a wall time needs the difference.
    def described(flags):
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\n")
        return provenance.cpu_description(str(tmp_path / "cpuinfo"))

    assert described("fpu sse4_2 avx avx2 avx512f avx512bw") == "AMD EPYC (AVX-512)"
    assert described("fpu sse4_2 avx avx2 fma") == "AMD EPYC (AVX2)"
    assert described("fpu sse4_2") == "AMD EPYC"


def test_the_plan_times_each_model_on_the_input_its_run_trains_on():
    # The ImageNet ResNets train on CIFAR-10 at 32x32 (Xu): timing them at their nominal 224x224 made a 20-minute
    # quick run look like 7 hours. MNIST goes to LeNet-5 as 28x28x1 and to ResNet-20 padded to 32x32x3.
    from experiments import lu_song, xu

    shapes = {}

    def measure(config, shape):
        shapes[(config.model, config.dataset)] = shape
        return 100.0, "off"

    plans.compute_plan(xu.runs("tiny") + lu_song.runs("tiny"), measure=measure)
    assert shapes[("resnet18", "cifar10")] == shapes[("resnet50", "cifar10")] == (32, 32, 3)
    assert shapes[("lenet5", "mnist")] == (28, 28, 1) and shapes[("resnet20", "mnist")] == (32, 32, 3)
    assert shapes[("lenet5", "cifar10")] == (32, 32, 3)


def test_a_plan_measured_on_a_busy_machine_says_its_rates_are_low(monkeypatch, capsys):
    """Timing models beside a training run gave a tenth of the idle rates: the plan must say so, not plan with them."""
    from experiments import jin

    times = iter([(1000, 5000), (1000 + 180, 5000 + 200)])  # (busy, total) jiffies: others used 90% while it slept
    monkeypatch.setattr(hardware, "_cpu_times", lambda: next(times))
    plan = plans.compute_plan(jin.runs("tiny")[:1], measure=lambda config, shape: (100.0, "off"))
    assert plan["measured_on"][0].endswith(f"(BUSY: other processes used 90% of the {os.cpu_count()} CPUs when this "
                                           "was measured, so the rates are low; measure again on an idle machine)")
    assert plans.plan_text(plan).startswith(f"Measured on {plan['measured_on'][0]}:")
    assert capsys.readouterr().err.startswith("warning: BUSY: other processes used 90%")
    idle = iter([(1000, 5000), (1000 + 10, 5000 + 200)])  # 5%: idle enough
    monkeypatch.setattr(hardware, "_cpu_times", lambda: next(idle))
    assert "BUSY" not in plans.compute_plan(jin.runs("tiny")[:1], measure=lambda config, shape: (100.0, "off"))[
        "measured_on"][0]
