"""The suite's Python API: train, test, predict and preview from a ``RunConfig`` or a run folder.

The command line (``cifar10_main.py``), the experiments and the benchmarks all call these functions; a problem
the user can fix raises one of ``USER_ERRORS`` (the CLI prints it as one ``error:`` line, exit code 2).

    import api, run_config
    api.train(run_config.RunConfig(model="resnet20", train_steps=2000, log_dir="runs/r20"))
    api.test("runs/r20")
"""

import dataclasses
import json
import os
import signal
import sys

from tf_setup import nvidia_device_present  # first, before TensorFlow: the suite's environment defaults
import numpy as np
import tensorflow as tf

import augment
import cifar10_input
import cifar10_test
import cifar10_train
import datasets
import fileio
import resnet
import run_config
import run_folder
import summaries


class UsageError(Exception):
    """Settings that do not fit together; the message (one line) says which."""


USER_ERRORS = (  # each a problem the user can fix, said in one line
    UsageError,
    run_config.ConfigError,
    resnet.ModelInputError,
    resnet.WeightsError,
    cifar10_input.DataError,
    run_folder.RunFolderError,
    cifar10_test.CheckpointError,
)


def stop_on_sigterm():
    """Makes SIGTERM (``kill``, a batch scheduler's stop, a container's shutdown) stop a run as Ctrl-C does: the
    engine keeps its last checkpoint and the CLI says so, where Python's default would die without a word. It
    also reaches runs started with ``nohup ... &`` from a script, which inherit SIGINT as ignored."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def interrupted(code, own_process):
    """The exit code after Ctrl-C or SIGTERM, its line already printed. In a process of its own (the CLI or an
    experiment run as a command), the process ends here with ``os._exit``: freeing the interrupted run's
    TensorFlow objects once waited forever (a he2016 run, 2026-12-07), and everything a run keeps was written at
    its last report and checkpoint. Called from Python (a test, a notebook), it returns the code."""
    if own_process:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def check_tf_config(text):
    """TF_CONFIG as multi_worker needs it: JSON with a cluster of workers and this process's task."""
    if not text:
        raise UsageError("--distribution_strategy multi_worker needs TF_CONFIG (see README: several machines)")
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise UsageError(f"TF_CONFIG is not JSON ({error})") from None
    if not (isinstance(spec, dict) and isinstance(spec.get("cluster"), dict)
            and isinstance(spec.get("task"), dict)):
        raise UsageError('TF_CONFIG must be {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": N}}')


