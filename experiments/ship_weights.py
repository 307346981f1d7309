"""Ship a finished run's last model as weights anyone can check: ``pretrained/<name>/``.

The folder holds ``<name>.keras`` (the run's ``latest.keras``: the model the paper's number is
measured on), the run's ``config.json`` (so ``--mode test`` and ``--mode predict`` preprocess as
training did), and ``manifest.json``: the model and recipe, the commits and machines that trained it,
its seed and steps, the test images it was scored on (their sha256), the number it classified
correctly, its test accuracy and loss, and the sha256 of the weights file. ``--check`` loads a
shipped folder, evaluates it again and says whether every figure still holds (evaluation is
deterministic: the count of correct images must match exactly).

  python -m experiments.ship_weights experiments/results/he2016/resnet20/seed1 resnet20_he2016 \\
      --data_dir ../shared/datasets/cifar10
  python -m experiments.ship_weights --check pretrained/resnet20_he2016 --data_dir ../shared/datasets/cifar10
"""

import json
import os
import shutil
import sys
import time

if not __package__:  # run as a file, not with -m: the checkout's modules on the path all the same
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tf_setup  # noqa: F401,E402  (first: the environment's defaults, a quiet TensorFlow import)
import cifar10_main
import api
import cifar10_test
import fileio
import provenance
import run_config
import run_folder

MANIFEST = run_folder.MANIFEST
LOSS_TOLERANCE = 1e-5  # relative: the same images and weights give the same loss up to float summation order


def score(folder_or_file, data_dir):
    """Evaluates a shipped model (or a run's latest.keras) on its dataset's test set: a dict of figures."""
    model_path, run_dir, config, info = cifar10_test.resolve_checkpoint(folder_or_file)
    model = cifar10_test.load_model(model_path)
    dataset, result = api.evaluate_run(model, config, info, data_dir)
    num_images = len(dataset["y_test"])
    return {"num_images": int(num_images), "correct": int(round(result["accuracy"] * num_images)),
            "accuracy": float(result["accuracy"]), "loss": float(result["loss"]),
            "data": os.path.basename(dataset["source"]), "data_sha256": provenance.data_sha256(dataset["source"])}


def ship(run_dir, name, data_dir=None, root="pretrained"):
    """Copies a finished run's latest model and config into ``root/name`` and writes its manifest."""
    config, info = run_folder.saved_config(run_dir)
    saved = run_folder.read_config(run_dir)
    step = api.trained_step(run_dir, run_folder.LATEST_MODEL)
    if step < config.stages_steps:
        raise ValueError(f"{run_dir} stopped at step {step} of {config.stages_steps}: only a finished run is shipped")
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(folder, f"{name}.keras")
    shutil.copyfile(os.path.join(run_dir, run_folder.LATEST_MODEL), weights)
    shutil.copyfile(os.path.join(run_dir, run_folder.CONFIG), os.path.join(folder, run_folder.CONFIG))
    sessions = saved.get("sessions", [])
    manifest = {
        "name": name, "model": config.model, "model_options": config.model_options, "dataset": config.dataset,
        "recipe": config.augment, "seed": config.seed, "steps": step, "batch_size": config.batch_size,
        "mixed_precision": sorted({s.get("mixed_precision", config.mixed_precision) for s in sessions}
                                  or {config.mixed_precision}),
        "trained_by": [{k: s.get(k) for k in ("from_step", "commit", "cpu", "started")} for s in sessions],
        "command": run_config.command(config), "weights_file": os.path.basename(weights),
        "weights_sha256": provenance.data_sha256(weights), "shipped": time.strftime("%Y-%m-%d"),
        "test": score(weights, data_dir),
    }
    fileio.write_json(os.path.join(folder, MANIFEST), manifest)
    return manifest


def check(folder, data_dir=None):
    """What no longer holds of a shipped folder's manifest (an empty list when everything does)."""
    with open(os.path.join(folder, MANIFEST)) as handle:
        manifest = json.load(handle)
    weights = os.path.join(folder, manifest["weights_file"])
    problems = []
    if provenance.data_sha256(weights) != manifest["weights_sha256"]:
        problems.append(f"{weights}: sha256 differs from the manifest's")
    now, then = score(weights, data_dir), manifest["test"]
    if now["data_sha256"] != then["data_sha256"]:
        problems.append(f"the test data differs from the one the manifest was scored on ({then['data']})")
    if (now["correct"], now["num_images"]) != (then["correct"], then["num_images"]):
        problems.append(f"{now['correct']} of {now['num_images']} test images right, the manifest says "
                        f"{then['correct']} of {then['num_images']}")
    if abs(now["loss"] - then["loss"]) > LOSS_TOLERANCE * abs(then["loss"]):
        problems.append(f"test loss {now['loss']:.6f}, the manifest says {then['loss']:.6f}")
    return problems


def main(argv=None):
    parser = cifar10_main.OneLineParser(prog="ship_weights.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", help="a finished run folder (its latest.keras is shipped)")
    parser.add_argument("name", nargs="?", help="the shipped folder's name under --root")
    parser.add_argument("--check", metavar="FOLDER", help="evaluate a shipped folder again against its manifest")
    parser.add_argument("--data_dir", default=None, help="the dataset (default: the path in the run's config.json)")
    parser.add_argument("--root", default="pretrained", help="where shipped folders go (default: pretrained)")
    args = parser.parse_args(argv)
    if not args.check and not (args.run_dir and args.name):
        parser.error("give RUN_DIR NAME to ship a run, or --check FOLDER")
    try:
        if args.check:
            problems = check(args.check, args.data_dir)
            print("\n".join(problems) or f"{args.check}: weights, test data and test figures match the manifest")
            return 1 if problems else 0
        manifest = ship(args.run_dir, args.name, args.data_dir, args.root)
    except (ValueError, OSError, *api.USER_ERRORS) as error:
        parser.error(str(error).splitlines()[0])
    test = manifest["test"]
    print(f"Shipped {os.path.join(args.root, args.name)}: {test['correct']} of {test['num_images']} test images right "
          f"(accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f}), "
          f"weights sha256 {manifest['weights_sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
