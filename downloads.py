"""Downloads and the data error every dataset shares: below both readers (cifar10_input.py for CIFAR-10, datasets.py
for MNIST and image folders), so neither imports the other to get them."""

import contextlib
import os

import tf_setup  # noqa: F401  (before TensorFlow: the suite's environment defaults)
import tensorflow as tf


class DataError(Exception):
    """A data problem the user can fix; the message is one line that says how."""


def fetch(url, md5, folder, what):
    """Downloads ``url`` into ``folder`` with keras.utils.get_file (progress bar, MD5 check).

    The file arrives under a temporary ``.part`` name and is renamed only once
    its MD5 matched, so an interrupted or bad download never leaves a file a
    later run would trust. Raises DataError with a one-line hint on failure.
    """
    fname = os.path.basename(url)
    folder = os.path.abspath(folder)
    target, partial = os.path.join(folder, fname), os.path.join(folder, f".{fname}.part")
    try:
        tf.keras.utils.get_file(f".{fname}.part", url, md5_hash=md5, cache_dir=folder, cache_subdir="")
    except Exception as error:  # ValueError on an MD5 mismatch; a bare Exception when offline
        if os.path.exists(partial):
            os.remove(partial)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        failure = (f"downloaded {what} {fname} failed its MD5 check" if isinstance(error, ValueError)
                   else f"could not download {what} from {url}")
        raise DataError(
            f"{failure} ({reason}); download {fname} yourself and pass --data_dir DIR (the folder holding it)"
        ) from None
    os.replace(partial, target)
    return target


@contextlib.contextmanager
def created_folder(path):
    """Makes ``path`` if missing, and removes it again if the block fails.

    A failed download into a folder the suite made leaves nothing behind.
    """
    made = not os.path.exists(path)
    if made:
        os.makedirs(path)
    try:
        yield path
    except BaseException:
        if made and os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
        raise
