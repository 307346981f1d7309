"""Where a run's numbers came from: the code, the machine, the software and the data.

Every time a run starts or resumes, the engine appends one session to its config.json: the git
commit (and the tracked files that differed from it, if any), the CPU model and its vector extension, the GPUs,
the versions of Python, TensorFlow, Keras and NumPy, the sha256 of the dataset file(s), the command line and the
step it started from. A run that spans machines or commits lists each.
"""

import datetime
import functools
import hashlib
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


# Results the experiments write into the checkout: their changes are data, not uncommitted code.
RESULT_PATHS = (":!experiments/results", ":!experiments/results_quick")


def git_state(root=ROOT):
    """(commit, uncommitted) of the checkout holding this code: the tracked paths that differ from the commit, ()
    when clean; ("unknown", None) outside a git checkout.

    A long run's own committed results changing under experiments/results do not count; the paths let a reader
    tell a changed README from changed training code.
    """
    def git(*args):
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", *RESULT_PATHS)
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, tuple(line[3:].split(" -> ")[-1] for line in status.splitlines() if line.strip())


@functools.lru_cache(maxsize=None)
def loaded_code_state():
    """git_state() of this checkout when this process first asked, which is when its first run started.

    A long process keeps the code it imported: commits made while it trains must not be credited with
    its runs and reports (a Liang run of 2026-11-24 credited its report to a commit made mid-run)."""
    return git_state()


def _first_processor(cpuinfo):
    """The lines /proc/cpuinfo gives for its first processor (every core's are alike), or None without the file."""
    try:
        with open(cpuinfo) as handle:
            return handle.read().split("\n\n")[0].splitlines()
    except OSError:
        return None


def _field(lines, names):
    """The value of the first of ``lines`` whose field is one of ``names``, or None."""
    return next((line.split(":", 1)[1].strip() for line in lines or [] if line.split(":")[0].strip() in names), None)


def cpu_model(cpuinfo="/proc/cpuinfo", lines=None):
    """The CPU's model name from /proc/cpuinfo (what `lscpu` shows), else what platform knows."""
    return (_field(lines or _first_processor(cpuinfo), ("model name",))
            or platform.processor() or platform.machine())


# The widest vector instructions first: TensorFlow's CPU kernels run about twice as fast with AVX-512 as with AVX2
# on machines that /proc/cpuinfo names alike ("AMD EPYC"), so a wall time means little without them.
VECTOR_EXTENSIONS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("asimd", "NEON"))


def cpu_description(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name with its widest vector extension, as reports print it: "AMD EPYC (AVX-512)"."""
    lines = _first_processor(cpuinfo)
    flags = (_field(lines, ("flags", "Features")) or "").split()
    extension = next((name for flag, name in VECTOR_EXTENSIONS if flag in flags), None)
    return f"{cpu_model(lines=lines)} ({extension})" if extension else cpu_model(lines=lines)


def cpu_signature():
    """The CPU's model name plus a short hash of its family, model, stepping and flags: two machines sold under
    one name ("AMD EPYC") but of other generations differ here."""
    fields = ("cpu family", "model", "stepping", "flags")
    lines = _first_processor("/proc/cpuinfo")
    if lines is None:
        return cpu_model()
    signed = [line for line in lines if line.split(":")[0].strip() in fields]
    return f"{cpu_model(lines=lines)} {hashlib.sha256(chr(10).join(signed).encode()).hexdigest()[:12]}"


@functools.lru_cache(maxsize=8)
def _sha256(path, size, mtime):
    digest = hashlib.sha256()
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for folder, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            file_path = os.path.join(folder, name)
            digest.update(os.path.relpath(file_path, path).encode() + b"\0")
            digest.update(_sha256(file_path, *_stamp(file_path)).encode())
    return digest.hexdigest()


def _stamp(path):
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime


def data_sha256(path):
    """sha256 of a dataset file, or of a folder (every file's relative name and sha256, in sorted order)."""
    if not path or not os.path.exists(path):
        return None
    return _sha256(os.path.abspath(path), *_stamp(path))


def command_line(argv=None):
    """The command that started this process, as typed from the checkout (``python -m experiments.x ...``)."""
    argv = list(sys.argv if argv is None else argv)
    program = os.path.relpath(os.path.abspath(argv[0]), ROOT) if argv and argv[0] else "python"
    if program.split(os.sep)[0] in ("experiments", "benchmarks") and program.endswith(".py"):
        program = "-m " + program[:-3].replace(os.sep, ".")
    return " ".join(["python", program, *argv[1:]])


def session(data_source, from_step):
    """One start (or resume) of a run, as a JSON-able dict."""
    import keras
    import numpy as np
    import tensorflow as tf

    commit, uncommitted = loaded_code_state()
    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "from_step": int(from_step),
        "commit": commit,
        "dirty": None if uncommitted is None else bool(uncommitted),
        "uncommitted": list(uncommitted or ()),
        "cpu": cpu_description(),
        "cpu_cores": os.cpu_count(),
        "gpus": [gpu.name for gpu in tf.config.list_physical_devices("GPU")],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default"),
        "command": command_line(),
        "data_sha256": data_sha256(data_source),
    }
