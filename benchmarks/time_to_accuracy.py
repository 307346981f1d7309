"""Wall time until a model reaches a target test accuracy: the headline speed number.

  python -m benchmarks.time_to_accuracy --data_dir ../shared/datasets/cifar10                  # ResNet-20 to 91.25%
  python -m benchmarks.time_to_accuracy --data_dir ../shared/datasets/cifar10 --target 0.6 --max_minutes 15

Trains with the suite's own command line (He et al.'s recipe and schedule unless flags after
``--`` say otherwise), validates on the test set every --check_every steps, and stops at the
first check at or above --target, or after --max_minutes. The default target is He et al.'s
ResNet-20 figure (8.75% error): on a GPU that is the number to beat; on a 2-core CPU use a low
target as a check that it works. Prints the wall time and steps it took and the peak memory of
the training process.
"""

import dataclasses
import os
import resource
import sys
import tempfile


if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tf_setup  # noqa: F401,E402  (first: the environment's defaults, a quiet TensorFlow import)
import cifar10_main
import api


def main(argv=None):
    parser = cifar10_main.OneLineParser(prog="python -m benchmarks.time_to_accuracy",
                                        description=__doc__.split("\n\n")[0],
                                        epilog="Flags after -- go to cifar10_main.py (e.g. -- --mixed_precision off)")
    parser.add_argument("--model", default="resnet20", help="model to train")
    parser.add_argument("--target", type=float, default=0.9125, help="test accuracy to reach (He et al.: 0.9125)")
    parser.add_argument("--check_every", type=int, default=500, help="steps between test-set checks")
    parser.add_argument("--max_minutes", type=float, default=None, help="give up after this much training time")
    parser.add_argument("--data_dir", default=None, help="CIFAR-10 (see cifar10_main.py --help)")
    parser.add_argument("--log_dir", default=None, help="run folder (default: a fresh temporary folder)")
    args, extra = parser.parse_known_args(argv)
    extra = [flag for flag in extra if flag != "--"]

    log_dir = args.log_dir or tempfile.mkdtemp(prefix=f"time_to_accuracy_{args.model}_")
    config = dataclasses.replace(cifar10_main.config_from_argv(extra),
                                 model=args.model, report_freq=args.check_every, log_dir=log_dir, validation_split=0.0,
                                 data_dir=args.data_dir)
    outcome = {}

    def check(row):
        outcome.update(row)
        reached = row["val_accuracy"] >= args.target
        out_of_time = args.max_minutes is not None and row["elapsed_sec"] >= 60 * args.max_minutes
        return reached or out_of_time

    try:
        api.train(config, on_report=check)
    except api.USER_ERRORS as error:
        parser.error(str(error))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reached = outcome.get("val_accuracy", 0.0) >= args.target
    verdict = "reached" if reached else "did NOT reach"
    print(f"{args.model} {verdict} test accuracy {args.target:.4f}: {outcome.get('val_accuracy', float('nan')):.4f} "
          f"at step {outcome.get('step')} (epoch {outcome.get('epoch', float('nan')):.2f}) after "
          f"{outcome.get('elapsed_sec', float('nan')) / 60:.1f} min of training; peak memory {peak_mb:.0f} MB; "
          f"run folder {log_dir}")
    return dict(outcome, reached=reached, peak_mb=peak_mb)


if __name__ == "__main__":
    main()
