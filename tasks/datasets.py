"""Raw dataset files: CIFAR python batches, FashionMNIST IDX files, and their download.

Readers return numpy arrays (`uint8` images `[N, C, H, W]`, `int64` labels `[N]`);
`tasks.data` turns them into normalised tensors. CIFAR batches are pickles, so they are
read with a restricted unpickler that can only rebuild dicts, lists, strings, numbers and
numpy arrays: a planted pickle cannot run code.

Layout under a data root (what `download` writes and the loaders read):
    <root>/cifar-10-batches-py/data_batch_1..5, test_batch
    <root>/cifar-100-python/train, test
    <root>/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
      (also found in <root>/FashionMNIST/raw/ (torchvision's layout) or <root>/ itself)
"""

from __future__ import annotations

import builtins
import codecs
import gzip
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from functools import reduce
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
    from numpy._core import numeric as _np_numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray
    from numpy.core import numeric as _np_numeric


class DataError(ValueError):
    """Missing or malformed data files; the message names the path and what was expected."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.path = None if path is None else str(path)

    def __reduce__(self):  # pickles cleanly across processes, keeping `path`
        return (type(self), (str(self), self.path))


def download_hint(name: str, root: str | os.PathLike | None = None) -> str:
    """The command that fetches dataset `name` (shown in every missing-file error)."""
    return f"mmc-sweep data download {name} --root {root if root is not None else 'DIR'}"


# ---------------------------------------------------------------------------------------------
# Restricted unpickling (CIFAR python batches)

def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` restricted to the text codecs pickle uses for bytes."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused `_codecs.encode` with codec {encoding!r}")
    return codecs.encode(text, encoding)


# Everything a genuine CIFAR batch (pickled by Python 2 or 3, any protocol) needs, and nothing
# that can reach the file system, the shell or arbitrary imports.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, name): getattr(builtins, name)
       for module in ("builtins", "__builtin__")  # Python 3 / Python 2 names
       for name in ("dict", "list", "tuple", "str", "bytes", "int", "float")},
    # Python 3 writes bytes as `_codecs.encode(text, "latin1")` under protocols 0-2.
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _np_numeric._frombuffer,  # protocol 5 arrays
    ("numpy._core.numeric", "_frombuffer"): _np_numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted({f"{m}.{n}" for m, n in _ALLOWED_GLOBALS}))
            raise DataError(
                f"{self._path}: refused to unpickle global `{module}.{name}`; a CIFAR batch may only "
                f"contain plain builtins and numpy arrays ({allowed}). The file is not a genuine CIFAR "
                f"batch: delete it and run `{download_hint('cifar10')}` (or `cifar100`).",
                self._path,
            ) from None


def read_pickle(path: str | os.PathLike) -> Any:
    """Unpickle `path` allowing only builtins and numpy arrays; `DataError` on anything else."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return _RestrictedUnpickler(io.BytesIO(data), path).load()
    except DataError:
        raise
    except Exception as exc:  # truncated file, wrong format, ...
        raise DataError(f"{path}: not a readable CIFAR python batch ({type(exc).__name__}: {exc})", path) from exc


def _get_key(batch: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    found = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch)
    raise DataError(f"{path}: CIFAR batch has no `{key}` entry (found: {found})", path)


