"""Training throughput of one model fed three ways, measured side by side in one process.

  python benchmarks/throughput.py --model resnet20 --batch_size 128 --steps 60

(a) default: the suite's tf.data pipeline (uint8 in memory, batched
    normalisation + pad/crop/flip in tf.data, prefetch);
(b) imagedatagenerator: the same model fed by Keras ImageDataGenerator.flow
    synchronously, one batch made per step, as Liang 2020's code does (and,
    for reference, the suite's --augment imagedatagenerator, which prefetches);
(c) ceiling: one pre-normalised batch held in memory, no augmentation: what the
    model alone can do.
Plus the default input pipeline alone, with no model. Every mode runs the same
training step of the engine (cifar10_train.build_step_functions); each is
warmed up (tracing, first batches) before timing. Ratios are printed at the end.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import cifar10_input  # noqa: E402
import cifar10_train  # noqa: E402
import resnet  # noqa: E402


def load_images(data_dir, count):
    if data_dir:
        data = cifar10_input.load_cifar10(data_dir, download=False)
        return data["x_train"][:count], data["y_train"][:count], f"CIFAR-10 from {data['source']}"
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    return images, rng.randint(0, 10, size=count).astype(np.int32), "random uint8 images (speed does not depend on content)"


def time_training(train_steps_fn, dataset, steps, warmup, steps_per_execution):
    iterator = iter(dataset)
    train_steps_fn(iterator, tf.constant(warmup)).numpy()
    done, start = 0, time.perf_counter()
    while done < steps:
        n = min(steps_per_execution, steps - done)
        train_steps_fn(iterator, tf.constant(n)).numpy()  # .numpy() waits for the steps to finish
        done += n
    return time.perf_counter() - start


def time_pipeline(dataset, batches):
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=tuple(resnet.MODELS), default="resnet20", help="model to train")
    parser.add_argument("--batch_size", type=int, default=128, help="global batch size")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per mode")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per mode first (tracing, buffers)")
    parser.add_argument("--steps_per_execution", type=int, default=1, help="steps per tf.function call")
    parser.add_argument("--data_dir", default=None, help="real CIFAR-10 to use (default: random images, same speed)")
    parser.add_argument("--num_images", type=int, default=50000, help="images held in memory")
    args = parser.parse_args(argv)

    images, labels, source = load_images(args.data_dir, args.num_images)
    mean, std = cifar10_input.channel_stats(images)
    print(f"{args.model}, batch {args.batch_size}, {args.steps} timed steps per mode after {args.warmup} warm-up; "
          f"{len(images)} images: {source}; TF {tf.__version__}, {os.cpu_count()} CPU cores, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")

    model = resnet.build_model(args.model, images.shape[1:], 10)
    optimizer = tf.keras.optimizers.SGD(0.01, momentum=0.9)
    train_steps_fn, _ = cifar10_train.build_step_functions(
        model, optimizer, tf.distribute.get_strategy(), args.batch_size)

    one_batch = (cifar10_input.normalize(images[: args.batch_size], mean, std), labels[: args.batch_size])
    feeds = {
        "default": cifar10_input.make_train_dataset(images, labels, args.batch_size, mean, std, "he"),
        "imagedatagenerator": cifar10_input.imagedatagenerator_dataset(
            images, labels, args.batch_size, mean, std, overlap=False),
        "imagedatagenerator_prefetched": cifar10_input.imagedatagenerator_dataset(
            images, labels, args.batch_size, mean, std),
        "ceiling": tf.data.Dataset.from_tensors(one_batch).repeat(),
    }
    rates = {}
    for name, dataset in feeds.items():
        seconds = time_training(train_steps_fn, dataset, args.steps, args.warmup, args.steps_per_execution)
        rates[name] = args.steps * args.batch_size / seconds
        print(f"  train  {name:<30s} {rates[name]:8.1f} images/s")
    pipeline_batches = 200
    seconds = time_pipeline(feeds["default"], pipeline_batches)
    rates["pipeline_only"] = pipeline_batches * args.batch_size / seconds
    print(f"  input pipeline alone (no model)       {rates['pipeline_only']:8.1f} images/s")
    generator_seconds = time_pipeline(feeds["imagedatagenerator"], 20) / 20
    model_seconds = args.batch_size / rates["ceiling"]
    print(f"  ImageDataGenerator alone: {generator_seconds * 1000:.1f} ms/batch; model step: {model_seconds * 1000:.1f} ms")
    print("ratios:")
    print(f"  default / imagedatagenerator = {rates['default'] / rates['imagedatagenerator']:.2f}x  (target >= 1.6; "
          f"on this machine at most {(model_seconds + generator_seconds) / model_seconds:.2f}x, "
          f"since the generator adds only its own time to each step)")
    print(f"  default / ceiling            = {rates['default'] / rates['ceiling']:.1%}  (target >= 95%)")
    print(f"  pipeline alone / default     = {rates['pipeline_only'] / rates['default']:.1f}x  (target >= 10)")
    return rates


if __name__ == "__main__":
    main()
