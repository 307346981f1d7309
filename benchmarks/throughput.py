"""Training throughput, every feed and speed option side by side in one process.

  python -m benchmarks.throughput --model resnet20 --batch_size 128 --steps 60 --data_dir ../shared/datasets/cifar10

For each model, images/s of the engine's training step (cifar10_train.build_step_functions) fed:
  default             the suite's tf.data pipeline (uint8 in memory, gathered, augmented and
                      normalised in parallel inside tf.data, prefetched), float32, no XLA;
  imagedatagenerator  Keras ImageDataGenerator.flow, one batch made per step when the step asks
                      for it, as Liang 2020's code does (the paper's way);
  ceiling             one pre-normalised batch held in memory, no augmentation: the model alone;
  mixed_precision     the default pipeline with the mixed precision `auto` picks here
                      (bfloat16 on CPUs with native bfloat16, float16 on GPUs);
  xla                 the default pipeline with the step compiled by XLA;
  auto                the default pipeline with what --mixed_precision/--jit_compile/
                      --steps_per_execution auto pick;
  keras_bn(_mixed)    the default pipeline (in float32, or in the mixed precision row's) with
                      Keras' own BatchNormalization instead of the suite's fused one.
Then the input pipeline alone (no model), and the ratios the issue sets targets for. Every row
is warmed up (tracing, first batches) before it is timed; then the rows take turns for
--rounds rounds in one process and each row's median round counts.

Beside each rate, the share of the machine's peak it uses (MFU): images/s x FLOPs per training image
(counted from the model's layers: resnet.training_flops_per_image) / the peak, measured first as the
speed of a large matmul in float32 and bfloat16. For resnet20, a last row runs the same training step
in PyTorch eager (benchmarks/pytorch_peer.py) when PyTorch is importable, or says how to get it.
"""

import contextlib
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time


if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tf_setup  # noqa: F401,E402  (first: the environment's defaults, a quiet TensorFlow import)
import cifar10_main  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import api  # noqa: E402
import augment  # noqa: E402
import cifar10_input  # noqa: E402
import cifar10_train  # noqa: E402
import hardware  # noqa: E402
import resnet  # noqa: E402
import run_config  # noqa: E402

FEEDS = ("default", "imagedatagenerator", "ceiling", "mixed_precision", "xla", "auto", "keras_bn",
         "keras_bn_mixed")
MIXED_FEEDS = ("mixed_precision", "keras_bn_mixed")  # in mixed precision: bfloat16 on a CPU


def load_images(data_dir, count, shape):
    if data_dir:
        data = cifar10_input.load_cifar10(data_dir, download=False)
        return data["x_train"][:count], data["y_train"][:count], f"CIFAR-10 from {data['source']}"
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(count, *shape), dtype=np.uint8)
    labels = rng.randint(0, 10, size=count).astype(np.int32)
    return images, labels, "random uint8 images (speed does not depend on content)"


def time_training(train_steps_fn, iterator, steps, steps_per_execution):
    done, start = 0, time.perf_counter()
    while done < steps:
        n = min(steps_per_execution, steps - done)
        train_steps_fn(iterator, tf.constant(n))[0].numpy()  # .numpy() waits for the steps to finish
        done += n
    return time.perf_counter() - start


def pipeline_dataset(images, labels, batch, norm):
    """The default row's input pipeline, timed alone (no model)."""
    return cifar10_input.make_train_dataset(images, labels, batch, norm, "he")


def time_pipeline(dataset, batches):
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return time.perf_counter() - start


def _best_gflops(operation, flops, repeats):
    operation().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        operation().numpy()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def matmul_peak(dtype, size, repeats=3):
    """GFLOP/s of the best of ``repeats`` size x size matmuls in ``dtype``."""
    a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)), dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[0], tf.float32)))
    return _best_gflops(product, 2 * size ** 3, repeats)


def conv_peak(dtype, repeats=3, batch=64, side=16, channels=256):
    """GFLOP/s of the best of ``repeats`` 3x3 convolutions (channels -> channels, side x side, a batch)."""
    x = tf.cast(tf.random.stateless_normal((batch, side, side, channels), seed=(5, 6)), dtype)
    w = tf.cast(tf.random.stateless_normal((3, 3, channels, channels), seed=(7, 8)), dtype)
    conv = tf.function(lambda: tf.reduce_sum(tf.cast(tf.nn.conv2d(x, w, 1, "SAME")[0, 0, 0], tf.float32)))
    return _best_gflops(conv, 2 * batch * side * side * channels * channels * 9, repeats)


def runnable_feeds(feeds):
    """The requested rows this machine can run: without GPUs the mixed rows are bfloat16, left out (and said)
    under a bfloat16-blocking ONEDNN_MAX_CPU_ISA."""
    cap = hardware.bfloat16_blocked()
    if not cap:
        return list(feeds)
    skipped = [feed for feed in feeds if feed in MIXED_FEEDS]
    if skipped:
        print(f"not measured: {', '.join(skipped)} (bfloat16, which ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN from; "
              "unset it to measure them)")
    return [feed for feed in feeds if feed not in MIXED_FEEDS]


