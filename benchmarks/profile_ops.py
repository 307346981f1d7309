"""Where a training step's time goes: a short run traced by the TensorFlow profiler, summed by op type.

Trains a few steps with ``cifar10_main.py --profile_steps`` (the trace TensorBoard's Profile tab opens),
then reads the trace with xprof (installed with tensorboard-plugin-profile) and prints each op type's
share of the busy time, the table benchmarks/README.md quotes. ``--trace RUN_FOLDER`` summarises the
trace a run already made instead (its newest). For example:

  python -m benchmarks.profile_ops --data_dir ../shared/datasets/cifar10 --mixed_precision off
  python -m benchmarks.profile_ops --trace runs/profile --steps 41 50
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tf_setup  # noqa: F401  (first: the environment's defaults, a quiet TensorFlow import)
import api
import run_config


def op_type_times(xplane_path):
    """{op type: self time in microseconds} over the traced steps, idle time left out."""
    from xprof.convert import raw_to_tool_data

    data, _ = raw_to_tool_data.xspace_to_tool_data([xplane_path], "framework_op_stats", {"use_saved_result": False})
    table = json.loads(data)[0]
    columns = [column["id"] for column in table["cols"]]
    times = collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, (cell.get("v") for cell in row["c"])))
        if values["type"] != "IDLE":
            times[values["type"]] += values["total_self_time"]
    return times


def newest_trace(run_folder, parser):
    traces = glob.glob(os.path.join(run_folder, "train", "plugins", "profile", "*", "*.xplane.pb"))
    if not traces:
        parser.error(f"no profiler trace in {run_folder}/train/plugins/profile: train it with --profile_steps")
    return max(traces, key=os.path.getmtime)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=None, help="CIFAR-10 (as cifar10_main.py's --data_dir)")
    parser.add_argument("--model", default="resnet20", help="model to profile")
    parser.add_argument("--mixed_precision", default="off", help="precision of the traced steps")
    parser.add_argument("--batch_size", type=int, default=128, help="global batch size")
    parser.add_argument("--steps", type=int, nargs=2, default=(21, 30), metavar=("FIRST", "LAST"),
                        help="the traced training steps (after warm-up)")
    parser.add_argument("--top", type=int, default=12, help="op types to list")
    parser.add_argument("--trace", metavar="RUN_FOLDER", default=None,
                        help="summarise this run's newest trace (made with --profile_steps) instead of training")
    args = parser.parse_args(argv)
    if args.trace:
        times = op_type_times(newest_trace(args.trace, parser))
    else:
        with tempfile.TemporaryDirectory() as log_dir:
            config = run_config.RunConfig(model=args.model, batch_size=args.batch_size, train_steps=args.steps[1],
                                          report_freq=args.steps[1], profile_steps=tuple(args.steps),
                                          mixed_precision=args.mixed_precision, log_dir=log_dir, data_dir=args.data_dir)
            try:
                api.train(config)
            except api.USER_ERRORS as error:
                parser.error(str(error))
            times = op_type_times(newest_trace(log_dir, parser))
    total = sum(times.values())
    traced = args.steps[1] - args.steps[0] + 1
    what = args.trace or f"{args.model}, precision {args.mixed_precision}"
    print(f"\n{what}: {total / 1e3 / traced:.1f} ms of op time per step (summed over the threads that ran ops), "
          f"{traced} steps traced")
    print("| op type | share of op time | ms per step |\n| --- | --- | --- |")
    for op_type, micros in times.most_common(args.top):
        print(f"| {op_type} | {micros / total:.1%} | {micros / 1e3 / traced:.1f} |")
    rest = total - sum(micros for _, micros in times.most_common(args.top))
    print(f"| everything else | {rest / total:.1%} | {rest / 1e3 / traced:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
