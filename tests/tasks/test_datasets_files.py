"""Which dataset files count as present, which one is read where two could be, and which archives `download`
verifies: on tiny files written in the real formats (writers from test_datasets.py)."""

from __future__ import annotations

import builtins
import gzip
import io
import pickle

import numpy as np
import pytest

from tasks import datasets
from tasks.datasets import DataError
from tests.tasks.test_datasets import _served_fashion, fashion_arrays, idx_bytes, write_cifar10, write_fashion


def test_a_directory_where_a_dataset_file_belongs_is_a_missing_file(tmp_path):
    """`missing_files` lists "the files ... that are not regular files": a folder named like a CIFAR batch
    is no batch, so the preflight must report it rather than let every task fail reading it."""
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.unlink()
    batch.mkdir()
    assert datasets.missing_files("cifar10", tmp_path) == [batch]


def test_loading_a_dataset_whose_file_is_a_directory_names_the_file_and_the_download_command(tmp_path):
    """A folder where a batch belongs is a missing file for the loader too: a DataError naming the path and
    the command that fetches it, not a bare IsADirectoryError from reading it."""
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.unlink()
    batch.mkdir()
    with pytest.raises(DataError, match="mmc-sweep data download cifar10") as info:
        datasets.load_cifar10(tmp_path)
    assert info.value.path == str(batch)


def test_where_an_idx_file_and_its_gz_lie_side_by_side_the_loader_reads_the_file_dataset_files_names(tmp_path):
    """`dataset_files` names "the files `dataset` reads": with both `x-ubyte` and `x-ubyte.gz` in one folder
    (gunzip -k), the arrays loaded are those of the files it names, whichever copy that is."""
    folder = tmp_path / "fashion-mnist"
    images, labels = fashion_arrays(n_train=10, n_test=10)
    write_fashion(folder, images, labels, compress=False)
    other = {split: (9 - labels[split]).astype(np.uint8) for split in labels}   # the .gz copies differ
    for split in ("train", "t10k"):
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(other[split])))
    named = datasets.dataset_files("fashion_mnist", tmp_path)
    _, y_train, _, y_test = datasets.load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(y_train, datasets.read_idx(named[1]))
    np.testing.assert_array_equal(y_test, datasets.read_idx(named[3]))


def test_download_replaces_a_torn_gz_that_lies_beside_the_users_decompressed_file(tmp_path, monkeypatch):
    """"archives already present with the right md5 are not fetched again": a `.gz` on disk with another md5
    is fetched again and verified, even where the user also decompressed a file from it."""
    images, labels = _served_fashion(tmp_path, monkeypatch)
    served, root = tmp_path / "served_fashion", tmp_path / "data"
    write_fashion(root / "fashion-mnist", images, labels, compress=False)
    torn = root / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    torn.write_bytes((served / torn.name).read_bytes()[:-20])
    datasets.download("fashion_mnist", root)
    assert torn.read_bytes() == (served / torn.name).read_bytes()


def test_download_fetches_again_a_fashion_gz_whose_md5_is_wrong_when_all_of_them_are_in_place(tmp_path, monkeypatch):
    """Only an extracted archive (CIFAR) is skipped because its files are all there; FashionMNIST's `.gz` files
    are the archives themselves, so one of them on disk with the wrong md5 is fetched again."""
    images, labels = _served_fashion(tmp_path, monkeypatch)
    served, root = tmp_path / "served_fashion", tmp_path / "data"
    write_fashion(root / "fashion-mnist", images, labels)
    torn = root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    torn.write_bytes(b"\x1f\x8b not the published file")
    datasets.download("fashion_mnist", root)
    assert torn.read_bytes() == (served / torn.name).read_bytes()
    np.testing.assert_array_equal(datasets.load_fashion_mnist(root)[3], labels["t10k"])


_CIFAR_BUILTINS = {"dict", "list", "tuple", "str", "bytes", "int", "float"}


@pytest.mark.parametrize("module", ["builtins", "__builtin__"])
def test_the_cifar_unpickler_resolves_no_builtin_beyond_plain_containers_strings_and_numbers(tmp_path, module):
    """A CIFAR batch "can only rebuild dicts, lists, strings, numbers and numpy arrays": every other builtin
    (getattr, eval, open, __import__, ...) is refused, under Python 3's and Python 2's module name."""
    path = tmp_path / "batch"
    unpickler = datasets._RestrictedUnpickler(io.BytesIO(b""), path)
    for name in sorted(set(dir(builtins)) - _CIFAR_BUILTINS):
        with pytest.raises(DataError, match="refused to unpickle"):
            unpickler.find_class(module, name)
    for name in sorted(_CIFAR_BUILTINS):
        assert unpickler.find_class(module, name) is getattr(builtins, name)


def test_a_pickle_that_reaches_a_function_through_getattr_is_refused(tmp_path):
    """`getattr(os, "system")` is how a planted pickle reaches a function no global names: refused."""
    path = tmp_path / "evil"
    # GLOBAL builtins getattr; then (GLOBAL builtins dict, "items") -> TUPLE -> REDUCE
    path.write_bytes(b"cbuiltins\ngetattr\n(cbuiltins\ndict\nVitems\ntR.")
    assert pickle.loads(path.read_bytes()) is dict.items       # what it would rebuild, unrestricted
    with pytest.raises(DataError, match="`builtins.getattr`"):
        datasets.read_pickle(path)
