"""MNIST idx files, image folders, every augmentation recipe, and the preview, on data the tests write."""

import gzip
import hashlib
import json
import struct
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import augment
import cifar10_input
import cifar10_main
import datasets
import run_folder
from conftest import require_shared


# ---------------------------------------------------------------------------- MNIST

def _write_idx(path, array, magic):
    header = struct.pack(">II", magic, len(array)) + b"".join(struct.pack(">I", d) for d in array.shape[1:])
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.RandomState(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, count in (("train", 13), ("t10k", 5)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.randint(0, 256, (count, 28, 28)), 2051)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count) % 10, 2049)
    return folder


def test_mnist_reads_official_idx(mnist_dir):
    data = datasets.load_mnist(str(mnist_dir), download=False)
    assert data["x_train"].shape == (13, 28, 28, 1) and data["x_test"].shape == (5, 28, 28, 1)
    assert data["x_train"].dtype == np.uint8 and data["y_train"].dtype == np.int32
    np.testing.assert_array_equal(data["y_train"], np.arange(13) % 10)  # label order kept
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as handle:
        raw = np.frombuffer(handle.read()[16:], np.uint8).reshape(5, 28, 28)
    np.testing.assert_array_equal(data["x_test"][..., 0], raw)


def test_mnist_truncated_file_names_it(mnist_dir):
    path = mnist_dir / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(data[:-100])
    with pytest.raises(cifar10_input.DataError, match="train-images-idx3-ubyte.gz is truncated or corrupt"):
        datasets.load_mnist(str(mnist_dir), download=False)


def test_mnist_download_md5_and_offline(mnist_dir, tmp_path, monkeypatch):
    good = {name: hashlib.md5((mnist_dir / name).read_bytes()).hexdigest() for name in datasets.MNIST_FILES}
    monkeypatch.setattr(datasets, "MNIST_URL", mnist_dir.as_uri() + "/")
    monkeypatch.setattr(datasets, "MNIST_FILES", good)
    assert datasets.load_mnist(str(tmp_path / "cache"))["x_train"].shape == (13, 28, 28, 1)
    monkeypatch.setattr(datasets, "MNIST_FILES", dict(good, **{"t10k-labels-idx1-ubyte.gz": "0" * 32}))
    with pytest.raises(cifar10_input.DataError, match="--data_dir"):
        datasets.load_mnist(str(tmp_path / "cache2"))
    assert "t10k-labels-idx1-ubyte.gz" not in [p.name for p in (tmp_path / "cache2").iterdir()]
    monkeypatch.setattr(datasets, "MNIST_URL", "file:///nonexistent/")
    with pytest.raises(cifar10_input.DataError, match="could not download MNIST.*--data_dir"):
        datasets.load_mnist(str(tmp_path / "cache3"))


def test_mnist_adapted_to_cifar_models_but_not_to_lenet():
    digits = np.random.RandomState(0).randint(0, 256, (4, 28, 28, 1)).astype(np.uint8)
    adapted = datasets.adapt_to_model(digits, (32, 32, 3))
    assert adapted.shape == (4, 32, 32, 3) and adapted.dtype == np.uint8
    np.testing.assert_array_equal(adapted[:, 2:30, 2:30, 1], digits[..., 0])  # padded 2 px, channel repeated
    assert np.all(adapted[:, :2] == 0)
    assert datasets.adapt_to_model(digits, (28, 28, 1)) is digits
    cifar = np.zeros((2, 32, 32, 3), np.uint8)
    assert datasets.adapt_to_model(cifar, (28, 28, 1)).shape == (2, 32, 32, 3)  # never shrunk


