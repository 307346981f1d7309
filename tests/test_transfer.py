"""Transfer learning (Yuan's setup), --mode predict, and test-mode outputs for image folders."""

import warnings

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

import cifar10_main
import resnet
import run_folder
from conftest import require_shared


@pytest.fixture(scope="module")
def flowers(tmp_path_factory):
    """Three classes of 8 small photos each, in PNG and JPEG, sized unevenly like real photos."""
    rng = np.random.RandomState(0)
    root = tmp_path_factory.mktemp("transfer") / "flowers"
    for label, name in enumerate(("daisy", "roses", "tulips")):
        (root / name).mkdir(parents=True)
        for index in range(8):
            image = np.clip(rng.normal(60 + 70 * label, 30, (30 + index, 36, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"{name}_{index}.{'png' if index % 2 else 'jpg'}"), image)
    return root


def _train(log_dir, folder, *extra):
    argv = ["--dataset", "folder", "--data_dir", str(folder), "--batch_size", "4", "--train_steps", "2",
            "--report_freq", "2", "--log_dir", str(log_dir), *extra]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cifar10_main.main(argv)


def test_frozen_backbone_trains_only_the_new_head(flowers):
    model = resnet.build_model("resnet50_imagenet", (32, 32, 3), 3, weights="none", freeze_backbone=True)
    assert model.output_shape == (None, 3)
    assert [w.path for w in model.trainable_weights] == ["logits/kernel", "logits/bias"]
    assert resnet.trainable_params(model) == 2048 * 3 + 3
    # Batch norm runs in inference mode: a training-mode call leaves the moving statistics alone.
    backbone = model.get_layer(resnet.BACKBONE)
    moving = [w.numpy().copy() for w in backbone.non_trainable_weights if "moving" in w.path]
    model(np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32), training=True)
    after = [w.numpy() for w in backbone.non_trainable_weights if "moving" in w.path]
    assert all(np.array_equal(a, b) for a, b in zip(moving, after))