def measure_peaks(size):
    """The machine's measured peak per precision: the faster of a large matmul and a large 3x3 convolution
    (oneDNN's convolutions beat TensorFlow's float32 matmul on the EPYC here, so a matmul alone put
    AlexNet's MFU above 100%)."""
    dtypes = {"off": tf.float32} if hardware.bfloat16_blocked() else {"off": tf.float32, "bfloat16": tf.bfloat16}
    if tf.config.list_physical_devices("GPU"):
        dtypes["float16"] = tf.float16
    measured = {p: (matmul_peak(d, size), conv_peak(d)) for p, d in dtypes.items()}
    print(f"machine peak, measured (best of a {size}x{size} matmul and a 3x3 256-channel convolution): "
          + ", ".join(f"{'float32' if p == 'off' else p} {max(m):.0f} GFLOP/s (matmul {m[0]:.0f}, conv {m[1]:.0f})"
                      for p, m in measured.items()))
    return {p: max(m) for p, m in measured.items()}


def mfu(images_per_sec, flops_per_image, peak_gflops):
    """The share of the measured peak a training rate uses."""
    return images_per_sec * flops_per_image / (peak_gflops * 1e9)


def measure_model(name, args, images, labels, peaks):
    """images/s for each requested feed; returns {feed: images/s} plus the pipeline-alone figure."""
    norm = augment.normalization("he", images)
    batch = args.batch_size
    auto_precision = cifar10_train.auto_precision(run_config.RunConfig(model=name, batch_size=batch),
                                                  images.shape[1:])[0]
    mixed = auto_precision if auto_precision != "off" else "bfloat16"
    settings = {  # feed -> (precision, XLA)
        "default": ("off", False), "imagedatagenerator": ("off", False), "ceiling": ("off", False),
        "mixed_precision": (mixed, False), "xla": ("off", True),
        "auto": (auto_precision, False),  # run_config.resolve: jit_compile auto -> off
        "keras_bn": ("off", False), "keras_bn_mixed": (mixed, False),
    }
    one_batch = (augment.normalize(images[:batch], norm), labels[:batch])
    runners = {}
    model = resnet.build_model(name, images.shape[1:], 10)
    flops = resnet.training_flops_per_image(model)
    print(f"  {name:<14s} {flops / 1e9:.4f} GFLOP per training image (2 FLOPs x 3 passes over "
          f"{resnet.multiply_adds(model) / 1e6:.1f}M multiply-adds, 2 over the first layer's)")
    for feed in args.feeds:
        precision, jit = settings[feed]
        config = run_config.RunConfig(model=name, mixed_precision=precision)
        with resnet.keras_batch_norm() if feed.startswith("keras_bn") else contextlib.nullcontext():
            model = cifar10_train.build_for_training(config, images.shape[1:], 10)
        optimizer = cifar10_train.make_optimizer(config, precision == "float16", 0.01)
        train_steps_fn, _ = cifar10_train.build_step_functions(
            model, optimizer, tf.distribute.get_strategy(), batch, precision == "float16", jit)
        if feed == "imagedatagenerator":
            dataset = cifar10_input.imagedatagenerator_dataset(images, labels, batch, norm, overlap=False)
        elif feed == "ceiling":
            dataset = tf.data.Dataset.from_tensors(one_batch).repeat()
        else:
            dataset = cifar10_input.make_train_dataset(images, labels, batch, norm, "he")
        iterator = iter(dataset)
        train_steps_fn(iterator, tf.constant(args.warmup))[0].numpy()  # tracing and the first batches
        steps_per_execution = args.steps_per_execution
        if feed == "auto":  # the engine's rule, sized from a timed step
            steps_per_execution = hardware.auto_steps_per_execution(time_training(train_steps_fn, iterator, 2, 1) / 2)
        runners[feed] = (train_steps_fn, iterator, steps_per_execution)
    # Rows take turns, round after round, so a slow moment of the machine hits them all alike.
    seconds = {feed: [] for feed in runners}
    per_round = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for feed, (train_steps_fn, iterator, steps_per_execution) in runners.items():
            seconds[feed].append(time_training(train_steps_fn, iterator, per_round, steps_per_execution))
    rates = {}
    for feed, times in seconds.items():
        precision, jit = settings[feed]
        rates[feed] = per_round * batch / float(np.median(times))
        print(f"  {name:<14s} {feed:<20s} precision {precision:<9s} xla {'on ' if jit else 'off'} "
              f"steps/call {runners[feed][2]:<3d} {rates[feed]:9.1f} images/s  MFU "
              f"{mfu(rates[feed], flops, peaks[precision]):6.1%}", flush=True)
    if "default" in rates:
        batches = 200
        rates["pipeline_only"] = batches * batch / time_pipeline(pipeline_dataset(images, labels, batch, norm), batches)
        print(f"  {name:<14s} {'input pipeline alone':<59s}{rates['pipeline_only']:9.1f} images/s")
    if name == "resnet20" and args.peer_steps:
        peer = measure_peer(args, images, labels)
        if peer:
            rates["pytorch"] = peer
            print(f"  {name:<14s} {'pytorch eager (peer)':<20s} precision off       xla off steps/call 1   "
                  f"{peer:9.1f} images/s  MFU {mfu(peer, flops, peaks['off']):6.1%}", flush=True)
    return rates


