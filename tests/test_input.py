"""cifar10_input: the official formats, damaged files, downloads, splits and augmentation."""

import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

import augment
import cifar10_input
from conftest import write_binary_folder, write_python_archive, write_python_folder


def _expected(batches):
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return (np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train]), *batches["test_batch"])


@pytest.mark.parametrize("layout", ["archive", "archive_itself", "python_folder", "parent_of_folder", "binary_folder"])
def test_reads_every_official_layout(tmp_path, cifar_batches, layout):
    if layout in ("archive", "archive_itself"):
        # Any .tar.gz name works when its members are cifar-10-batches-py/...
        archive = write_python_archive(tmp_path / "my-copy.tar.gz", cifar_batches)
        data_dir = archive if layout == "archive_itself" else tmp_path
    elif layout == "python_folder":
        data_dir = write_python_folder(tmp_path, cifar_batches)
    elif layout == "parent_of_folder":
        write_python_folder(tmp_path, cifar_batches)
        data_dir = tmp_path
    else:
        write_binary_folder(tmp_path, cifar_batches)
        data_dir = tmp_path
    data = cifar10_input.load_cifar10(str(data_dir), download=False)
    x_train, y_train, x_test, y_test = _expected(cifar_batches)
    assert data["x_train"].dtype == np.uint8 and data["x_train"].shape == (35, 32, 32, 3)
    np.testing.assert_array_equal(data["x_train"], x_train)  # R, G, B planes decoded to HWC
    np.testing.assert_array_equal(data["y_train"], y_train)
    np.testing.assert_array_equal(data["x_test"], x_test)
    np.testing.assert_array_equal(data["y_test"], y_test)
    assert data["class_names"][0] == "airplane"


def test_truncated_archive_names_the_file(tmp_path, cifar_batches):
    archive = write_python_archive(tmp_path / "cifar-10-python.tar.gz", cifar_batches)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(cifar10_input.DataError, match="cifar-10-python.tar.gz is truncated or corrupt"):
        cifar10_input.load_cifar10(str(archive), download=False)


def test_corrupt_batch_file_names_the_batch(tmp_path, cifar_batches):
    folder = write_python_folder(tmp_path, cifar_batches)
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:100])
    with pytest.raises(cifar10_input.DataError, match="data_batch_3 is truncated or corrupt"):
        cifar10_input.load_cifar10(str(tmp_path), download=False)


def test_truncated_binary_batch_names_the_batch(tmp_path, cifar_batches):
    folder = write_binary_folder(tmp_path, cifar_batches)
    path = folder / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(cifar10_input.DataError, match="test_batch.bin is truncated"):
        cifar10_input.load_cifar10(str(tmp_path), download=False)


def _serve_archive(tmp_path, monkeypatch, cifar_batches, md5=None):
    """Points the official URL at a local file:// copy (urlretrieve handles file URLs)."""
    source = write_python_archive(tmp_path / "server" / "cifar-10-python.tar.gz", cifar_batches)
    monkeypatch.setattr(cifar10_input, "CIFAR10_URL", source.as_uri())
    monkeypatch.setattr(cifar10_input, "CIFAR10_MD5", md5 or hashlib.md5(source.read_bytes()).hexdigest())
    return source


def test_download_checks_md5_and_caches(tmp_path, monkeypatch, cifar_batches):
    _serve_archive(tmp_path, monkeypatch, cifar_batches)
    cache = tmp_path / "cache"
    data = cifar10_input.load_cifar10(str(cache))
    assert data["x_train"].shape == (35, 32, 32, 3)
    assert os.listdir(cache) == ["cifar-10-python.tar.gz"]
    # The second call finds the cached archive and does not download again.
    monkeypatch.setattr(cifar10_input, "CIFAR10_URL", "file:///nonexistent/cifar-10-python.tar.gz")
    assert cifar10_input.load_cifar10(str(cache))["source"].endswith("cifar-10-python.tar.gz")


def test_md5_mismatch_is_one_clear_line_and_leaves_nothing(tmp_path, monkeypatch, cifar_batches):
    _serve_archive(tmp_path, monkeypatch, cifar_batches, md5="0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(cifar10_input.DataError, match="MD5") as error:
        cifar10_input.load_cifar10(str(cache))
    assert "--data_dir" in str(error.value) and "\n" not in str(error.value)
    assert not cache.exists()  # the folder the download made is gone again, with the bad file


def test_offline_download_names_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10_input, "CIFAR10_URL", "file:///nonexistent/cifar-10-python.tar.gz")
    with pytest.raises(cifar10_input.DataError, match="could not download CIFAR-10.*--data_dir") as error:
        cifar10_input.load_cifar10(str(tmp_path / "cache"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "cache").exists()


def test_failed_download_into_existing_folder_leaves_it_as_it_was(tmp_path, monkeypatch, cifar_batches):
    _serve_archive(tmp_path, monkeypatch, cifar_batches, md5="0" * 32)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "notes.txt").write_text("mine")
    with pytest.raises(cifar10_input.DataError):
        cifar10_input.load_cifar10(str(cache))
    assert sorted(os.listdir(cache)) == ["notes.txt"]  # no .part file, no bad archive