def test_real_mnist_counts_and_histogram():
    folder = require_shared("mnist")
    data = datasets.load_mnist(str(folder), download=False)
    assert data["x_train"].shape == (60000, 28, 28, 1) and data["x_test"].shape == (10000, 28, 28, 1)
    # The label histogram in ../shared/datasets/README.md.
    assert np.bincount(data["y_train"]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(data["y_test"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---------------------------------------------------------------------------- image folders

@pytest.fixture
def image_folder(tmp_path):
    """Three classes of PNG and JPEG files, plus a broken JPEG, a text file, a grayscale and an RGBA image."""
    rng = np.random.RandomState(0)
    root = tmp_path / "flowers"
    for name in ("tulips", "daisy", "roses"):  # created out of order: classes must come out sorted
        (root / name).mkdir(parents=True)
        for index in range(5):
            image = rng.randint(0, 256, (40 + index, 50, 3)).astype(np.uint8)
            cv2.imwrite(str(root / name / f"{index}.{'png' if index % 2 else 'jpg'}"), image)
    (root / "daisy" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "daisy" / "notes.txt").write_text("not an image")
    gray = np.full((30, 30), 200, np.uint8)
    cv2.imwrite(str(root / "roses" / "gray.png"), gray)
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255  # pure blue in OpenCV's BGRA
    cv2.imwrite(str(root / "tulips" / "rgba.png"), rgba)
    return root


def test_folder_loads_sorted_classes_rgb_uint8_and_warns(image_folder):
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\).*daisy/broken.jpg.*daisy/notes.txt"):
        data = datasets.load_image_folder(str(image_folder), (16, 24), validation_split=0.2, seed=0)
    assert data["class_names"] == ["daisy", "roses", "tulips"]
    assert len(data["y_train"]) + len(data["y_test"]) == 17
    assert data["x_train"].shape[1:] == (16, 24, 3) and data["x_train"].dtype == np.uint8
    everything = dict(zip(data["files_train"] + data["files_test"], np.concatenate([data["x_train"], data["x_test"]])))
    assert np.all(everything["roses/gray.png"] == 200)
    assert np.all(everything["tulips/rgba.png"][..., 2] == 255) and np.all(everything["tulips/rgba.png"][..., 0] == 0)
    labels = dict(zip(data["files_train"] + data["files_test"], np.concatenate([data["y_train"], data["y_test"]])))
    assert labels["roses/gray.png"] == 1 and labels["daisy/0.jpg"] == 0


def test_folder_split_is_deterministic_and_stratified(image_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = datasets.load_image_folder(str(image_folder), (8, 8), 0.2, seed=1)
        b = datasets.load_image_folder(str(image_folder), (8, 8), 0.2, seed=1)
        c = datasets.load_image_folder(str(image_folder), (8, 8), 0.2, seed=2)
    assert a["files_test"] == b["files_test"] and a["files_test"] != c["files_test"]
    assert np.bincount(a["y_test"]).tolist() == [1, 1, 1]  # 20% of 5 or 6 images per class
    assert not set(a["files_test"]) & set(a["files_train"])


def test_folder_with_train_and_test_subfolders(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            for index in range(count):
                cv2.imwrite(str(tmp_path / split / name / f"{index}.png"), np.zeros((9, 9, 3), np.uint8))
    data = datasets.load_image_folder(str(tmp_path), (8, 8))
    assert len(data["y_train"]) == 6 and len(data["y_test"]) == 4
    assert data["files_test"][0] == "test/a/0.png"


def test_predict_reads_images_as_the_run_was_trained(image_folder):
    """RGB for 3-channel runs, gray for 1-channel ones (LeNet-5 on MNIST), at the run's size; broken files skipped."""
    files = datasets.list_images([str(image_folder / "roses"), str(image_folder / "daisy" / "broken.jpg")])
    assert files[-1].endswith("broken.jpg") and all("roses" in f for f in files[:-1])
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\).*broken.jpg"):
        rgb, readable = datasets.read_images(files, (20, 24), channels=3)
    assert rgb.shape == (len(files) - 1, 20, 24, 3) and rgb.dtype == np.uint8 and len(readable) == len(files) - 1
    gray, _ = datasets.read_images([str(image_folder / "roses" / "gray.png")], (28, 28), channels=1)
    assert gray.shape == (1, 28, 28, 1) and np.all(gray == 200)
    with pytest.raises(cifar10_input.DataError, match="no such file or folder"):
        datasets.list_images([str(image_folder / "nothing_here.png")])


def test_empty_class_and_empty_folder_are_errors(tmp_path):
    with pytest.raises(cifar10_input.DataError, match="no class subfolders"):
        datasets.load_image_folder(str(tmp_path), (8, 8))
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "readme.txt").write_text("x")
    with pytest.raises(cifar10_input.DataError, match="cats holds no readable images"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            datasets.load_image_folder(str(tmp_path), (8, 8))
    with pytest.raises(cifar10_input.DataError, match="is not a folder"):
        datasets.load_image_folder(str(tmp_path / "missing"), (8, 8))


def test_a_data_dir_holding_another_dataset_is_one_line_and_nothing_is_downloaded(mnist_dir, cifar_archive, tmp_path,
                                                                                    monkeypatch, capsys):
    """--data_dir pointed at the MNIST folder with the default --dataset cifar10 tried to download CIFAR-10 into it
    (and, offline, failed with a download error): it says which dataset the folder holds and the flag to pass."""
    def no_download(*args, **kwargs):
        raise AssertionError("nothing may be downloaded")
    monkeypatch.setattr(cifar10_input, "download_cifar10", no_download)
    monkeypatch.setattr(datasets, "fetch", no_download)
    photos = tmp_path / "photos"
    (photos / "cats").mkdir(parents=True)
    (photos / "cats" / "a.png").write_bytes(b"")
    for name, folder, held in [("cifar10", mnist_dir, "MNIST"), ("cifar10", photos, "class subfolders of images"),
                               ("mnist", cifar_archive, "CIFAR-10"), ("folder", mnist_dir, "MNIST")]:
        other = {"MNIST": "mnist", "CIFAR-10": "cifar10"}.get(held, "folder")
        assert cifar10_main.main(["--mode", "train", "--dataset", name, "--data_dir", str(folder),
                                  "--log_dir", str(tmp_path / "run")]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and f"--data_dir {folder} holds {held}, not " in error[0], error
        assert f"pass --dataset {other}" in error[0]
    assert not (tmp_path / "run").exists()
    # A folder that holds the dataset named, or nothing the suite reads (where CIFAR-10 is downloaded to), passes.
    assert datasets._dataset_held_instead("mnist", str(mnist_dir)) is None
    assert datasets._dataset_held_instead("cifar10", str(tmp_path / "empty")) is None
    assert datasets._dataset_held_instead("cifar10", str(tmp_path)) is None  # photos/ beside folders of other things


# ---------------------------------------------------------------------------- augmentation recipes

BATCH = np.random.RandomState(0).randint(0, 256, (6, 32, 32, 3)).astype(np.uint8)
TENSOR_RECIPES = [name for name, recipe in augment.RECIPES.items() if not recipe.image_data_generator]


@pytest.mark.parametrize("recipe_name", TENSOR_RECIPES)
def test_recipe_keeps_shape_dtype_random_and_seeded(recipe_name):
    norm = augment.normalization(recipe_name, BATCH)

    def run(seed, index):
        return augment.train_transform(recipe_name, norm, seed)(BATCH, tf.constant([seed, index], tf.int64)).numpy()

    first = run(0, 0)
    assert first.shape == BATCH.shape and first.dtype == np.float32
    np.testing.assert_array_equal(first, run(0, 0))  # fixed seed: same output
    if recipe_name == "none":  # the identity, then the normalisation
        np.testing.assert_allclose(first, augment.normalize(BATCH, norm).numpy())
    elif recipe_name == "sequential":
        # Jin's real Keras layers draw from their own seeded generator: each call differs,
        # and a fresh pipeline with the same seed repeats the same sequence.
        transform = augment.train_transform(recipe_name, norm, 0)
        calls = [transform(BATCH, None).numpy() for _ in range(3)]
        assert not np.array_equal(calls[0], calls[1]) or not np.array_equal(calls[1], calls[2])
        again = augment.train_transform(recipe_name, norm, 0)
        for call in calls:
            np.testing.assert_array_equal(call, again(BATCH, None).numpy())
    else:
        assert not np.array_equal(first, run(0, 1))  # a different batch draws differently
    # Inside tf.data it behaves as eagerly (big_vision's advice).
    transform = augment.train_transform(recipe_name, norm, 0)
    in_data = next(iter(tf.data.Dataset.from_tensors(BATCH).map(
        lambda x: transform(x, tf.constant([0, 0], tf.int64)))))
    if recipe_name != "sequential":  # Keras layers draw from their own seed generator state
        np.testing.assert_allclose(in_data.numpy(), first, rtol=1e-5, atol=1e-5)


def test_recipe_normalisations():
    assert augment.normalization("xu", BATCH) == {"mean": [127.5] * 3, "std": [127.5] * 3}
    assert augment.normalization("sequential", BATCH) == {"mean": [0.0] * 3, "std": [255.0] * 3}
    x = augment.train_transform("sequential", augment.normalization("sequential", BATCH))(
        BATCH, tf.constant([0, 0], tf.int64)).numpy()
    assert 0.0 <= x.min() and x.max() <= 1.0  # Rescaling(1/255)
    np.testing.assert_allclose(np.sort(x.ravel()), np.sort(BATCH.ravel() / 255.0), rtol=1e-6)  # only flips
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.normalization("magic", BATCH)


def test_keras_applications_normalisation_is_their_own_preprocess_input():
    import keras

    norm = augment.normalization("imagenet", BATCH, keras_preprocess="resnet")
    ours = augment.normalize(BATCH, norm).numpy()
    theirs = keras.applications.resnet.preprocess_input(BATCH.astype(np.float32))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_imagedatagenerator_recipe_is_random_and_seeded():
    norm = augment.normalization("imagedatagenerator", BATCH)

    def take(seed):
        batches = cifar10_input.make_train_dataset(BATCH, np.arange(6), 3, norm, "imagedatagenerator", seed)
        return [x.numpy() for x, _ in batches.take(2)]

    a, b, c = take(0), take(0), take(1)
    assert a[0].shape == (3, 32, 32, 3) and a[0].dtype == np.float32
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_liang_recipe_standardises_each_image_on_its_own():
    """wenxinxu's whitening: every image, in training and in evaluation, has mean 0 and std 1 (per image)."""
    norm = augment.normalization("liang", BATCH)
    assert norm == {"per_image": True}
    training = next(iter(cifar10_input.make_train_dataset(BATCH, np.arange(6), 3, norm, "liang", 0)))[0].numpy()
    evaluation = augment.eval_transform("liang", norm)(BATCH).numpy()
    for images in (training, evaluation):
        np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
        np.testing.assert_allclose(images.std(axis=(1, 2, 3)), 1.0, rtol=1e-3)
    scaled = (BATCH[:1].astype(np.float32) * 0.5).astype(np.uint8)  # a darker copy standardises alike
    np.testing.assert_allclose(augment.eval_transform("liang", norm)(scaled).numpy(),
                               augment.eval_transform("liang", norm)(scaled * 2).numpy(), atol=1e-5)


def test_imagenet_recipe_crops_stored_images_to_the_model_size():
    """Stored at 40 for a 35-pixel model (35 = 0.875 x 40): validation is exactly the central 35x35."""
    stored = np.random.RandomState(1).randint(0, 256, (4, 40, 40, 3)).astype(np.uint8)
    norm = augment.normalization("imagenet", stored)
    validation = augment.eval_transform("imagenet", norm, (35, 35))(stored).numpy()
    np.testing.assert_allclose(validation, augment.normalize(stored[:, 2:37, 2:37], norm).numpy(), rtol=1e-6)
    training = augment.train_transform("imagenet", norm, 0, (35, 35))(stored, tf.constant([0, 0], tf.int64))
    assert training.shape == (4, 35, 35, 3)


@pytest.mark.parametrize("recipe_name", tuple(augment.RECIPES))
def test_augmentation_grid_has_originals_first(recipe_name):
    norm = augment.normalization(recipe_name, BATCH)
    grid = augment.augmentation_grid(BATCH[:2], recipe_name, norm, versions=3)
    assert grid.shape == (64, 4 * 32, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:32, :32], BATCH[0])
    if recipe_name == "none":
        np.testing.assert_array_equal(grid[:32, 32:64], BATCH[0])  # identity
    else:
        assert not all(np.array_equal(grid[:32, 32 * v:32 * v + 32], BATCH[0]) for v in (1, 2, 3))


def test_augment_preview_writes_png(capsys, cifar_archive, tmp_path, monkeypatch):
    grids = []
    real = augment.augmentation_grid
    monkeypatch.setattr(augment, "augmentation_grid", lambda *args, **kwargs: grids.append(real(*args, **kwargs))
                        or grids[-1])
    output = tmp_path / "fig5.png"
    code = cifar10_main.main(["--mode", "augment_preview", "--augment", "imagedatagenerator", "--data_dir",
                              str(cifar_archive), "--preview_images", "3", "--output", str(output)])
    assert code == 0 and "Wrote" in capsys.readouterr().out
    # The grid drawn: 3 training images (first, middle and last), each then 5 augmented versions.
    x_train = cifar10_input.load_cifar10(str(cifar_archive))["x_train"]
    (grid,) = grids
    assert grid.shape == (3 * 32, 6 * 32, 3)
    for row, index in enumerate(np.linspace(0, len(x_train) - 1, 3).astype(int)):
        np.testing.assert_array_equal(grid[32 * row:32 * row + 32, :32], x_train[index])
        assert not np.array_equal(grid[32 * row:32 * row + 32, 32:64], x_train[index])
    # The PNG is the figure of that grid: 1.4 inches per column and row (+0.6 for the title) at 120 dpi.
    image = cv2.imread(str(output))
    assert image.shape[:2] == (round((1.4 * 3 + 0.6) * 120), round(1.4 * 6 * 120))


def test_folder_run_tests_with_its_own_preprocessing(capsys, image_folder, tmp_path):
    """--mode test replays the recipe saved by training: its accuracy equals the last validation accuracy."""
    log_dir = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cifar10_main.main(["--dataset", "folder", "--data_dir", str(image_folder), "--model", "jin_cnn",
                                  "--train_steps", "4", "--report_freq", "2", "--batch_size", "4",
                                  "--log_dir", str(log_dir)])
        assert code == 0
        config, info = run_folder.saved_config(str(log_dir))
        assert config.augment == "imagenet" and info.input_shape == (32, 32, 3)
        assert cifar10_main.main(["--mode", "test", "--checkpoint", str(log_dir)]) == 0
    final = pd.read_csv(log_dir / "metrics.csv").iloc[-1]
    tested = json.loads((log_dir / "test_metrics.json").read_text())
    assert tested["num_images"] == 3
    assert tested["accuracy"] == pytest.approx(final["val_accuracy"], abs=1e-6)
    assert tested["loss"] == pytest.approx(final["val_loss"], rel=1e-4)


def test_mnist_trains_a_cifar_model_and_tests(capsys, mnist_dir, tmp_path):
    log_dir = tmp_path / "run"
    assert cifar10_main.main(["--dataset", "mnist", "--data_dir", str(mnist_dir), "--model", "jin_cnn",
                              "--train_steps", "2", "--report_freq", "2", "--batch_size", "4",
                              "--log_dir", str(log_dir)]) == 0
    config, info = run_folder.saved_config(str(log_dir))
    assert info.input_shape == (32, 32, 3) and config.augment == "none" and config.dataset == "mnist"
    assert cifar10_main.main(["--mode", "test", "--checkpoint", str(log_dir)]) == 0
    assert np.load(log_dir / "test_probabilities.npy").shape == (5, 10)


def test_imagenet_recipe_keeps_the_aspect_ratio_and_takes_the_centre(tmp_path):
    """Yuan's Resize(256) + CenterCrop: a wide photo is scaled by its short side, its sides cut, never squashed."""
    import cv2

    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10] = (0, 0, 255)  # red quarter (BGR on disk)
    image[:, 10:30] = (0, 255, 0)  # green half
    image[:, 30:] = (255, 0, 0)  # blue quarter
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), image)
    kept = datasets.read_images([str(path)], (10, 10), keep_aspect=True)[0][0]
    assert (kept == (0, 255, 0)).all()  # only the green centre survives
    squashed = datasets.read_images([str(path)], (10, 10))[0][0]
    assert squashed[:, 0, 0].min() > 200 and squashed[:, -1, 2].min() > 200  # red and blue edges, squeezed in
    assert augment.RECIPES["imagenet"].crop_to_evaluate and not augment.RECIPES["he"].crop_to_evaluate