def test_weights_from_a_local_file(tmp_path):
    donor = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    path = tmp_path / "resnet50_notop.weights.h5"
    donor.save_weights(path)
    model = resnet.build_model("resnet50_imagenet", (32, 32, 3), 5, weights=str(path))
    for ours, theirs in zip(model.get_layer(resnet.BACKBONE).weights, donor.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    wrong = tmp_path / "other.weights.h5"
    keras.applications.ResNet50V2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(wrong)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(resnet.WeightsError, match="does not fit ResNet50"):
            resnet.build_model("resnet50_imagenet", (32, 32, 3), 5, weights=str(wrong))
    assert not caught  # the one-line error, not Keras' warning per skipped layer group before it


def test_imagenet_weights_offline_is_one_clear_line(capsys, flowers, tmp_path, monkeypatch):
    import keras.src.applications.resnet as keras_resnet
    import keras.src.backend.config as keras_config

    monkeypatch.setattr(keras_resnet, "BASE_WEIGHTS_PATH", "file:///nonexistent/")  # as offline as it gets
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras_home"))  # and no cached copy
    code = _train(tmp_path / "run", flowers, "--model", "resnet152_imagenet", "--image_size", "32", "32")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "cannot download the ImageNet weights of ResNet152" in err
    assert "--weights /path/to/resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5" in err
    assert not (tmp_path / "run").exists()


def test_test_mode_writes_per_image_csv_and_confusion_matrix_then_predict(flowers, tmp_path, capsys):
    log_dir = tmp_path / "run"
    assert _train(log_dir, flowers, "--model", "jin_cnn", "--train_steps", "4") == 0
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(log_dir)]) == 0
    predictions = pd.read_csv(log_dir / "test_predictions.csv")
    assert len(predictions) == 6  # 20% of 8 photos in each of 3 classes, rounded: 2 per class
    assert predictions["file"].str.match(r"^(daisy|roses|tulips)/\1_\d\.(png|jpg)$").all()
    assert (predictions["true_class"] == predictions["file"].str.split("/").str[0]).all()
    np.testing.assert_allclose(predictions[["p_daisy", "p_roses", "p_tulips"]].sum(axis=1), 1.0, rtol=1e-5)
    image = cv2.imread(str(log_dir / "test_confusion_matrix.png"))
    assert image is not None and image.shape[0] > 200
    capsys.readouterr()

    picked = [flowers / "roses" / "roses_3.png", flowers / "daisy"]
    assert cifar10_main.main(["--mode", "predict", "--checkpoint", str(log_dir), "--images", *map(str, picked),
                              "--top_k", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(flowers))]
    assert len(lines) == 1 + 8  # the file, then every image of the folder
    assert lines[0].startswith(f"{flowers / 'roses' / 'roses_3.png'}: ")
    for line in lines:
        scores = [float(part.split()[-1]) for part in line.split(": ", 1)[1].split(", ")]
        assert len(scores) == 2 and scores[0] >= scores[1] and 0.0 <= sum(scores) <= 1.0 + 1e-6
    # Predict gives the probabilities test mode wrote for the same held-out images: printed to 3 decimals, and
    # in its --output CSV to the 6 digits both files keep (an image read or cropped otherwise differs beyond that).
    held_out = [str(flowers / name) for name in predictions["file"]]
    output = tmp_path / "predicted.csv"
    assert cifar10_main.main(["--mode", "predict", "--checkpoint", str(log_dir), "--images", *held_out,
                              "--top_k", "3", "--output", str(output)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[1].split(": ", 1)[1]
    for part in printed.split(", "):
        name, probability = part.rsplit(" ", 1)
        assert float(probability) == pytest.approx(predictions.iloc[0][f"p_{name}"], abs=5e-4)
    predicted = pd.read_csv(output)
    assert predicted["file"].tolist() == held_out
    columns = ["p_daisy", "p_roses", "p_tulips"]
    np.testing.assert_allclose(predicted[columns].to_numpy(), predictions[columns].to_numpy(), rtol=2e-5)
    assert (predicted["predicted_class"] == predictions["predicted_class"]).all()


def test_fine_tuning_on_the_real_flower_photos_unfreezes_the_top_only(tmp_path, capsys):
    """The real (downscaled) flower photos through Yuan's transfer path, ResNet-50 without pretrained weights: a
    frozen backbone, then a fine-tuning stage at a tenth of the rate; one ResNet-50 training serves both."""
    folder = require_shared("flower_photos_mini")
    log_dir = tmp_path / "fine"
    assert _train(log_dir, folder, "--model", "resnet50_imagenet", "--weights", "none", "--image_size", "32", "32",
                  "--freeze_backbone", "--fine_tune_at", "conv5_block3_1_conv", "--fine_tune_steps", "2",
                  "--optimizer", "adam", "--learning_rate", "1e-3") == 0
    out = capsys.readouterr().out
    assert "random initialisation, not a reproduction" in out and "fine-tuning the top" in out
    metrics = pd.read_csv(log_dir / "metrics.csv")
    assert metrics["step"].tolist() == [2, 4]
    np.testing.assert_allclose(metrics["learning_rate"], [1e-3, 1e-4])  # stage 2 at a tenth of the rate
    config, info = run_folder.saved_config(str(log_dir))
    assert config.pretrained is False and config.fine_tune_steps == 2 and config.fine_tune_learning_rate == 1e-4
    assert info.class_names == ("daisy", "dandelion", "roses", "sunflowers", "tulips")
    assert info.num_train_images == 320 and info.stored_size == (37, 37) and info.input_shape == (32, 32, 3)

    # Rebuild the same initial weights (same seed) and compare: only the unfrozen top moved.
    keras.utils.set_random_seed(0)
    initial = resnet.build_model("resnet50_imagenet", (32, 32, 3), 5, weights="none", freeze_backbone=True)
    trained = keras.models.load_model(log_dir / "latest.keras", compile=False)
    before = {w.path: w.numpy() for w in initial.get_layer(resnet.BACKBONE).weights}
    after = {w.path: w.numpy() for w in trained.get_layer(resnet.BACKBONE).weights}
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    assert {"conv5_block3_1_conv/kernel", "conv5_block3_3_conv/kernel"} <= moved
    assert all(path.startswith("conv5_block3_") for path in moved)  # nothing below the layer named
    assert not any("_bn/" in path for path in moved)  # batch norm stays frozen and in inference mode
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(log_dir)]) == 0
    assert len(pd.read_csv(log_dir / "test_predictions.csv")) == 80
