"""Compute plans: each run's steps, its model's images/s on this machine and the hours they make (``--plan``)."""

import datetime
import os
import sys

import numpy as np
import pandas as pd

import cifar10_train
import hardware
import run_config


PLAN_CSV = "plan.csv"  # --plan's table as data: the report names the hours of each run not made


# The official sets' sizes, to plan steps before any data is read (an image folder is counted from its files).
TRAIN_IMAGES = {"cifar10": 50000, "mnist": 60000}


TEST_IMAGES = {"cifar10": 10000, "mnist": 10000}


STORED_SHAPE = {"cifar10": (32, 32, 3), "mnist": (28, 28, 1)}


def model_input_shape(config):
    """The input a run's model is built for: the dataset's images adapted as the engine adapts them
    (``datasets.adapt_to_model``), not the model's nominal input (224x224 for the ImageNet ResNets, which
    train on CIFAR-10 at 32x32: a plan timed at 224 said 7 hours for Xu's 20-minute quick runs)."""
    import datasets
    import resnet

    model_shape = resnet.MODELS[config.model].input_shape
    if config.dataset in STORED_SHAPE:
        stored = np.zeros((1, *STORED_SHAPE[config.dataset]), np.uint8)
        return tuple(datasets.adapt_to_model(stored, model_shape).shape[1:])
    return (*(config.image_size or model_shape[:2]), model_shape[-1])


def compute_plan(runs, measure=None):
    """The compute plan: per run, its steps, the images/s of its model on this machine and the hours that makes.

    ``measure(config, input_shape) -> (images/s, precision)`` times the model alone (one in-memory batch, the run's
    precision; auto measures as a run would) once per distinct model, options, batch and precision. Hours
    = (training images + validations, a test image costing a third of a training one) / that rate: input
    pipelines (ImageDataGenerator above all) make a run slower than this, never faster.
    """
    measure = measure or _model_rate
    for precision in sorted({run.config.mixed_precision for run in runs}):  # refused before any timing
        run_config.resolve_precision(precision)
    rates, rows = {}, []
    busy = hardware.busy_warning()
    measured_on = f"{hardware.describe()}, {datetime.date.today().isoformat()}" + (f" ({busy})" if busy else "")
    if busy:
        print(f"warning: {busy}", file=sys.stderr)
    for run in runs:
        config = run.config
        steps = total_steps(config)
        shape = model_input_shape(config)
        key = (config.model, json_key(config.model_options), shape, config.batch_size, config.mixed_precision)
        if key not in rates:
            rates[key] = measure(config, shape)
        rate, precision = rates[key]
        validated = (steps // config.report_freq) * TEST_IMAGES.get(config.dataset, 0)
        rows.append({"run": run.folder, "model": config.model, "steps": steps, "batch": config.batch_size,
                     "precision": precision, "images_per_sec": round(rate, 1),
                     "hours": (steps * config.batch_size + validated / 3) / rate / 3600,
                     "measured_on": measured_on})
    return pd.DataFrame(rows)


def total_steps(config):
    """A run's training steps: its ``train_steps``, or its epochs over the dataset's training images."""
    images = TRAIN_IMAGES.get(config.dataset) or _count_images(config.data_dir)
    return config.train_steps or run_config.steps_for_epochs(config.epochs, images, config.batch_size)


def json_key(options):
    return tuple(sorted((k, str(v)) for k, v in options.items()))


def _count_images(folder):
    """Training images of an image folder, roughly (every image file below it), for planning only."""
    extensions = (".jpg", ".jpeg", ".png", ".bmp")
    return sum(name.lower().endswith(extensions) for _, _, names in os.walk(folder or ".") for name in names) or 1


def _model_rate(config, shape):
    """(images/s, precision) of a run's model alone, in the precision the run would use here."""
    precision, rates = config.mixed_precision, None
    if precision == "auto":
        precision, rates, _ = cifar10_train.auto_precision(config, shape)
    rate = rates[precision] if rates else cifar10_train.images_per_sec(config, shape, config.batch_size, precision)
    return float(rate), precision


def plan_text(plan, selected=None):
    """The plan as the markdown a report starts with; ``selected`` (``--only``) names the runs meant to be run here."""
    lines = [f"Measured on {plan['measured_on'].iloc[0]}: each model alone on one in-memory batch, "
             "so the hours are a lower bound.",
             "", "| run | model | steps x batch | precision | images/s | hours |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['run']} | {r['model']} | {r['steps']} x {r['batch']} | {r['precision']} | "
              f"{r['images_per_sec']:.0f} | {r['hours']:.2f} |" for r in plan.to_dict("records")]
    lines += ["", f"Total: {plan['hours'].sum():.1f} hours for {len(plan)} run(s)."]
    if selected:
        chosen = plan[plan["run"].str.split("/").str[0].isin(selected)]
        lines[-1] += (f" Planned here (--only {' '.join(selected)}): {chosen['hours'].sum():.1f} hours for "
                      f"{len(chosen)} run(s); the others are listed under Provenance as not run, with their hours.")
    return "\n".join(lines)
