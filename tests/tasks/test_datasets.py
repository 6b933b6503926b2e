"""Raw formats, restricted unpickling and download verification, on tiny files written in the real formats."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from tasks import datasets
from tasks.datasets import DataError, Resource


# ---- writers for the real formats (also used by test_data.py) ------------------------------

def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels") -> None:
    """A CIFAR python batch: a protocol-2 pickle of {b'data': uint8 [N, 3072], label_key: list}."""
    batch = {b"data": images.reshape(len(images), -1).astype(np.uint8), label_key: [int(v) for v in labels],
             b"batch_label": b"test batch"}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def make_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 20, test: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR-10 folder with 5 train batches and a test batch; returns what was written."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    n_train = 5 * per_batch
    x_train = make_images(n_train, (3, 32, 32), seed)
    y_train = np.arange(n_train) % 10
    x_test = make_images(test, (3, 32, 32), seed + 1)
    y_test = (np.arange(test) * 7) % 10
    for i in range(5):
        part = slice(i * per_batch, (i + 1) * per_batch)
        write_cifar_batch(folder / f"data_batch_{i + 1}", x_train[part], y_train[part])
    write_cifar_batch(folder / "test_batch", x_test, y_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = make_images(n_train, (3, 32, 32), seed), np.arange(n_train) % 100
    x_test, y_test = make_images(n_test, (3, 32, 32), seed + 1), (np.arange(n_test) * 3) % 100
    write_cifar_batch(folder / "train", x_train, y_train, b"fine_labels")
    write_cifar_batch(folder / "test", x_test, y_test, b"fine_labels")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
             np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}    # the IDX type codes (LeCun's format)
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_fashion(folder: Path, images: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                  compress: bool = True) -> None:
    """IDX files `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        for kind, array in (("images-idx3", images[split]), ("labels-idx1", labels[split])):
            name, data = f"{split}-{kind}-ubyte", idx_bytes(array)
            if compress:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


def fashion_arrays(n_train: int = 40, n_test: int = 20, seed: int = 0):
    images = {"train": make_images(n_train, (28, 28), seed), "t10k": make_images(n_test, (28, 28), seed + 1)}
    labels = {"train": (np.arange(n_train) % 10).astype(np.uint8), "t10k": (np.arange(n_test) % 10).astype(np.uint8)}
    return images, labels


# ---- loaders ---------------------------------------------------------------------------------

def test_cifar10_loader_reads_python_batches(tmp_path):
    written = write_cifar10(tmp_path)
    x_train, y_train, x_test, y_test = datasets.load_cifar10(tmp_path)
    assert x_train.shape == (100, 3, 32, 32) and x_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, written["x_train"])
    np.testing.assert_array_equal(y_train, written["y_train"])
    np.testing.assert_array_equal(x_test, written["x_test"])
    np.testing.assert_array_equal(y_test, written["y_test"])
    assert y_train.dtype == np.int64


def test_cifar100_loader_uses_fine_labels(tmp_path):
    written = write_cifar100(tmp_path)
    x_train, y_train, x_test, y_test = datasets.load_cifar100(tmp_path)
    np.testing.assert_array_equal(x_train, written["x_train"])
    np.testing.assert_array_equal(y_train, written["y_train"])
    np.testing.assert_array_equal(y_test, written["y_test"])
    assert y_train.max() == 99


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_loader_reads_idx(tmp_path, compress):
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "fashion-mnist", images, labels, compress=compress)
    x_train, y_train, x_test, y_test = datasets.load_fashion_mnist(tmp_path)
    assert x_train.shape == (40, 1, 28, 28)
    np.testing.assert_array_equal(x_train[:, 0], images["train"])
    np.testing.assert_array_equal(y_test, labels["t10k"])


def test_fashion_mnist_found_in_torchvision_layout(tmp_path):
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "FashionMNIST" / "raw", images, labels)
    np.testing.assert_array_equal(datasets.load_fashion_mnist(tmp_path)[1], labels["train"])


def test_read_idx_int32_and_rejects_bad_magic(tmp_path):
    array = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "a.idx"), array)
    (tmp_path / "bad").write_bytes(b"\x08\x03\x00\x00garbage")
    with pytest.raises(DataError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(idx_bytes(array)[:-4])
    with pytest.raises(DataError, match="bytes"):
        datasets.read_idx(tmp_path / "short")


# ---- restricted unpickling ---------------------------------------------------------------------

class _Exploit:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_cifar_batch_is_refused_and_never_runs(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    planted = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    planted.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"refused to unpickle global `(posix|nt|os)\.system`") as info:
        datasets.load_cifar10(tmp_path)
    assert str(planted) in str(info.value) and info.value.path == str(planted)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_restricted_unpickler_refuses_other_globals(tmp_path, protocol):
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({b"data": io.BytesIO}, protocol=protocol))
    with pytest.raises(DataError, match=r"`_?io\.BytesIO`"):
        datasets.read_pickle(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_reads_numpy_arrays_any_protocol(tmp_path, protocol):
    array = make_images(3, (5,), 1)
    path = tmp_path / "ok"
    path.write_bytes(pickle.dumps({"data": array, "x": [1.5, "s", b"b"]}, protocol=protocol))
    loaded = datasets.read_pickle(path)
    np.testing.assert_array_equal(loaded["data"], array)
    assert loaded["x"] == [1.5, "s", b"b"]


def test_codecs_encode_is_limited_to_latin1(tmp_path):
    path = tmp_path / "codec"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(DataError, match="rot13"):
        datasets.read_pickle(path)


def test_truncated_batch_gives_data_error(tmp_path):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DataError, match="test_batch"):
        datasets.load_cifar10(tmp_path)


def test_missing_files_name_path_and_download_command(tmp_path):
    with pytest.raises(DataError) as info:
        datasets.load_cifar10(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
    assert f"mmc-sweep data download cifar10 --root {tmp_path}" in message
    with pytest.raises(DataError, match="mmc-sweep data download fashion_mnist --root"):
        datasets.load_fashion_mnist(tmp_path)
    with pytest.raises(DataError, match="mmc-sweep data download cifar100 --root"):
        datasets.load_cifar100(tmp_path)


def test_data_error_pickles_with_its_path():
    error = pickle.loads(pickle.dumps(DataError("boom", "/some/path")))
    assert str(error) == "boom" and error.path == "/some/path" and isinstance(error, ValueError)


# ---- download ------------------------------------------------------------------------------------

def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cifar10_archive(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    write_cifar10(source)
    archive = tmp_path / "served" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def _count_fetches(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = datasets.fetch_url

    def counting(url, dest, timeout_s=60.0):
        calls.append(url)
        real(url, dest, timeout_s)

    monkeypatch.setattr(datasets, "fetch_url", counting)
    return calls


def _served_cifar10(tmp_path, monkeypatch):
    """A small CIFAR-10 archive as the one resource to download: (archive, fetch calls, data root)."""
    archive = _cifar10_archive(tmp_path)
    resource = Resource(archive.name, (archive.as_uri(),), _md5(archive), extract=True)
    monkeypatch.setitem(datasets.RESOURCES, "cifar10", (resource,))
    return archive, _count_fetches(monkeypatch), tmp_path / "data"


def _served_fashion(tmp_path, monkeypatch):
    """Small FashionMNIST files as the resources to download: (images, labels by split)."""
    served = tmp_path / "served_fashion"
    images, labels = fashion_arrays()
    write_fashion(served, images, labels)
    fashion = tuple(Resource(p.name, (p.as_uri(),), _md5(p), extract=False, subdir="fashion-mnist")
                    for p in sorted(served.iterdir()))
    monkeypatch.setitem(datasets.RESOURCES, "fashion_mnist", fashion)
    return images, labels


def test_download_verifies_extracts_and_is_idempotent(tmp_path, monkeypatch):
    archive, calls, root = _served_cifar10(tmp_path, monkeypatch)
    assert datasets.download("cifar10", root) == root
    assert datasets.load_cifar10(root)[0].shape == (100, 3, 32, 32)
    datasets.download("cifar10", root)
    assert len(calls) == 1  # second call found everything in place


def test_download_re_extracts_a_partly_extracted_dataset_from_its_verified_archive(tmp_path, monkeypatch):
    _, calls, root = _served_cifar10(tmp_path, monkeypatch)
    datasets.download("cifar10", root)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()     # one batch lost; the others are still there
    datasets.download("cifar10", root)
    assert len(calls) == 1                                       # the archive kept its md5: extracted, not fetched
    assert datasets.load_cifar10(root)[0].shape == (100, 3, 32, 32)


def test_download_replaces_an_archive_on_disk_whose_md5_is_wrong(tmp_path, monkeypatch):
    archive, calls, root = _served_cifar10(tmp_path, monkeypatch)
    root.mkdir()
    (root / archive.name).write_bytes(archive.read_bytes()[:-100])   # a torn earlier download
    datasets.download("cifar10", root)
    assert len(calls) == 1 and _md5(root / archive.name) == _md5(archive)
    assert datasets.load_cifar10(root)[0].shape == (100, 3, 32, 32)

def test_download_tries_mirrors_in_order(tmp_path, monkeypatch):
    archive = _cifar10_archive(tmp_path)
    missing = (tmp_path / "nowhere.tar.gz").as_uri()
    resource = Resource(archive.name, (missing, archive.as_uri()), _md5(archive), extract=True)
    monkeypatch.setitem(datasets.RESOURCES, "cifar10", (resource,))
    datasets.download("cifar10", tmp_path / "data")
    assert datasets.load_cifar10(tmp_path / "data")[1].shape == (100,)


def test_download_rejects_wrong_checksum(tmp_path, monkeypatch):
    archive = _cifar10_archive(tmp_path)
    resource = Resource(archive.name, (archive.as_uri(),), "0" * 32, extract=True)
    monkeypatch.setitem(datasets.RESOURCES, "cifar10", (resource,))
    root = tmp_path / "data"
    with pytest.raises(DataError, match=f"md5 {_md5(archive)} does not match the published md5 0{{32}}"):
        datasets.download("cifar10", root)
    assert not (root / "cifar-10-batches-py").exists()
    assert sorted(p.name for p in root.iterdir()) == []  # no partial or unverified files left behind


def test_download_refuses_unsafe_archive_members(tmp_path, monkeypatch):
    archive = tmp_path / "served" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"escaped"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    resource = Resource(archive.name, (archive.as_uri(),), _md5(archive), extract=True)
    monkeypatch.setitem(datasets.RESOURCES, "cifar10", (resource,))
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"unsafe archive member `\.\./escaped\.txt`"):
        datasets.download("cifar10", root)
    assert not (tmp_path / "escaped.txt").exists()


def test_download_refuses_symlink_members(tmp_path):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="links and devices are not allowed"):
        datasets.extract_tar(archive, tmp_path / "out")


def test_download_dominoes_fetches_cifar10_and_fashion(tmp_path, monkeypatch):
    _, labels = _served_fashion(tmp_path, monkeypatch)
    _, calls, root = _served_cifar10(tmp_path, monkeypatch)
    datasets.download("dominoes", root)
    assert len(calls) == 5
    np.testing.assert_array_equal(datasets.load_fashion_mnist(root)[1], labels["train"])
    assert datasets.load_cifar10(root)[0].shape[0] == 100
    datasets.download("dominoes", root)
    assert len(calls) == 5


def test_download_unknown_name_lists_choices(tmp_path):
    with pytest.raises(DataError, match="unknown dataset `imagenet`; downloadable: cifar10, cifar100"):
        datasets.download("imagenet", tmp_path)


def test_published_checksums_are_wired():
    assert datasets.RESOURCES["cifar10"][0].md5 == "c58f30108f718f92721af3b95e74349a"
    assert datasets.RESOURCES["cifar100"][0].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert all(r.urls[0].startswith("https://") for group in datasets.RESOURCES.values() for r in group)
    assert {r.filename for r in datasets.RESOURCES["fashion_mnist"]} == {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}


# ---- mutation hunt (data): formats, refusals and download shortcuts -------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.float64])
def test_read_idx_reads_signed_and_float_types_stored_big_endian(tmp_path, dtype):
    """IDX stores every multi-byte value big-endian; 0x09 is signed int8, 0x0B signed int16, 0x0D/0x0E floats.
    Negative and fractional values must come back as written (native byte order)."""
    array = (np.arange(-6, 6).reshape(3, 4) * (1.5 if np.dtype(dtype).kind == "f" else 1)).astype(dtype)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    read = datasets.read_idx(tmp_path / "a.idx")
    assert read.dtype == np.dtype(dtype) and read.dtype.isnative
    np.testing.assert_array_equal(read, array)


def test_read_idx_refuses_trailing_bytes_and_a_bad_second_magic_byte(tmp_path):
    """The file must be exactly header (4 + 4 * ndim bytes) + data: 12 + 6 = 18 bytes here (a longer file is another
    shape or a torn write), and both leading magic bytes are zero."""
    good = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    (tmp_path / "long").write_bytes(good + b"\x00\x00")
    with pytest.raises(DataError, match=r"IDX header says shape \[2, 3\] \(18 bytes\), file has 20"):
        datasets.read_idx(tmp_path / "long")
    (tmp_path / "magic").write_bytes(b"\x00\x01" + good[2:])
    with pytest.raises(DataError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "magic")


def test_a_cifar_batch_whose_labels_do_not_match_its_images_or_whose_data_is_not_uint8_is_refused(tmp_path):
    images = make_images(4, (3, 32, 32), 0)
    write_cifar_batch(tmp_path / "short_labels", images, np.arange(3))
    with pytest.raises(DataError, match="3 labels for 4 images"):
        datasets.read_cifar_batch(tmp_path / "short_labels")
    batch = {b"data": images.reshape(4, -1).astype(np.int16), b"labels": [0, 1, 2, 3]}
    (tmp_path / "int16").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=r"`data` must be uint8 \[N, 3072\], got int16"):
        datasets.read_cifar_batch(tmp_path / "int16")


def test_fashion_mnist_with_fewer_labels_than_images_is_refused(tmp_path):
    images, labels = fashion_arrays()
    labels["train"] = labels["train"][:-1]
    write_fashion(tmp_path / "fashion-mnist", images, labels)
    with pytest.raises(DataError, match=r"\(39,\) labels for 40 images"):
        datasets.load_fashion_mnist(tmp_path)


@pytest.mark.parametrize("member", ["/abs.txt", "C:/evil.txt"])
def test_an_archive_member_with_an_absolute_path_is_refused_before_extraction(tmp_path, member):
    archive = tmp_path / "abs.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(member)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="unsafe archive member"):
        datasets.extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.txt"))


def test_cifar10_provides_five_training_batches_and_a_test_batch(tmp_path):
    """The layout of the module docstring: <root>/cifar-10-batches-py/data_batch_1..5, test_batch; a lost
    fifth batch is a missing file."""
    folder = tmp_path / "cifar-10-batches-py"
    assert datasets.expected_files("cifar10", tmp_path) == [folder / f"data_batch_{i}" for i in (1, 2, 3, 4, 5)] + [
        folder / "test_batch"]
    write_cifar10(tmp_path)
    (folder / "data_batch_5").unlink()
    assert datasets.missing_files("cifar10", tmp_path) == [folder / "data_batch_5"]


def test_fashion_files_are_found_where_they_are_in_torchvision_layout(tmp_path):
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "FashionMNIST" / "raw", images, labels, compress=False)
    found = datasets.dataset_files("fashion_mnist", tmp_path)
    assert found == [tmp_path / "FashionMNIST" / "raw" / stem for stem in datasets.FASHION_STEMS]
    assert datasets.missing_files("fashion_mnist", tmp_path) == []


def test_download_skips_fashion_files_the_user_already_decompressed(tmp_path, monkeypatch):
    """`download` is idempotent: a raw `...-ubyte` file in place (no `.gz` beside it) is not fetched again."""
    images, labels = _served_fashion(tmp_path, monkeypatch)
    calls = _count_fetches(monkeypatch)
    root = tmp_path / "data"
    write_fashion(root / "fashion-mnist", images, labels, compress=False)
    datasets.download("fashion_mnist", root)
    assert calls == []
    assert not any(p.suffix == ".gz" for p in (root / "fashion-mnist").iterdir())


# ---- mutation hunt 4 (data): key spellings, torn files, layouts, published resources, download edges ------

def test_a_cifar_batch_pickled_with_str_keys_reads_like_one_with_bytes_keys(tmp_path):
    """A batch re-pickled by Python 3 has str keys ('data', 'labels'); `_get_key` looks for both spellings."""
    images = make_images(3, (3, 32, 32), 2)
    path = tmp_path / "str_keys"
    path.write_bytes(pickle.dumps({"data": images.reshape(3, -1), "labels": [4, 0, 9]}, protocol=4))
    x, y = datasets.read_cifar_batch(path)
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [4, 0, 9] and y.dtype == np.int64


def test_a_truncated_gzip_idx_file_is_a_data_error_naming_the_file(tmp_path):
    """A torn download of a `.gz` file ends before the gzip end-of-stream marker (EOFError in `gzip`): it is
    reported as corrupt gzip data, not as a bare EOFError."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8)))[:-12])
    with pytest.raises(DataError, match="corrupt gzip data") as info:
        datasets.read_idx(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize("content", [b"", b"\x00\x00\x08"], ids=["empty", "three-bytes"])
def test_an_idx_file_shorter_than_its_magic_number_is_refused(tmp_path, content):
    """The magic number is 4 bytes; an empty or 3-byte file is no IDX file (a DataError, not an IndexError)."""
    (tmp_path / "short").write_bytes(content)
    with pytest.raises(DataError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "short")


def test_fashion_files_directly_in_the_root_are_found(tmp_path):
    """The module docstring: FashionMNIST files are also found in <root>/ itself."""
    images, labels = fashion_arrays()
    write_fashion(tmp_path, images, labels)
    x_train, y_train, _, y_test = datasets.load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(x_train[:, 0], images["train"])
    np.testing.assert_array_equal(y_test, labels["t10k"])
    assert datasets.missing_files("fashion_mnist", tmp_path) == []


def test_dominoes_files_are_cifar10s_and_fashion_mnists():
    """dominoes reads CIFAR-10 and FashionMNIST: on an empty root all ten of their files are missing."""
    root = Path("/nonexistent-root")
    assert datasets.missing_files("dominoes", root) == datasets.expected_files("cifar10", root) + [
        root / "fashion-mnist" / (stem + ".gz") for stem in datasets.FASHION_STEMS]
    assert datasets.missing_files("digits", root) == []


def test_fashion_images_that_are_not_uint8_are_refused(tmp_path):
    images, labels = fashion_arrays()
    images["train"] = images["train"].astype(np.int16)
    write_fashion(tmp_path / "fashion-mnist", images, labels)
    with pytest.raises(DataError, match=r"expected uint8 images \[N, H, W\], got int16"):
        datasets.load_fashion_mnist(tmp_path)


# The md5 of each published FashionMNIST file (zalandoresearch/fashion-mnist README; torchvision uses the same).
PUBLISHED_FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


def test_every_published_file_is_fetched_from_urls_that_name_it_and_checked_against_its_own_md5():
    """Each mirror URL ends in `/<filename>` (a base without its trailing slash, or another dataset's archive, would
    fetch the wrong thing), and each FashionMNIST file carries its own published md5."""
    for group, resources in datasets.RESOURCES.items():
        for resource in resources:
            assert resource.urls, resource.filename
            for url in resource.urls:
                assert url.endswith("/" + resource.filename), (group, url)
    assert {r.filename: r.md5 for r in datasets.RESOURCES["fashion_mnist"]} == PUBLISHED_FASHION_MD5
    assert {r.filename for r in datasets.RESOURCES["cifar100"]} == {"cifar-100-python.tar.gz"}


def test_a_member_rooted_at_a_backslash_is_refused(tmp_path):
    """`\\evil.txt` is an absolute path on Windows: refused like `/evil.txt`, whatever the platform."""
    archive = tmp_path / "bs.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("\\evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="unsafe archive member"):
        datasets.extract_tar(archive, tmp_path / "out")


def test_a_download_cut_off_on_every_mirror_leaves_no_partial_file(tmp_path, monkeypatch):
    """A connection that drops mid-file (OSError after some bytes) on every mirror: the error names each mirror, and
    neither the archive nor its `.part` file is left behind."""
    def torn(url, dest, timeout_s=60.0):
        Path(dest).write_bytes(b"half an archive")
        raise OSError("connection reset")

    monkeypatch.setattr(datasets, "fetch_url", torn)
    resource = Resource("x.tar.gz", ("file:///a/x.tar.gz", "file:///b/x.tar.gz"), "0" * 32, extract=True)
    dest = tmp_path / "x.tar.gz"
    with pytest.raises(DataError, match=r"(?s)file:///a/x.tar.gz: connection reset.*file:///b/x.tar.gz"):
        datasets._fetch_verified(resource, dest)
    assert list(tmp_path.iterdir()) == []


def test_download_expands_a_home_relative_root_and_digits_fetch_nothing(tmp_path, monkeypatch):
    """`--root ~/data` means the user's home (as in `data.root`); `digits` is bundled, so nothing is fetched."""
    monkeypatch.setenv("HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(datasets, "fetch_url", lambda url, dest, timeout_s=60.0: calls.append(url))
    assert datasets.download("digits", "~/data") == tmp_path / "data"
    assert not (tmp_path / "data").exists() and calls == []       # and no directory made for it


def test_an_archive_that_lacks_some_expected_files_is_refused_after_extraction(tmp_path, monkeypatch):
    """A verified archive that extracts without `data_batch_2..5` and `test_batch` is not a usable CIFAR-10: the error
    lists what is still missing."""
    source = tmp_path / "source" / "cifar-10-batches-py"
    source.mkdir(parents=True)
    write_cifar_batch(source / "data_batch_1", make_images(2, (3, 32, 32), 0), np.array([0, 1]))
    archive = tmp_path / "served" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    monkeypatch.setitem(datasets.RESOURCES, "cifar10",
                        (Resource(archive.name, (archive.as_uri(),), _md5(archive), extract=True),))
    with pytest.raises(DataError, match=r"extracted, but these files are still missing: .*data_batch_2"):
        datasets.download("cifar10", tmp_path / "data")


# ---- mutation hunt 6 (data): row sizes, magic bytes, timeouts, which layout wins --------------------------------

def test_a_cifar_batch_whose_rows_are_not_3072_bytes_is_refused(tmp_path):
    """A CIFAR row is one 3x32x32 image (3,072 bytes): rows of 6,144 bytes would reshape into twice as many images as
    labels, so they are refused, not read."""
    batch = {b"data": np.zeros((2, 6144), dtype=np.uint8), b"labels": [0, 1]}
    (tmp_path / "wide").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=r"`data` must be uint8 \[N, 3072\], got uint8 \[2, 6144\]"):
        datasets.read_cifar_batch(tmp_path / "wide")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01"], ids=["first-byte", "unknown-type"])
def test_an_idx_file_with_a_nonzero_first_byte_or_an_unknown_type_code_is_refused(tmp_path, magic):
    """The IDX magic number is 0, 0, a type code among 0x08 0x09 0x0B 0x0C 0x0D 0x0E, and the number of dimensions;
    anything else is no IDX file (a DataError, not a KeyError or a misread array)."""
    (tmp_path / "odd").write_bytes(magic + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(DataError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "odd")


def test_fetch_url_hands_its_timeout_to_urlopen(tmp_path, monkeypatch):
    """A mirror that accepts the connection and then sends nothing must not hang a download forever: `fetch_url` passes
    `timeout_s` (60 s unless given) to `urlopen`, and writes what it reads to `dest`."""
    seen = []

    def fake_urlopen(url, timeout=None):
        seen.append((url, timeout))
        return io.BytesIO(b"payload")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", fake_urlopen)
    datasets.fetch_url("https://example.invalid/a", tmp_path / "a")
    datasets.fetch_url("https://example.invalid/b", tmp_path / "b", timeout_s=5.0)
    assert seen == [("https://example.invalid/a", 60.0), ("https://example.invalid/b", 5.0)]
    assert (tmp_path / "a").read_bytes() == b"payload"


def test_fashion_files_in_fashion_mnist_win_over_other_layouts(tmp_path):
    """The module docstring: files live in <root>/fashion-mnist/, and are *also* found in the torchvision layout or the
    root itself; where both hold them, the loader and `dataset_files` take <root>/fashion-mnist/."""
    images, labels = fashion_arrays()
    write_fashion(tmp_path / "fashion-mnist", images, labels)
    other = {split: (y + 1) % 10 for split, y in labels.items()}
    write_fashion(tmp_path / "FashionMNIST" / "raw", images, other)
    np.testing.assert_array_equal(datasets.load_fashion_mnist(tmp_path)[1], labels["train"])
    assert datasets.dataset_files("fashion_mnist", tmp_path) == [
        tmp_path / "fashion-mnist" / (stem + ".gz") for stem in datasets.FASHION_STEMS]


class _Python2Pickler(pickle._Pickler):
    """Writes `bytes` the way Python 2 wrote its `str` (SHORT_BINSTRING / BINSTRING opcodes), as in the published CIFAR
    batches: their keys and the raw bytes of their numpy arrays are Python 2 strings."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def test_a_cifar_batch_pickled_by_python_2_reads_with_its_raw_bytes_intact(tmp_path):
    """The published CIFAR batches are Python 2 pickles: their strings are bytes of any value (the image data too), read
    back as bytes (`encoding="bytes"`), never decoded as text."""
    images = make_images(3, (3, 32, 32), 4)
    out = io.BytesIO()
    _Python2Pickler(out, protocol=2).dump({b"data": images.reshape(3, -1), b"labels": [7, 0, 3]})
    assert pickle.SHORT_BINSTRING + b"\x04data" in out.getvalue()
    (tmp_path / "py2").write_bytes(out.getvalue())
    x, y = datasets.read_cifar_batch(tmp_path / "py2")
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [7, 0, 3]


def test_an_archive_with_a_hard_link_is_refused(tmp_path):
    """Only plain files and folders are extracted: a hard link is a link too (the docstring of `extract_tar`)."""
    archive = tmp_path / "hard.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.type, info.linkname = tarfile.LNKTYPE, "cifar-10-batches-py/test_batch"
        tar.addfile(info)
    with pytest.raises(DataError, match="links and devices are not allowed"):
        datasets.extract_tar(archive, tmp_path / "out")


def test_a_missing_file_tells_to_point_the_root_at_the_folder_that_holds_the_datasets_folder(tmp_path):
    """The hint of a missing file names the dataset's folder (`cifar-10-batches-py/`, `fashion-mnist/`) that
    `data.root` must hold, not the missing file itself."""
    with pytest.raises(DataError, match=r"point `data.root` at the folder that holds `cifar-10-batches-py/`"):
        datasets.load_cifar10(tmp_path)
    with pytest.raises(DataError, match=r"the folder that holds `cifar-100-python/`"):
        datasets.load_cifar100(tmp_path)
    with pytest.raises(DataError, match=r"the folder that holds `fashion-mnist/`"):
        datasets.load_fashion_mnist(tmp_path)


def test_an_idx_file_cut_inside_its_header_is_a_data_error_naming_the_file(tmp_path):
    """A file cut inside its list of dimensions (magic number says 3 dimensions: a 16-byte header, 10 bytes
    written) is a malformed data file: a DataError naming it, like every other malformed IDX file."""
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))[:10])
    with pytest.raises(DataError) as info:
        datasets.read_idx(path)
    assert info.value.path == str(path)


def test_a_gzip_idx_file_with_corrupt_compressed_data_is_a_data_error_naming_the_file(tmp_path):
    """A `.gz` file whose gzip header is intact but whose compressed data is garbled (a bad disk, a broken
    mirror) is corrupt gzip data: a DataError naming the file, as a torn one is, not a bare zlib.error."""
    good = gzip.compress(idx_bytes(np.zeros((1000,), dtype=np.uint8)))
    bad = bytearray(good)
    for i in range(12, 30):
        bad[i] ^= 0xFF
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(bad))
    with pytest.raises(DataError, match="corrupt gzip data") as info:
        datasets.read_idx(path)
    assert info.value.path == str(path)