def measure_peer(args, images, labels):
    """The same ResNet-20 step in PyTorch eager, or None with a line saying how to get PyTorch.

    It runs in a process of its own, on the same images: inside this one, TensorFlow's idle thread pools
    and PyTorch's OpenMP threads compete for the cores (on a 2-core EPYC the peer measured 278 images/s
    here against 559 alone), which would flatter TensorFlow.
    """
    if importlib.util.find_spec("torch") is None:
        print(f"  {'resnet20':<14s} pytorch eager (peer): PyTorch is not installed here (never a requirement); "
              "to measure it beside TensorFlow:\n      python -m venv --system-site-packages .venv-torch && "
              ".venv-torch/bin/pip install torch==2.13.0 && .venv-torch/bin/python -m benchmarks.throughput "
              "--models resnet20")
        return None
    with tempfile.TemporaryDirectory() as folder:
        data = os.path.join(folder, "images.npz")
        np.savez(data, images=np.asarray(images), labels=np.asarray(labels))
        command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytorch_peer.py"),
                   data, "--batch_size", str(args.batch_size), "--steps", str(args.peer_steps),
                   "--rounds", str(args.rounds), "--warmup", str(args.warmup)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        print(f"  {'resnet20':<14s} pytorch eager (peer) failed: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return float(result.stdout.split()[-1])


def print_ratios(name, rates):
    def ratio(a, b, text, target=""):
        if a in rates and b in rates:
            print(f"  {name:<14s} {text:<34s} {rates[a] / rates[b]:6.2f}x  {target}")

    ratio("default", "imagedatagenerator", "default / imagedatagenerator", "(target >= 1.6)")
    ratio("default", "ceiling", "default / ceiling", "(target >= 0.95)")
    ratio("pipeline_only", "default", "pipeline alone / default", "(target >= 10)")
    ratio("mixed_precision", "default", "mixed precision / float32")
    ratio("xla", "default", "XLA / no XLA")
    ratio("default", "keras_bn", "fused / Keras batch norm, float32")
    ratio("mixed_precision", "keras_bn_mixed", "fused / Keras batch norm, mixed")
    ratio("auto", "default", "auto / all off", "(target >= 1: auto never slows)")
    ratio("default", "pytorch", "default / pytorch eager (peer)", "(target >= 1)")
    ratio("mixed_precision", "pytorch", "mixed precision / pytorch eager")


def main(argv=None):
    parser = cifar10_main.OneLineParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=tuple(resnet.MODELS), default=["resnet20"],
                        help="models to measure, one after another")
    parser.add_argument("--feeds", nargs="+", choices=FEEDS, default=list(FEEDS), help="rows to measure")
    parser.add_argument("--batch_size", type=int, default=128, help="global batch size")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per row, over all rounds")
    parser.add_argument("--rounds", type=int, default=3, help="rows take turns this many times; the median counts")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per row first (tracing, buffers)")
    parser.add_argument("--steps_per_execution", type=int, default=1,
                        help="steps per tf.function call for every row but auto (which sizes its own)")
    parser.add_argument("--data_dir", default=None, help="real CIFAR-10 to use (default: random images, same speed)")
    parser.add_argument("--num_images", type=int, default=50000, help="images held in memory")
    parser.add_argument("--matmul_size", type=int, default=4096, help="side of the matmul that measures the peak")
    parser.add_argument("--peer_steps", type=int, default=None,
                        help="timed steps of the PyTorch row (resnet20 only; default --steps; 0: no peer row)")
    args = parser.parse_args(argv)
    if args.peer_steps is None:
        args.peer_steps = args.steps

    try:
        return measure(args)
    except api.USER_ERRORS as error:
        parser.error(str(error))


def measure(args):
    images, labels, source = load_images(args.data_dir, args.num_images, (32, 32, 3))
    print(f"batch {args.batch_size}, {args.steps} timed steps per row after {args.warmup} warm-up; {len(images)} "
          f"images: {source}; TF {tf.__version__}, {os.cpu_count()} CPU cores, native bfloat16: "
          f"{hardware.cpu_has_native_bfloat16()}, oneDNN: TF_ENABLE_ONEDNN_OPTS="
          f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}, GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    busy = hardware.busy_warning()
    if busy:
        print(f"warning: {busy}")
    peaks = measure_peaks(args.matmul_size)
    args.feeds = runnable_feeds(args.feeds)
    results = {}
    for name in args.models:
        results[name] = measure_model(name, args, images, labels, peaks)
    print("ratios:")
    for name, rates in results.items():
        print_ratios(name, rates)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak_mb:.0f} MB (the ImageDataGenerator row holds a float32 copy)")
    return results


if __name__ == "__main__":
    main()
