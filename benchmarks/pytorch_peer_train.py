"""The peer's accuracy: He et al.'s ResNet-20 recipe trained in PyTorch on the suite's data files (issue 33).

Evidence that tells the data from the code: the same recipe, the same CIFAR-10 files and normalisation, another
framework's kernels, initialisation and random streams. What it shares with the suite's `he` runs: ResNet-20 with
option-A shortcuts (``pytorch_peer.ResNet20``, 0.27M parameters, akamaster's count), per-channel mean/std of the
training images on the 0-255 scale (``augment.channel_stats``' arithmetic), 4-pixel padding of the normalised image
(the mean colour, He's text and the suite's; ``--pad black`` pads the raw image as torchvision's RandomCrop does),
random 32x32 crop and horizontal flip, a new permutation every epoch, batch 128, SGD momentum 0.9 with weight decay
1e-4 coupled into the gradient (``--weight_decay_scope`` kernels or all, as the suite's flag), learning rate 0.1
divided by 10 at 50% and 75% of the steps (the suite's step-for-step schedule), the test set evaluated in inference
mode every ``--report_freq`` steps. What differs and cannot be removed: PyTorch's kernels and its random streams
(another initialisation and data order for the same seed), PyTorch's initialisers as akamaster uses them
(kaiming-normal conv and dense kernels, uniform dense bias; the suite draws truncated He-normal kernels and a zero
bias), the zero channels of option A appended after the kept ones (akamaster splits them; a permutation). Its
stride-2 convolutions pad every side, as PyTorch does (``--conv_padding same`` pads as TensorFlow does).

It writes the suite's run-folder files, so the experiment reports read it as any run: ``metrics.csv`` (the engine's
columns), ``timing.csv`` and ``peer_config.json`` (settings and one entry per session: torch version, CPU, command,
start step, date). ``peer_state.pt`` holds the model, optimizer and step after each report: the same command
resumes, and the batch stream is a function of the seed and the step, so a resumed run sees the batches an
uninterrupted one would. PyTorch is never a requirement of the suite; run it in its own virtual environment:

  python -m venv .venv-peer && .venv-peer/bin/pip install torch==2.13.0 numpy pandas
  .venv-peer/bin/python -m benchmarks.pytorch_peer_train --data_dir ../shared/datasets/cifar10 \\
      --train_steps 8000 --seed 0 --log_dir experiments/results/he2016_matched/peer/seed0
"""

import argparse
import datetime
import glob
import json
import os
import pickle
import platform
import sys
import tarfile
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import provenance  # the standard library only, outside session(): no TensorFlow in the peer's process
from benchmarks.pytorch_peer import ResNet20

COLUMNS = ("step", "epoch", "learning_rate", "train_loss", "train_accuracy", "train_error", "train_batch_error",
           "val_loss", "val_accuracy", "val_error")  # cifar10_train.CSV_COLUMNS (no TensorFlow imported here)
STATE, SETTINGS = "peer_state.pt", "peer_config.json"