def make_strategy(name, num_gpus=None):
    """Builds the tf.distribute strategy; call it before anything else touches TensorFlow's devices."""
    if name == "multi_worker":
        # Must come first: collective ops can only be configured before the
        # runtime initialises, which listing logical devices does.
        check_tf_config(os.environ.get("TF_CONFIG"))
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except ValueError as error:
            raise UsageError(f"TF_CONFIG: {str(error).splitlines()[0]}") from None
    choose_gpus(num_gpus)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    # mirrored: without GPUs, mirror over the logical CPUs (one, unless split with
    # tf.config.set_logical_device_configuration, as the tests do).
    devices = [g.name for g in gpus] or [c.name for c in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def choose_gpus(num_gpus):
    """``--num_gpus N``: only the first N GPUs are made visible, before TensorFlow's runtime starts (listing
    logical devices starts it), so the others are neither used nor have memory reserved; 0 trains on the CPU."""
    if num_gpus is None:
        return
    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus < 0 or num_gpus > len(gpus):
        raise UsageError(f"--num_gpus {num_gpus} but {len(gpus)} GPU(s) are visible")
    try:
        tf.config.set_visible_devices(gpus[:num_gpus], "GPU")
    except RuntimeError:
        raise UsageError(f"--num_gpus {num_gpus}: TensorFlow had already started with other GPUs visible; "
                         "set CUDA_VISIBLE_DEVICES instead") from None


def gpu_warning():
    """The one-line warning for a machine with an NVIDIA GPU that TensorFlow does not see, or None."""
    if tf.config.list_physical_devices("GPU") or not nvidia_device_present():
        return None
    return ("warning: this machine has an NVIDIA GPU but TensorFlow sees none (its CUDA libraries are not installed), "
            "so training runs on the CPU; install them with: pip install -r requirements-gpu.txt")


def input_sizes(config):
    """(stored image size, model input size) for --dataset folder; (None, None) for the fixed-size datasets.

    The recipe says how large images are kept: the imagenet recipe stores them at
    input/0.875 (256 for 224) and crops them to the input size, as Resize(256) + CenterCrop(224).
    """
    if config.dataset != "folder":
        return None, None
    size = tuple(config.image_size or resnet.MODELS[config.model].input_shape[:2])
    return augment.recipe(run_config.recipe(config)).stored_size(size), size


def load_data(config):
    """The dataset adapted to the model, and the split it validates on.

    Returns (data, info): ``data`` holds the images as TensorFlow tensors, so that
    training keeps one uint8 copy of them (the NumPy arrays the loaders made are
    dropped here); ``info`` has the source and, for image folders, the file names.
    """
    if config.dataset == "folder" and not config.data_dir:
        raise UsageError("--dataset folder needs --data_dir pointing at the image folder")
    stored_size, _ = input_sizes(config)
    split = run_config.default_split(config)
    folder_split = config.dataset == "folder"
    dataset = datasets.load_dataset(
        config.dataset, config.data_dir, resnet.MODELS[config.model].input_shape,
        validation_split=split if folder_split else 0.0, seed=config.seed, image_size=stored_size,
        keep_aspect=augment.recipe(run_config.recipe(config)).crop_to_evaluate)
    data = {"class_names": dataset.pop("class_names")}
    if split and not folder_split:
        (x_train, data["y_train"]), (x_val, data["y_val"]) = cifar10_input.split_validation(
            dataset.pop("x_train"), dataset.pop("y_train"), split, config.seed)
        data["validation"] = (f"{len(x_val)} images held out of the training set (--validation_split {split}, "
                              f"seed {config.seed})")
    else:
        x_train, data["y_train"] = dataset.pop("x_train"), dataset.pop("y_train")
        x_val, data["y_val"] = dataset.pop("x_test"), dataset.pop("y_test")
        data["validation"] = dataset.get("test_description", f"the test set ({len(x_val)} images)")
    data["x_train"], data["x_val"] = tf.convert_to_tensor(x_train), tf.convert_to_tensor(x_val)
    return data, dataset


def train(config, on_report=None, verbose=1, resume=False, overwrite=False):
    """Trains a RunConfig: loads its data, resolves it, runs the engine; the CLI, experiments and benchmarks call it.

    ``on_report(row) -> bool`` may stop training early (see ``cifar10_train.train``).
    """
    run_config.check(config)
    strategy = make_strategy(config.distribution_strategy, config.num_gpus)
    warning = gpu_warning()
    if warning:
        print(warning, file=sys.stderr)
    data, dataset = load_data(config)
    requested_precision = config.mixed_precision
    config = run_config.resolve(config, len(data["x_train"]), strategy.num_replicas_in_sync, dataset["source"])
    precision_note, session_notes = "", {}
    if requested_precision == "auto":
        input_shape = (*(config.image_size or data["x_train"].shape[1:3]), data["x_train"].shape[-1])
        choice, rates, source = cifar10_train.auto_precision(config, input_shape, strategy.num_replicas_in_sync)
        config = dataclasses.replace(config, mixed_precision=choice)
        measured = ", ".join(f"{name} {rate:.0f}" for name, rate in (rates or {}).items())
        precision_note = f" (auto: {measured} images/s, {source})" if rates else " (auto, by the hardware's rule)"
        session_notes = {"auto_precision": {"images_per_sec": rates, "source": source}}
    weights_note = ""
    if resnet.is_transfer(config.model) and not config.pretrained:
        weights_note = " NOTE: --weights none: random initialisation, not a reproduction of a pretrained result."
    fine_tune = f" + {config.fine_tune_steps} fine-tuning" if config.fine_tune_steps else ""
    print(f"Training {config.model} on {config.dataset} from {config.data_dir}: {len(data['x_train'])} training images "
          f"{list(data['x_train'].shape[1:])} -> model input size "
          f"{list(config.image_size or data['x_train'].shape[1:3])}, "
          f"augment {config.augment}, validating on {data['validation']}; {strategy.num_replicas_in_sync} replica(s), "
          f"global batch {config.batch_size}, {config.train_steps} steps{fine_tune}, precision "
          f"{config.mixed_precision}{precision_note}; run folder {config.log_dir}.{weights_note}")
    try:
        result = cifar10_train.train(config, data, strategy, verbose=verbose, on_report=on_report, resume=resume,
                                     overwrite=overwrite, session_notes=session_notes)
    except ValueError as error:  # the engine's own checks (batch per input pipeline, --fine_tune_at layer)
        raise UsageError(str(error).splitlines()[0]) from None
    test = (f"Test with: python cifar10_main.py --mode test --checkpoint {config.log_dir}" if result["model"] else
            "Its models were removed with its checkpoint: only its reports are left")
    print(f"Done: val accuracy {result.get('val_accuracy', float('nan')):.4f} at step {result.get('step')}, "
          f"best {result['best_val_accuracy']:.4f}. {test}")
    return result


def load_checkpoint(checkpoint, model_name=None):
    """The model, its file, run folder, settings and data facts of ``checkpoint`` (a run folder, a shipped folder or
    a .keras file in one), checked against ``model_name`` when given."""
    model_path, run_dir, config, info = cifar10_test.resolve_checkpoint(checkpoint)
    if model_name and model_name != config.model:
        raise cifar10_test.CheckpointError(
            f"--checkpoint {checkpoint} holds a {config.model} run, not --model {model_name}")
    model = cifar10_test.load_model(model_path)
    expected = (None, *info.input_shape)
    if tuple(model.input_shape) != expected:
        raise cifar10_test.CheckpointError(
            f"{model_path} takes inputs {model.input_shape}, the run's config says {expected}")
    return model, model_path, run_dir, config, info


def evaluate_run(model, config, info, data_dir=None, eval_batch_size=500):
    """A run's model on its dataset's test images, read and preprocessed as in training: (dataset, result)."""
    dataset = datasets.load_dataset(
        config.dataset, data_dir or config.data_dir, info.input_shape,
        validation_split=run_config.default_split(config) or run_config.FOLDER_TEST_SPLIT, seed=config.seed,
        image_size=info.stored_size if config.dataset == "folder" else None,
        keep_aspect=augment.recipe(config.augment).crop_to_evaluate)
    stored = (*info.stored_size, info.input_shape[-1])
    if tuple(dataset["x_test"].shape[1:]) != tuple(stored):
        raise cifar10_input.DataError(
            f"test images are {dataset['x_test'].shape[1:]} but the run was trained on {tuple(stored)}")
    return dataset, cifar10_test.evaluate(model, dataset["x_test"], dataset["y_test"], config.augment, info.norm,
                                          eval_batch_size, output_size=info.input_shape[:2])


def test(checkpoint, data_dir=None, output=None, eval_batch_size=500, model_name=None):
    """``--mode test``: the checkpoint's model on its dataset's test set, preprocessed as in training. Writes the
    softmax probabilities, a CSV per image, the confusion matrix, test_metrics.json and TensorBoard's test/ into
    ``output`` (default: the run folder; runs/<name>_test for a shipped folder); returns the metrics."""
    model, model_path, run_dir, config, info = load_checkpoint(checkpoint, model_name)
    dataset, result = evaluate_run(model, config, info, data_dir, eval_batch_size)
    output = output or run_folder.default_test_output(run_dir)
    written = cifar10_test.write_predictions(
        result["probabilities"], dataset["y_test"], info.class_names, output, files=dataset.get("files_test"))
    metrics = {k: result[k] for k in ("loss", "accuracy", "error")}
    step = trained_step(run_dir, model_path)
    metrics.update(model_file=os.path.abspath(model_path), trained_step=step, num_images=int(len(dataset["y_test"])),
                   pretrained=config.pretrained)
    fileio.write_json(os.path.join(output, run_folder.TEST_METRICS), metrics)
    # TensorBoard's test/ goes beside the run's train/, or into --output (the run folder is then left alone).
    summaries.write_evaluation_images(output, "test", step, dataset["x_test"], dataset["y_test"],
                                      result["probabilities"], info.class_names)
    summaries.write_test_scalars(output, step, metrics)
    print(f"Test on {len(dataset['y_test'])} images with {model_path}: loss {result['loss']:.4f}, "
          f"accuracy {result['accuracy']:.4f}, error {result['error']:.4f}")
    print(f"Wrote {written['probabilities']} {list(result['probabilities'].shape)}, {written['predictions']} and "
          f"{written['confusion_matrix']}")
    return metrics


def trained_step(run_dir, model_path):
    """The training step a run's saved model was taken at: the last report for latest.keras; for best.keras
    the first report with the highest validation accuracy (it is saved only when the accuracy improves)."""
    path = os.path.join(run_dir, run_folder.METRICS)
    if not os.path.exists(path):
        return 0
    metrics = run_folder.read_csv(path, numeric=("step", "val_accuracy"))
    if not len(metrics):
        return 0
    if os.path.basename(model_path) == run_folder.BEST_MODEL:
        return int(metrics["step"].iloc[int(metrics["val_accuracy"].fillna(-1.0).to_numpy().argmax())])
    return int(metrics["step"].iloc[-1])


def predict(checkpoint, images, top_k=3, output=None, eval_batch_size=500, model_name=None):
    """``--mode predict``: prints each image's ``top_k`` classes; ``output`` (a CSV) gets every class's probability.
    Returns (the readable image files, their probabilities [images, classes])."""
    if not images:
        raise UsageError("--mode predict needs --images FILE_OR_FOLDER ...")
    model, model_path, _, config, info = load_checkpoint(checkpoint, model_name)
    files = datasets.list_images(images)
    pixels, readable = datasets.read_images(files, info.stored_size, info.input_shape[-1],
                                            augment.recipe(config.augment).crop_to_evaluate)
    probabilities = cifar10_test.evaluate(
        model, pixels, None, config.augment, info.norm, eval_batch_size,
        output_size=info.input_shape[:2])["probabilities"]
    names = info.class_names
    top_k = min(top_k, len(names))
    print(f"{model_path} ({config.model}, {len(names)} classes):")
    for path, row in zip(readable, probabilities):
        best = np.argsort(-row)[:top_k]
        print(f"{path}: " + ", ".join(f"{names[i]} {row[i]:.3f}" for i in best))
    if output:
        cifar10_test.write_image_predictions(output, readable, probabilities, names)
        print(f"Wrote every class's probability for {len(readable)} image(s) to {output}")
    return readable, probabilities


def augment_preview(config, images=6, versions=5, output=None):
    """``--mode augment_preview``: Liang's Fig. 5 for any recipe (``config``'s dataset, model and augmentation):
    ``images`` originals in the first column, ``versions`` augmented versions beside them, as a PNG; returns its
    path (default augment_preview_<dataset>_<augment>.png)."""
    recipe_name = run_config.recipe(config)
    data, _ = load_data(config)
    _, model_size = input_sizes(config)
    # Spread over the training set, so a class-sorted image folder shows several classes.
    picked = np.linspace(0, len(data["x_train"]) - 1, min(images, len(data["x_train"]))).astype(int)
    originals = tf.gather(data["x_train"], picked).numpy()
    norm = augment.normalization(recipe_name, data["x_train"], resnet.keras_preprocessing(config.model))
    grid = augment.augmentation_grid(originals, recipe_name, norm, versions, config.seed, model_size)
    output = output or f"augment_preview_{config.dataset}_{recipe_name}.png"
    height, width = grid.shape[0] // len(originals), grid.shape[1] // (versions + 1)
    figure, axis = fileio.pyplot().subplots(figsize=(1.4 * (versions + 1), 1.4 * len(originals) + 0.6))
    axis.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", interpolation="nearest")
    axis.set_xticks([width * (i + 0.5) for i in range(versions + 1)],
                    ["original"] + [f"aug {i + 1}" for i in range(versions)])
    axis.set_yticks([height * (i + 0.5) for i in range(len(originals))],
                    [data["class_names"][label] for label in data["y_train"][picked]])
    axis.set_title(f"--augment {recipe_name} on {config.dataset} (cf. Liang 2020, Fig. 5)")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fileio.save_figure(figure, output)
    print(f"Wrote {output}: {len(originals)} images x (1 original + {versions} augmented), --augment {recipe_name}")
    return output
