"""Shipped weights: a finished run becomes pretrained/<name>/ with a manifest that an evaluation can check."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import cifar10_main
import provenance
from conftest import ROOT, require_shared, tiny_cifar, write_python_archive
from experiments import ship_weights

SHIPPED = sorted((ROOT / "pretrained").glob("*/manifest.json"))
SHARED_FOLDER = {"cifar10": "cifar10", "mnist": "mnist"}  # a manifest's dataset -> its folder in ../shared/datasets


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """One tiny finished run for the module (each test gets its own copy of it)."""
    root = tmp_path_factory.mktemp("pretrained")
    archive = write_python_archive(root / "data" / "cifar-10-python.tar.gz", tiny_cifar())
    log_dir = root / "run"
    assert cifar10_main.main(["--data_dir", str(archive.parent), "--model", "jin_cnn", "--train_steps", "4",
                              "--report_freq", "2", "--batch_size", "5", "--mixed_precision", "off",
                              "--log_dir", str(log_dir)]) == 0
    return log_dir


@pytest.fixture
def finished_run(trained_once, tmp_path):
    """A copy the test may change: shipping, damaging or editing it leaves the module's run as it was."""
    return Path(shutil.copytree(trained_once, tmp_path / "run"))


def test_a_shipped_run_scores_its_manifest_and_a_changed_file_does_not(finished_run, cifar_archive, tmp_path, capsys,
                                                                       monkeypatch):
    root = tmp_path / "pretrained"
    assert ship_weights.main([str(finished_run), "tiny", "--data_dir", str(cifar_archive), "--root", str(root)]) == 0
    manifest = json.loads((root / "tiny" / "manifest.json").read_text())
    assert manifest["steps"] == 4 and manifest["model"] == "jin_cnn" and manifest["test"]["num_images"] == 7
    assert manifest["weights_sha256"] == provenance.data_sha256(str(root / "tiny" / "tiny.keras"))
    # The same figures as --mode test on the shipped file (its config.json sits beside it).
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(root / "tiny" / "tiny.keras"),
                              "--data_dir", str(cifar_archive), "--output", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "test_metrics.json").read_text())["accuracy"] == \
        pytest.approx(manifest["test"]["accuracy"])
    assert ship_weights.main(["--check", str(root / "tiny"), "--data_dir", str(cifar_archive)]) == 0
    # The shipped folder works wherever a run folder does: test and predict by its folder. Without --output, the
    # test's files go to runs/<name>_test: the shipped (committed) folder is left as it was.
    shipped = sorted(path.name for path in (root / "tiny").iterdir())
    monkeypatch.chdir(tmp_path)
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(root / "tiny"),
                              "--data_dir", str(cifar_archive)]) == 0
    assert json.loads((tmp_path / "runs" / "tiny_test" / "test_metrics.json").read_text())["accuracy"] == \
        pytest.approx(manifest["test"]["accuracy"])
    assert sorted(path.name for path in (root / "tiny").iterdir()) == shipped
    image = tmp_path / "one.png"
    import cv2
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    assert cifar10_main.main(["--mode", "predict", "--checkpoint", str(root / "tiny"), "--images", str(image)]) == 0
    assert "one.png" in capsys.readouterr().out
    # A manifest that claims one more correct image, or weights that changed, no longer check.
    manifest["test"]["correct"] += 1
    (root / "tiny" / "manifest.json").write_text(json.dumps(manifest))
    assert ship_weights.check(str(root / "tiny"), str(cifar_archive)) == [
        f"{manifest['test']['correct'] - 1} of 7 test images right, "
        f"the manifest says {manifest['test']['correct']} of 7"]
    (root / "tiny" / "tiny.keras").write_bytes((root / "tiny" / "tiny.keras").read_bytes() + b"\0")
    assert any("sha256 differs" in p for p in ship_weights.check(str(root / "tiny"), str(cifar_archive)))


def test_an_unfinished_run_is_not_shipped(finished_run, cifar_archive, tmp_path, capsys):
    config = json.loads((finished_run / "config.json").read_text())
    config["run"]["train_steps"] = 8  # as if it had stopped at step 4 of 8
    (finished_run / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as exit_info:
        ship_weights.main([str(finished_run), "tiny", "--root", str(tmp_path / "pretrained")])
    assert exit_info.value.code == 2
    assert "stopped at step 4 of 8: only a finished run is shipped" in capsys.readouterr().err
    assert not (tmp_path / "pretrained").exists()


def test_the_repository_ships_he_resnet20():
    assert "resnet20_he2016" in [manifest.parent.name for manifest in SHIPPED]


@pytest.mark.parametrize("manifest", SHIPPED, ids=lambda path: path.parent.name)
def test_shipped_weights_score_their_manifest_on_the_shared_data(manifest):
    """The committed weights, evaluated on the real test set, get every image the manifest says right."""
    dataset = json.loads(manifest.read_text())["dataset"]
    data_dir = require_shared(SHARED_FOLDER[dataset])
    assert ship_weights.check(str(manifest.parent), str(data_dir)) == []


def test_a_damaged_shipping_manifest_is_one_line(finished_run, tmp_path, capsys):
    (finished_run / "latest.keras").rename(finished_run / "tiny.keras")
    (finished_run / "manifest.json").write_text('{"name": "tin')  # cut short
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(finished_run)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "manifest.json is damaged" in error[0]
