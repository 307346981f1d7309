"""The hardware-dependent choices of a run: what ``auto`` means for precision and steps per call on this machine.

Below the engine and the run contract (``run_config.resolve`` asks it what ``--mixed_precision auto`` resolves
to); the engine passes in how to time a training step (``cifar10_train.auto_precision``).
"""

import json
import os
import platform
import sys
import time

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import tensorflow as tf

import fileio
import provenance

SECONDS_PER_CALL = 0.25  # steps_per_execution=auto aims at tf.function calls of about this length


# ONEDNN_MAX_CPU_ISA values that still let oneDNN use bfloat16 instructions (oneDNN's names; unset means all).
BFLOAT16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10", "ALL", "DEFAULT")


def onednn_isa_cap():
    """ONEDNN_MAX_CPU_ISA when it keeps oneDNN from bfloat16 instructions (AVX2, AVX512_CORE, ...), else None.
    TensorFlow still sends bfloat16 convolutions to oneDNN then, which refuses them: the op fails mid-run."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return cap if cap and not cap.startswith(BFLOAT16_ISAS) else None


def bfloat16_blocked():
    """ONEDNN_MAX_CPU_ISA when it keeps this machine from bfloat16 (no GPU, oneDNN capped below it), else None: a
    bfloat16 op there fails in oneDNN, and in a bare matmul ends the whole process."""
    return onednn_isa_cap() if not tf.config.list_physical_devices("GPU") else None


def cpu_has_native_bfloat16():
    """True when the CPU has bfloat16 instructions (AVX512_BF16 or AMX) that oneDNN may use, where mixed bfloat16
    pays."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return (" avx512_bf16" in flags or " amx_bf16" in flags) and onednn_isa_cap() is None


def resolve_mixed_precision(requested):
    """``auto`` -> on GPUs, by the oldest GPU's compute capability: bfloat16 from 8.0 (Ampere; as fast as
    float16 and needs no loss scaling), float16 from 7.0 (tensor cores), off below (float16 is slower there);
    on CPUs, bfloat16 with native bfloat16 instructions (1.06-2.56x faster here, see benchmarks/README.md),
    else off. An explicit float16 request without a GPU is refused: it is slower."""
    gpus = tf.config.list_physical_devices("GPU")
    has_gpu = bool(gpus)
    if requested == "auto" and has_gpu:
        capability = min(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
                         for gpu in gpus)
        return "bfloat16" if capability >= (8, 0) else ("float16" if capability >= (7, 0) else "off")
    if requested == "auto":
        return "bfloat16" if cpu_has_native_bfloat16() else "off"
    if requested == "float16" and not has_gpu:
        raise ValueError("--mixed_precision float16 needs a GPU (on CPU it is slower); use bfloat16 or off")
    cap = bfloat16_blocked() if requested == "bfloat16" else None
    if cap:
        raise ValueError(f"--mixed_precision bfloat16 with ONEDNN_MAX_CPU_ISA={cap}: oneDNN refuses "
                         "bfloat16 convolutions below AVX512_CORE_BF16 (the run would fail at its first step); "
                         "use --mixed_precision off, or unset ONEDNN_MAX_CPU_ISA")
    return requested


def precision_candidates():
    """The precisions ``auto`` may pick on this machine, the rule's choice first (see resolve_mixed_precision)."""
    rule = resolve_mixed_precision("auto")
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        others = ["off"] if rule == "bfloat16" else []  # without native bfloat16 it is emulated: far slower
    else:
        others = ["off"] if rule != "off" else []
    return [rule] + others


def calibration_cache_path():
    return os.environ.get("RESNET_SUITE_CACHE", os.path.join(os.path.expanduser("~"), ".keras", "resnet_suite",
                                                             "precision.json"))