def test_split_is_deterministic_and_disjoint():
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
    labels = np.arange(100)
    (xa, ya), (va, la) = cifar10_input.split_validation(images, labels, 0.1, seed=3)
    (xb, _), (vb, _) = cifar10_input.split_validation(images, labels, 0.1, seed=3)
    (_, _), (vc, _) = cifar10_input.split_validation(images, labels, 0.1, seed=4)
    assert len(va) == 10 and len(xa) == 90
    np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(va, vc)
    assert set(ya) | set(la) == set(labels) and not set(ya) & set(la)


def test_channel_stats_match_numpy(cifar_batches):
    images = cifar_batches["data_batch_1"][0]
    for chunk in (3, 4096):  # summed over chunks or at once: the same numbers
        mean, std = augment.channel_stats(images, chunk=chunk)
        np.testing.assert_allclose(mean, images.reshape(-1, 3).mean(0))
        np.testing.assert_allclose(std, images.reshape(-1, 3).std(0))


def _padded_windows(image):
    """Every 32x32 crop of the 4-pixel zero-padded image, flipped or not."""
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)])
    for dy in range(9):
        for dx in range(9):
            crop = padded[dy:dy + 32, dx:dx + 32]
            yield crop
            yield crop[:, ::-1]


def test_he_augment_is_a_padded_crop_or_its_mirror():
    images = tf.random.stateless_normal([6, 32, 32, 3], seed=[1, 2])
    out = augment.he_augment(images, tf.constant([5, 6], tf.int64)).numpy()
    assert out.shape == images.shape and out.dtype == np.float32
    for image, augmented in zip(images.numpy(), out):
        assert any(np.array_equal(augmented, window) for window in _padded_windows(image))


def test_he_augment_pads_with_the_mean_colour():
    """He et al. zero-pad mean-subtracted images: in 0-255 space the border is the mean colour."""
    fill = [10.0, 20.0, 30.0]
    out = augment.he_augment(tf.fill([64, 32, 32, 3], 200.0), tf.constant([0, 0], tf.int64), fill).numpy()
    colours = {tuple(pixel) for pixel in out.reshape(-1, 3)}
    assert colours == {(200.0, 200.0, 200.0), tuple(fill)}  # 64 random crops: some border shows


def test_xu_pads_the_raw_image_with_black_before_normalising_as_torchvision():
    """RandomCrop(32, padding=4) pads the raw image with 0, which Normalize(0.5, 0.5) maps to -1."""
    images = np.full((64, 32, 32, 3), 200, np.uint8)
    norm = augment.normalization("xu", images)
    out = augment.train_transform("xu", norm)(images, tf.constant([0, 0], tf.int64)).numpy()
    np.testing.assert_allclose(np.unique(out), [-1.0, (200 - 127.5) / 127.5], rtol=1e-6)  # black border, the image


@pytest.mark.parametrize("recipe_name", ["he"])
def test_training_path_equals_the_mean_colour_padding_it_stands_for(recipe_name):
    """Training normalises then zero-pads; the preview pads with the mean colour then normalises: the same images."""
    images = np.random.RandomState(0).randint(0, 256, (16, 32, 32, 3)).astype(np.uint8)
    norm = augment.normalization(recipe_name, images)
    seed = tf.constant([3, 4], tf.int64)
    training = augment.train_transform(recipe_name, norm)(images, seed).numpy()
    in_0_255 = augment.he_augment(tf.cast(images, tf.float32), seed, norm["mean"])
    np.testing.assert_allclose(training, augment.normalize(in_0_255, norm).numpy(), rtol=1e-5, atol=1e-5)


def test_he_augment_seeded_and_random():
    images = tf.random.stateless_normal([16, 32, 32, 3], seed=[1, 2])
    a = augment.he_augment(images, tf.constant([0, 1], tf.int64))
    b = augment.he_augment(images, tf.constant([0, 1], tf.int64))
    c = augment.he_augment(images, tf.constant([0, 2], tf.int64))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _norm(images):
    return augment.normalization("he", images)


