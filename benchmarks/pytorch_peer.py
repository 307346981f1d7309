"""The peer's speed: the suite's ResNet-20 training step written in PyTorch (eager), for benchmarks/throughput.py.

The same work as the suite's default row: He et al.'s ResNet-20 with option-A shortcuts (stride-2
subsampling plus zero channels), batch norm, SGD with momentum 0.9 and weight decay 1e-4 on the
convolution and dense kernels, pad-4 random crop and flip of uint8 images held in memory, per-channel
normalisation, float32, channels_last. PyTorch is never a requirement of the suite: throughput.py prints
how to install it beside TensorFlow when it is missing, and runs this file in a process of its
own (``python pytorch_peer.py IMAGES.npz``: it prints the images/s last).
"""

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU (He et al. 2016a, Fig. 2)."""

    def __init__(self, channels_in, channels_out, stride, conv_padding="symmetric"):
        super().__init__()
        # "same" is TensorFlow's padding of a stride-2 conv on an even input: one row and column, bottom and right.
        self.pad_same = conv_padding == "same" and stride > 1
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 0 if self.pad_same else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.stride, self.extra_channels = stride, channels_out - channels_in

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(F.pad(x, (0, 1, 0, 1)) if self.pad_same else x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra_channels:  # option A: the new channels are zeros
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(out + shortcut)


class ResNet20(nn.Module):
    def __init__(self, num_classes=10, blocks_per_stage=3, conv_padding="symmetric"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        layers, channels = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for block in range(blocks_per_stage):
                layers.append(BasicBlock(channels, width, 2 if stage and not block else 1, conv_padding))
                channels = width
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


def _augmented_batches(images, labels, batch_size, seed=0):
    """Endless batches: random images, pad 4 + random 32x32 crop + flip per image, normalised, channels_last."""
    generator = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # uint8 NCHW
    targets = torch.from_numpy(np.asarray(labels, np.int64))
    floats = data.float()
    mean = floats.mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = floats.std(dim=(0, 2, 3)).view(1, 3, 1, 1)
    size = data.shape[-1]
    steps = torch.arange(size)
    while True:
        index = torch.randint(len(data), (batch_size,), generator=generator)
        padded = F.pad(data[index], (4, 4, 4, 4))
        rows = torch.randint(9, (batch_size, 1), generator=generator) + steps
        cols = torch.randint(9, (batch_size, 1), generator=generator) + steps
        flip = torch.rand(batch_size, generator=generator) < 0.5
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        batch = padded[torch.arange(batch_size)[:, None, None, None], torch.arange(3)[None, :, None, None],
                       rows[:, None, :, None], cols[:, None, None, :]]
        yield ((batch.float() - mean) / std).contiguous(memory_format=torch.channels_last), targets[index]


def images_per_sec(images, labels, batch_size=128, steps=40, rounds=2, warmup=5):
    """Training images/s of ResNet-20 in PyTorch eager on this CPU (the median of ``rounds`` timed stretches)."""
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    model = ResNet20().to(memory_format=torch.channels_last)
    kernels = [p for p in model.parameters() if p.ndim > 1]
    others = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": kernels, "weight_decay": 1e-4}, {"params": others, "weight_decay": 0.0}],
                                lr=0.1, momentum=0.9)
    batches = _augmented_batches(images, labels, batch_size)
    model.train()

    def train(count):
        for _ in range(count):
            x, y = next(batches)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return float(loss.detach())

    train(warmup)
    per_round, seconds = max(1, steps // rounds), []
    for _ in range(rounds):
        start = time.perf_counter()
        train(per_round)
        seconds.append(time.perf_counter() - start)
    return per_round * batch_size / float(np.median(seconds))


def main(argv=None):
    parser = argparse.ArgumentParser(description="ResNet-20 training images/s in PyTorch eager (the peer row).")
    parser.add_argument("data", help=".npz with uint8 images [N, 32, 32, 3] and int labels [N]")
    parser.add_argument("--batch_size", type=int, default=128, help="batch size")
    parser.add_argument("--steps", type=int, default=40, help="timed steps, over all rounds")
    parser.add_argument("--rounds", type=int, default=2, help="timed stretches; the median counts")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    args = parser.parse_args(argv)
    with np.load(args.data) as data:
        images, labels = data["images"], data["labels"]
    print(images_per_sec(images, labels, args.batch_size, args.steps, args.rounds, args.warmup))


if __name__ == "__main__":
    main()