def read_cifar10(data_dir):
    """(the file or folder read, (x_train, y_train, x_test, y_test) as uint8 NHWC and int64), from the
    python-version pickles in a .tar.gz, a folder holding one, or the extracted cifar-10-batches-py/."""
    if os.path.isdir(data_dir) and not os.path.exists(os.path.join(data_dir, "data_batch_1")):
        nested = os.path.join(data_dir, "cifar-10-batches-py")
        archives = sorted(glob.glob(os.path.join(data_dir, "*.tar.gz")))
        if os.path.isdir(nested):
            data_dir = nested
        elif archives:
            data_dir = archives[0]
        else:
            sys.exit(f"error: {data_dir} holds no CIFAR-10 python version (data_batch_1 or a .tar.gz of it)")
    if os.path.isdir(data_dir):
        def load(name):
            with open(os.path.join(data_dir, name), "rb") as handle:
                return pickle.load(handle, encoding="latin1")
        batches = {name: load(name) for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    else:
        with tarfile.open(data_dir) as archive:
            batches = {os.path.basename(member.name): pickle.load(archive.extractfile(member), encoding="latin1")
                       for member in archive.getmembers() if "_batch" in member.name}

    batches = {name: {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
               for name, batch in batches.items()}  # Python 2 str keys read as str, Python 3's pickles as bytes

    def images(names):
        data = np.concatenate([batches[name]["data"] for name in names])
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.concatenate(
            [np.asarray(batches[name]["labels"], np.int64) for name in names])

    return data_dir, (*images([f"data_batch_{i}" for i in range(1, 6)]), *images(["test_batch"]))


def channel_stats(images):
    """Per-channel mean and population std over every pixel, 0-255 scale, in float64: augment.channel_stats."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64)
    mean = pixels.mean(axis=0)
    return mean, np.sqrt(np.maximum(np.square(pixels).mean(axis=0) - mean**2, 1e-12))


class Stream:
    """Batch ``i`` of a run: epoch ``e`` is a permutation seeded by (seed, e); the batch's crops and flips are seeded
    by (seed, i). A pure function of the seed and the step, as the suite's stream is (not the same numbers)."""

    def __init__(self, images, labels, mean, std, batch_size, seed, pad):
        self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # uint8 NCHW
        self.labels = torch.from_numpy(labels)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.batch_size, self.seed, self.pad = batch_size, seed, pad
        self.per_epoch = len(images) // batch_size  # the last partial batch of an epoch is dropped
        self._epoch, self._order = None, None

    def batch(self, index):
        epoch, position = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, torch.from_numpy(
                np.random.RandomState([self.seed, epoch]).permutation(len(self.images)))
        chosen = self._order[position * self.batch_size:(position + 1) * self.batch_size]
        images = self.images[chosen].float()
        if self.pad == "black":
            images = (F.pad(images, (4, 4, 4, 4)) - self.mean) / self.std
        else:  # zero padding of the normalised image: the mean colour
            images = F.pad((images - self.mean) / self.std, (4, 4, 4, 4))
        rng = np.random.RandomState([self.seed, 1_000_003, index])
        rows, cols = rng.randint(0, 9, len(chosen)), rng.randint(0, 9, len(chosen))
        flips = rng.rand(len(chosen)) < 0.5
        crops = [images[k, :, r:r + 32, c:c + 32] for k, (r, c) in enumerate(zip(rows, cols))]
        batch = torch.stack([crop.flip(-1) if flip else crop for crop, flip in zip(crops, flips)])
        return batch.contiguous(memory_format=torch.channels_last), self.labels[chosen]


def akamaster_init(model, seed):
    """akamaster's initialisation: kaiming-normal conv and linear kernels (PyTorch's default dense bias)."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
            if isinstance(module, nn.Linear):
                bound = 1 / module.weight.shape[1] ** 0.5
                nn.init.uniform_(module.bias, -bound, bound)
    return model


def learning_rate(step, args):
    """The rate of update ``step`` (0-based): the suite's PiecewiseConstantDecay(boundaries, values) at that step."""
    boundaries = [int(round(f * args.train_steps)) for f in (0.5, 0.75)]
    return args.learning_rate * 0.1 ** sum(step > boundary for boundary in boundaries)


def evaluate(model, images, labels, mean, std, batch_size=500):
    """(loss, accuracy) of the model in inference mode on normalised test images."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for begin in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[begin:begin + batch_size].transpose(0, 3, 1, 2))).float()
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(labels[begin:begin + batch_size])
            logits = model(x)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    model.train()
    return loss / len(images), correct / len(images)


def _session(data_source, step):
    """One start or resume of the peer run, as the engine's sessions record theirs (provenance.session)."""
    commit, uncommitted = provenance.loaded_code_state()
    return {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "from_step": step, "commit": commit, "uncommitted": list(uncommitted or ()),
            "torch": torch.__version__, "python": platform.python_version(), "cpu": provenance.cpu_description(),
            "cpu_cores": os.cpu_count(), "threads": torch.get_num_threads(), "command": provenance.command_line(),
            "data_sha256": provenance.data_sha256(data_source)}


def train(args):
    torch.set_num_threads(os.cpu_count())
    source, (x_train, y_train, x_test, y_test) = read_cifar10(args.data_dir)
    mean, std = channel_stats(x_train)
    stream = Stream(x_train, y_train, mean, std, args.batch_size, args.seed, args.pad)
    model = akamaster_init(ResNet20(conv_padding=args.conv_padding), args.seed).to(memory_format=torch.channels_last)
    decayed = [p for p in model.parameters() if args.weight_decay_scope == "all" or p.ndim > 1]
    others = [p for p in model.parameters() if not any(p is q for q in decayed)]
    optimizer = torch.optim.SGD([{"params": decayed, "weight_decay": args.weight_decay},
                                 {"params": others, "weight_decay": 0.0}], lr=args.learning_rate, momentum=0.9)
    os.makedirs(args.log_dir, exist_ok=True)
    state_path, settings_path = os.path.join(args.log_dir, STATE), os.path.join(args.log_dir, SETTINGS)
    settings = {key: value for key, value in vars(args).items() if key not in ("log_dir", "data_dir")}
    step, rows, timing, sessions = 0, [], [], []
    if os.path.exists(state_path):
        saved = torch.load(state_path, weights_only=False)
        if saved["settings"] != settings:
            sys.exit(f"error: {args.log_dir} holds a peer run with other settings ({saved['settings']}); "
                     "choose another --log_dir")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        step, rows, timing = saved["step"], saved["rows"], saved["timing"]
        with open(settings_path) as handle:
            sessions = json.load(handle)["sessions"]
    if step >= args.train_steps:
        print(f"{args.log_dir}: finished at step {step}")
        return
    sessions.append(_session(source, step))
    with open(settings_path, "w") as handle:
        json.dump({"settings": settings, "mean": list(mean), "std": list(std), "sessions": sessions}, handle, indent=1)
    test_mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    test_std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    elapsed = timing[-1]["elapsed_sec"] if timing else 0.0
    window, started = np.zeros(3), time.time()
    model.train()
    while step < args.train_steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        x, y = stream.batch(step)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        batch_error = float((logits.argmax(1) != y).float().mean())
        window += [loss.item() * len(y), (1 - batch_error) * len(y), len(y)]
        if step % args.report_freq == 0 or step == args.train_steps:
            seconds = time.time() - started
            val_loss, val_accuracy = evaluate(model, x_test, y_test, test_mean, test_std)
            accuracy = window[1] / window[2]
            rows.append(dict(step=step, epoch=step * args.batch_size / len(x_train),
                             learning_rate=learning_rate(step - 1, args), train_loss=window[0] / window[2],
                             train_accuracy=accuracy, train_error=1 - accuracy, train_batch_error=batch_error,
                             val_loss=val_loss, val_accuracy=val_accuracy, val_error=1 - val_accuracy))
            elapsed += time.time() - started
            timing.append(dict(step=step, images_per_sec=window[2] / seconds, elapsed_sec=elapsed))
            print(f"step {step}/{args.train_steps}: train loss {rows[-1]['train_loss']:.4f} error "
                  f"{rows[-1]['train_error']:.4f} | val loss {val_loss:.4f} error {1 - val_accuracy:.4f} | "
                  f"lr {rows[-1]['learning_rate']:g} | {window[2] / seconds:.0f} img/s", flush=True)
            pd.DataFrame(rows, columns=COLUMNS).to_csv(os.path.join(args.log_dir, "metrics.csv"), index=False)
            pd.DataFrame(timing).to_csv(os.path.join(args.log_dir, "timing.csv"), index=False)
            if step % args.save_freq == 0 or step == args.train_steps:
                torch.save({"settings": settings, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "step": step, "rows": rows, "timing": timing}, state_path + ".tmp")
                os.replace(state_path + ".tmp", state_path)
            window, started = np.zeros(3), time.time()


def make_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pytorch_peer_train",
        description="He et al.'s ResNet-20 recipe in PyTorch on the suite's CIFAR-10 files: the peer of issue 33. "
                    "Writes metrics.csv, timing.csv and peer_config.json into --log_dir; the same command resumes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="CIFAR-10 python version: .tar.gz, a folder holding it, "
                                                          "or cifar-10-batches-py/")
    parser.add_argument("--log_dir", required=True, help="the run folder")
    parser.add_argument("--train_steps", type=int, default=64000, help="steps; the rate drops at 50%% and 75%%")
    parser.add_argument("--batch_size", type=int, default=128, help="batch")
    parser.add_argument("--learning_rate", type=float, default=0.1, help="initial rate")
    parser.add_argument("--weight_decay", type=float, default=1e-4, help="coupled SGD weight decay")
    parser.add_argument("--weight_decay_scope", choices=("kernels", "all"), default="kernels",
                        help="kernels: conv and dense kernels (the suite's default); all: every parameter (akamaster)")
    parser.add_argument("--conv_padding", choices=("symmetric", "same"), default="symmetric",
                        help="stride-2 convolutions: symmetric = one pixel on every side (PyTorch's own, akamaster); "
                             "same = TensorFlow's, bottom and right only (the suite's --conv_padding same)")
    parser.add_argument("--pad", choices=("mean", "black"), default="mean",
                        help="mean: zero-pad the normalised image (He's text, the suite's he recipe); black: pad the "
                             "raw image (torchvision's RandomCrop, akamaster)")
    parser.add_argument("--report_freq", type=int, default=500, help="steps between test evaluations and CSV rows")
    parser.add_argument("--save_freq", type=int, default=500,
                        help="steps between saved states (a multiple of --report_freq)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation, data order, crops and flips")
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    if args.train_steps < 1 or args.report_freq < 1 or args.save_freq % args.report_freq:
        make_parser().error("--train_steps and --report_freq must be positive, --save_freq a multiple of --report_freq")
    train(args)


if __name__ == "__main__":
    main()