def test_train_dataset_same_in_tf_data_and_eagerly(cifar_batches):
    images, labels = cifar_batches["data_batch_1"]
    norm = _norm(images)
    dataset = cifar10_input.make_train_dataset(images, labels, 4, norm, "none", seed=0)
    x, y = next(iter(dataset))
    assert x.shape == (4, 32, 32, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    # With no augmentation each row is exactly the normalised source image.
    for row, label in zip(x.numpy(), y.numpy()):
        matches = [i for i in range(len(images)) if np.allclose(augment.normalize(images[i], norm), row)]
        assert matches and labels[matches[0]] == label


def _stream(images, batch, steps, **kwargs):
    labels = np.arange(len(images), dtype=np.int32)  # label = image index, to follow the order
    dataset = cifar10_input.make_train_dataset(images, labels, batch, _norm(images), "he", seed=3, **kwargs)
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(steps)]


def test_every_epoch_is_a_permutation_of_the_images(cifar_batches):
    images = cifar_batches["data_batch_1"][0]  # 7 images
    order = np.concatenate([y for _, y in _stream(images, 7, 4)])
    for epoch in order.reshape(4, 7):
        assert sorted(epoch) == list(range(7))
    assert len({tuple(e) for e in order.reshape(4, 7)}) > 1  # reshuffled each epoch


def test_stream_resumes_exactly_at_a_step(cifar_batches):
    """What an interrupted run sees from step 5 on is what the uninterrupted run saw."""
    images = cifar_batches["data_batch_1"][0]
    whole = _stream(images, 3, 9)
    resumed = _stream(images, 3, 4, start_step=5)
    for (xa, ya), (xb, yb) in zip(whole[5:], resumed):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)  # same crops and flips too


class _Context:
    """The two fields of tf.distribute.InputContext the pipeline reads, for one of two workers."""

    def __init__(self, pipeline_id):
        self.num_input_pipelines, self.input_pipeline_id, self.num_replicas_in_sync = 2, pipeline_id, 2

    def get_per_replica_batch_size(self, batch_size):
        return batch_size // self.num_replicas_in_sync


def test_workers_read_disjoint_halves_of_each_epoch():
    images = np.random.RandomState(0).randint(0, 256, (10, 32, 32, 3)).astype(np.uint8)
    seen = [np.concatenate([y for _, y in _stream(images, 10, 5, input_context=_Context(i))]) for i in (0, 1)]
    for worker in seen:
        assert len(worker) == 25
    for epoch in range(5):
        both = np.concatenate([seen[0][5 * epoch:5 * epoch + 5], seen[1][5 * epoch:5 * epoch + 5]])
        assert sorted(both) == list(range(10))


def test_train_dataset_repeats_and_is_seeded(cifar_batches):
    images, labels = cifar_batches["data_batch_1"]
    norm = _norm(images)
    first = [x.numpy() for x, _ in cifar10_input.make_train_dataset(images, labels, 3, norm, "he", seed=7).take(5)]
    again = [x.numpy() for x, _ in cifar10_input.make_train_dataset(images, labels, 3, norm, "he", seed=7).take(5)]
    assert len(first) == 5  # 7 images, batch 3: repeats beyond one epoch
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_imagedatagenerator_dataset_is_the_seeded_generator_normalised(cifar_batches):
    """Liang's augmentation: the batches are Keras' own seeded flow (shift 0.1, flip) with the run's normalisation,
    labels kept with their images, and each epoch's last partial batch dropped (7 images: 2 batches of 3)."""
    images = cifar_batches["data_batch_1"][0]
    labels = np.arange(len(images))  # each label names its source image
    norm = _norm(images)
    dataset = cifar10_input.make_train_dataset(images, labels, 3, norm, "imagedatagenerator", seed=5)
    ours = [(x.numpy(), y.numpy()) for x, y in dataset.take(4)]
    flow = augment.liang_image_data_generator().flow(images, labels, batch_size=3, shuffle=True, seed=5)
    expected = [batch for batch in (next(flow) for _ in range(6)) if len(batch[0]) == 3][:4]
    for (x, y), (x_keras, y_keras) in zip(ours, expected):
        assert x.shape == (3, 32, 32, 3) and x.dtype == np.float32
        np.testing.assert_array_equal(y, y_keras)
        np.testing.assert_allclose(x, (x_keras - np.float32(norm["mean"])) / np.float32(norm["std"]), rtol=1e-5,
                                   atol=1e-5)
    # Augmented: no image is its untouched original (normalised); shifts are random, so none is exactly 0.
    originals = augment.normalize(images, norm).numpy()
    assert not any(np.allclose(image, originals[label], atol=1e-3) for x, y in ours for image, label in zip(x, y))


def test_eval_dataset_keeps_order_and_last_batch(cifar_batches):
    images, labels = cifar_batches["test_batch"]
    dataset = cifar10_input.make_eval_dataset(images, labels, 4, {"mean": [0, 0, 0], "std": [1, 1, 1]})
    got = np.concatenate([y.numpy() for _, y in dataset])
    np.testing.assert_array_equal(got, labels)