def read_cifar_batch(path: str | os.PathLike, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Images `uint8 [N, 3, 32, 32]` and labels `int64 [N]` from one CIFAR python batch."""
    path = Path(path)
    batch = read_pickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: a CIFAR batch is a dict, got {type(batch).__name__}", path)
    data = np.asarray(_get_key(batch, "data", path))
    labels = np.asarray(_get_key(batch, label_key, path), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: `data` must be uint8 [N, 3072], got {data.dtype} {list(data.shape)}", path)
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images", path)
    return data.reshape(-1, 3, 32, 32), labels


# ---------------------------------------------------------------------------------------------
# IDX files (MNIST / FashionMNIST)

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Array from an IDX file (gzip-compressed or raw; detected from the content)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip data ({exc})", path) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})", path)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header of {ndim} dimensions needs {header} bytes, file has {len(raw)}", path)
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + dtype.itemsize * reduce(lambda a, b: a * b, shape, 1)
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header says shape {list(shape)} ({expected} bytes), file has {len(raw)}", path)
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------------------------------
# Loaders

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
FASHION_DIR = "fashion-mnist"
_FASHION_SEARCH = (FASHION_DIR, "FashionMNIST/raw", ".")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_test, y_test


def _require(path: Path, name: str, root: Path) -> Path:
    if not path.is_file():
        raise DataError(
            f"missing {name} file {path}; fetch it with `{download_hint(name, root)}` "
            f"(or point `data.root` at the folder that holds `{path.parent.name}/`)",
            path,
        )
    return path


def load_cifar10(root: str | os.PathLike) -> Arrays:
    """CIFAR-10 from `<root>/cifar-10-batches-py/` (python format)."""
    root = Path(root)
    folder = root / CIFAR10_DIR
    train = [read_cifar_batch(_require(folder / f"data_batch_{i}", "cifar10", root)) for i in range(1, 6)]
    x_test, y_test = read_cifar_batch(_require(folder / "test_batch", "cifar10", root))
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


def load_cifar100(root: str | os.PathLike) -> Arrays:
    """CIFAR-100 (fine labels) from `<root>/cifar-100-python/` (python format)."""
    root = Path(root)
    folder = root / CIFAR100_DIR
    x_train, y_train = read_cifar_batch(_require(folder / "train", "cifar100", root), "fine_labels")
    x_test, y_test = read_cifar_batch(_require(folder / "test", "cifar100", root), "fine_labels")
    return x_train, y_train, x_test, y_test


def _find_idx(root: Path, stem: str) -> Path:
    for sub in _FASHION_SEARCH:
        for name in (stem, stem + ".gz"):
            if (root / sub / name).is_file():
                return root / sub / name
    return _require(root / FASHION_DIR / (stem + ".gz"), "fashion_mnist", root)


FASHION_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")
DATASET_GROUPS = {"cifar10": ("cifar10",), "cifar100": ("cifar100",), "fashion_mnist": ("fashion_mnist",),
                  "dominoes": ("cifar10", "fashion_mnist")}   # the published datasets each one reads


def dataset_files(dataset: str, root: str | os.PathLike) -> list[Path]:
    """The files `dataset` reads under `root` (where they are, or where they belong when missing);
    [] for datasets without files (digits)."""
    root = Path(root)
    out: list[Path] = []
    for group in DATASET_GROUPS.get(dataset, ()):
        if group == "fashion_mnist":
            for stem in FASHION_STEMS:
                found = [root / sub / name for sub in _FASHION_SEARCH for name in (stem, stem + ".gz")
                         if (root / sub / name).is_file()]
                out.append(found[0] if found else root / FASHION_DIR / (stem + ".gz"))
        else:
            out += expected_files(group, root)
    return out


def missing_files(dataset: str, root: str | os.PathLike) -> list[Path]:
    """The files of `dataset` that are not regular files under `root` (cheap: nothing is parsed)."""
    return [path for path in dataset_files(dataset, root) if not path.is_file()]


def load_fashion_mnist(root: str | os.PathLike) -> Arrays:
    """FashionMNIST from IDX files (images `uint8 [N, 1, 28, 28]`)."""
    root = Path(root)
    arrays = []
    for split in ("train", "t10k"):
        images_path = _find_idx(root, f"{split}-images-idx3-ubyte")
        labels_path = _find_idx(root, f"{split}-labels-idx1-ubyte")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {list(images.shape)}",
                            images_path)
        if labels.shape != (images.shape[0],):
            raise DataError(f"{labels_path}: {labels.shape} labels for {images.shape[0]} images", labels_path)
        arrays += [images[:, None], labels.astype(np.int64)]
    return arrays[0], arrays[1], arrays[2], arrays[3]


# ---------------------------------------------------------------------------------------------
# Download

@dataclass(frozen=True)
class Resource:
    """One published file: where to fetch it, its md5, and whether to untar it into the root."""

    filename: str
    urls: tuple[str, ...]  # tried in order
    md5: str
    extract: bool
    subdir: str = ""  # where the file goes under root (not extracted archives)


_FASHION_URLS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
_FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
RESOURCES: dict[str, tuple[Resource, ...]] = {
    "cifar10": (Resource("cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                         "c58f30108f718f92721af3b95e74349a", extract=True),),
    "cifar100": (Resource("cifar-100-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                          "eb9058c3a382ffc7106e4002c42a8d85", extract=True),),
    "fashion_mnist": tuple(Resource(name, tuple(base + name for base in _FASHION_URLS), md5, extract=False,
                                    subdir=FASHION_DIR) for name, md5 in _FASHION_MD5.items()),
}
DOWNLOADS: dict[str, tuple[str, ...]] = {  # dataset name -> resource groups it needs
    "cifar10": ("cifar10",),
    "cifar100": ("cifar100",),
    "fashion_mnist": ("fashion_mnist",),
    "dominoes": ("cifar10", "fashion_mnist"),
    "digits": (),  # bundled with scikit-learn
}


def md5_file(path: str | os.PathLike) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_url(url: str, dest: Path, timeout_s: float = 60.0) -> None:
    """Stream `url` (http(s):// or file://) into `dest`."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _safe_members(archive: tarfile.TarFile, path: Path) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    for m in members:
        parts = PurePosixPath(m.name).parts
        if m.name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise DataError(f"{path}: refusing unsafe archive member `{m.name}` (absolute path or `..`)", path)
        if not (m.isfile() or m.isdir()):
            raise DataError(f"{path}: refusing archive member `{m.name}` (links and devices are not allowed)", path)
    return members


def extract_tar(path: Path, dest: Path) -> None:
    """Extract a tar archive after checking every member stays inside `dest` and is a plain file/dir."""
    with tarfile.open(path) as archive:
        members = _safe_members(archive, path)
        if hasattr(tarfile, "data_filter"):
            archive.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            archive.extractall(dest, members=members)


def _fetch_verified(resource: Resource, dest: Path) -> None:
    if dest.is_file() and md5_file(dest) == resource.md5:
        return
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in resource.urls:
        try:
            fetch_url(url, part)
        except OSError as exc:
            errors.append(f"{url}: {exc}")
            continue
        got = md5_file(part)
        if got == resource.md5:
            os.replace(part, dest)
            return
        part.unlink(missing_ok=True)
        errors.append(f"{url}: md5 {got} does not match the published md5 {resource.md5}")
    part.unlink(missing_ok=True)
    raise DataError(f"could not fetch a verified {resource.filename}:\n  " + "\n  ".join(errors), dest)


def expected_files(group: str, root: str | os.PathLike) -> list[Path]:
    """The files a resource group provides once downloaded (CIFAR: the extracted batches)."""
    root = Path(root)
    if group == "cifar10":
        return [root / CIFAR10_DIR / f"data_batch_{i}" for i in range(1, 6)] + [root / CIFAR10_DIR / "test_batch"]
    if group == "cifar100":
        return [root / CIFAR100_DIR / "train", root / CIFAR100_DIR / "test"]
    return [root / FASHION_DIR / name for name in _FASHION_MD5]


def download(name: str, root: str | os.PathLike) -> Path:
    """Fetch, md5-verify and extract dataset `name` under `root`; returns `root`.

    Idempotent: archives already present with the right md5 are not fetched again, and
    archives already extracted are not extracted again. `dominoes` fetches both CIFAR-10 and
    FashionMNIST; `digits` is bundled with scikit-learn and needs nothing.
    """
    if name not in DOWNLOADS:
        raise DataError(f"unknown dataset `{name}`; downloadable: {', '.join(DOWNLOADS)}")
    root = Path(root).expanduser()
    if DOWNLOADS[name]:        # `digits` has nothing to fetch: no directory made for it
        root.mkdir(parents=True, exist_ok=True)
    for group in DOWNLOADS[name]:
        for resource in RESOURCES[group]:
            folder = root / resource.subdir
            if resource.extract and all(p.is_file() for p in expected_files(group, root)):
                continue
            raw = folder / resource.filename.removesuffix(".gz")
            if not resource.extract and raw.is_file() and not (folder / resource.filename).is_file():
                continue  # already decompressed by the user
            folder.mkdir(parents=True, exist_ok=True)
            archive = folder / resource.filename
            _fetch_verified(resource, archive)
            if resource.extract:
                extract_tar(archive, root)
                missing = [str(p) for p in expected_files(group, root) if not p.is_file()]
                if missing:
                    raise DataError(f"{archive}: extracted, but these files are still missing: {missing}", archive)
    return root