def auto_precision(config, input_shape, replicas, measure):
    """``--mixed_precision auto`` by measurement: (choice, {precision: images/s} or None, where it came from).

    The first time a model, options, input, per-replica batch and machine are seen, a few timed training steps
    in each candidate precision decide (about 15 s for ResNet-20); the answer is cached (``calibration_cache_path``),
    so later runs start at once, unless other processes kept the CPU busy (then it is measured again next time).
    Where only one precision can pay, or RESNET_SUITE_CALIBRATE=0, the rule decides
    (CPU flags, GPU compute capability). ``measure(precision) -> images/s`` times the model (the engine's step).
    """
    candidates = precision_candidates()
    if len(candidates) == 1 or os.environ.get("RESNET_SUITE_CALIBRATE") == "0":
        return candidates[0], None, "rule"
    batch = config.batch_size // replicas
    key = json.dumps([platform.node(), provenance.cpu_signature(), os.cpu_count(),
                      [d.name for d in tf.config.list_physical_devices("GPU")], tf.__version__, config.model,
                      sorted(config.model_options.items()), list(input_shape), batch, candidates])
    path = calibration_cache_path()
    cache = _read_cache(path)
    if key in cache:
        return cache[key]["choice"], cache[key]["images_per_sec"], f"cached in {path}"
    busy = busy_warning()
    rates = {precision: round(float(measure(precision)), 1) for precision in candidates}
    choice = max(rates, key=rates.get)
    if busy:  # both timed under the same load, so the choice stands; the rates are low, so they are not kept
        print(f"warning: {busy}; the precision measurement is not cached", file=sys.stderr)
        return choice, rates, "measured now on a busy machine, not cached"
    cache[key] = {"choice": choice, "images_per_sec": rates, "measured": time.strftime("%Y-%m-%d")}
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fileio.write_json(path, cache)
    except OSError as error:  # a read-only home: the run goes on, the next one measures again
        print(f"warning: cannot keep the precision measurement in {path} ({error.strerror})", file=sys.stderr)
        return choice, rates, "measured now, not cached"
    return choice, rates, f"measured now, cached in {path}"


def _read_cache(path):
    """The calibration cache; an unreadable one is reported in one line and measured afresh."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as handle:
            cache = json.load(handle)
        if isinstance(cache, dict) and all(isinstance(v, dict) and "choice" in v for v in cache.values()):
            return cache
    except (OSError, ValueError):
        pass
    print(f"warning: ignoring the unreadable precision cache {path}; measuring again", file=sys.stderr)
    return {}


def auto_steps_per_execution(seconds_per_step):
    """``--steps_per_execution auto``: as many steps per tf.function call as fill about SECONDS_PER_CALL
    (1 for ResNet-20 here, about 30 for LeNet-5), at most 100."""
    return int(min(100, max(1, SECONDS_PER_CALL / max(seconds_per_step, 1e-6))))


BUSY = 0.25  # share of the CPUs other processes may use before a speed measurement says it is low


def _cpu_times(path="/proc/stat"):
    """(busy, total) jiffies of all CPUs since boot (Linux), or None where the file is not there."""
    try:
        with open(path) as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = sum(fields[3:5])  # idle and iowait
    return sum(fields) - idle, sum(fields)


def busy_share(seconds=0.5):
    """The share of all CPUs that other processes use, measured while this one sleeps for ``seconds``: a speed
    taken beside a training run (the suite's tests, a second run) is low, and should say so. None off Linux."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def busy_warning(seconds=0.5):
    """'' on an idle machine, else a sentence saying how busy it was (for plans and benchmarks)."""
    share = busy_share(seconds)
    if share is None or share < BUSY:
        return ""
    return (f"BUSY: other processes used {share:.0%} of the {os.cpu_count()} CPUs when this was measured, so the "
            f"rates are low; measure again on an idle machine")


def describe():
    """The machine in a few words: CPU model, cores, GPUs."""
    gpus = tf.config.list_physical_devices("GPU")
    devices = f", {len(gpus)} GPU(s)" if gpus else ", no GPU"
    return f"{provenance.cpu_description()}, {os.cpu_count()} CPU cores{devices}"
