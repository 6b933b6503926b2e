"""What a dataset with a spurious cue is set by, and the datasets built in (`tasks.data` builds the
images, the cue and the counterfactual sets)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from tasks import plugins
from tasks.settings import INT64_MAX, Settings, identity_dict, setting

CUES = ("box", "dominoes")
EVAL_SETS = ("nocue", "cue", "randcue", "randimg")
EVAL_SPLITS = ("test", "val")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]  # (height, width) as the model sees it
    cues: tuple[str, ...]  # allowed cues, the first is the default
    needs_root: bool  # False: bundled (no download)
    storage_dtype: str  # the torch dtype images are held in memory as; batches are float32
    box_layout: str = "grid"  # where box cues go: "grid" (the paper's) or "ring" (border only; see box_corners)
    train_size: int = 0  # training images after the validation carve-out (the published files)
    val_size: int = 0  # validation images carved from the published training split (fixed draw)
    # the most training images of one class after the carve-out: exact where the images are known without
    # a download (digits, a dataset of your own), else the published per-class count (an upper bound); 0:
    # unknown. The plan refuses, by it, a cue proportion that would make a model another (cue_proportion_problem).
    largest_class: int = 0


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", 10, 1, (20, 20), ("box",), False, "float32", box_layout="ring",
                          train_size=1200, val_size=200, largest_class=124),
    "cifar10": DatasetInfo("cifar10", 10, 3, (32, 32), ("box",), True, "float16", train_size=45000, val_size=5000,
                           largest_class=5000),
    "cifar100": DatasetInfo("cifar100", 100, 3, (32, 32), ("box",), True, "float16",
                            train_size=45000, val_size=5000, largest_class=500),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, (28, 28), ("box",), True, "float16",
                                 train_size=55000, val_size=5000, largest_class=6000),
    "dominoes": DatasetInfo("dominoes", 10, 3, (64, 32), ("dominoes",), True, "float16",  # CIFAR-10's split
                            train_size=45000, val_size=5000, largest_class=5000),
}


def cue_count(n: int, proportion: float) -> int:
    """How many of a class's `n` training samples carry the cue: `p * n` rounded half up."""
    return math.floor(proportion * n + 0.5)


def cue_proportion_problem(p: float, largest_class: int, dataset: str, *, resubset: bool,
                           at_most: bool = False) -> str | None:
    """Why cue proportion `p` would make a model another one, naming the proportion to use; None if it does
    not. A class of n gets `cue_count(n, p)` cued, and the largest class decides both cases:
    - p > 0 cues no sample of the largest class, so none at all: the "cued" model is the clean one;
    - for a `cue~cue:resubset` partner (another cued subset), p cues all of the largest class, so every
      sample of every class: its subset is its model's, and the same-data control is the model itself.
    `largest_class`: that class's size, or with `at_most` an upper bound on it (then a problem named here
    is certain, and a proportion passed here may still meet it once the data are loaded)."""
    n, size = largest_class, f"{'at most ' if at_most else ''}{largest_class}"
    if p > 0 and cue_count(n, p) == 0:
        return (f"{p:g} cues no training sample of {dataset!r}; use at least {math.ceil(5e3 / n) / 1e4:g} (a class "
                f"of n gets p * n rounded half up cued; its largest class has {size} training images)")
    if resubset and cue_count(n, p) == n:
        return (f"{p:g} leaves a `cue~cue:resubset` partner on {dataset!r} no other cued subset: it would be its "
                f"model; use at most {math.floor(1e4 - 5e3 / n - 1e-9) / 1e4:g} for this pair (a class of n gets "
                f"p * n rounded half up cued: every sample of every class here; its largest class has {size})")
    return None


def same_cued_samples(p: float, q: float, largest_class: int) -> bool:
    """Whether cue proportions p and q cue as many samples as each other in every class of up to
    `largest_class` images, and so, for one data seed, the same samples (`tasks.data.choose_cued` cues
    a class's smallest keys): the same training data, one model under two names. True only where certain:
    proportions at least 1 / `largest_class` apart always differ in its largest class."""
    return all(cue_count(n, p) == cue_count(n, q) for n in range(1, largest_class + 1))


@dataclass(frozen=True)
class DataSettings(Settings):
    dataset: str = setting("digits", doc="digits (built in) | cifar10 | cifar100 | fashion_mnist | dominoes, or "
                           "your own: `package.module:load` or an entry point of group mmc_sweep.datasets")
    cue: str = setting("box", choices=CUES, doc="box; dominoes for the dominoes dataset (its only cue; the "
                       "default box is read as dominoes there)")
    cue_proportion: float = setting(0.0, ge=0, le=1, doc="fraction of each class's training samples with the cue")
    seed: int = setting(0, ge=0, le=INT64_MAX, doc="data seed: which samples get the cue, counterfactual draws")
    cue_seed: int | None = setting(None, ge=0, le=INT64_MAX, doc="which training samples carry the cue and how "
                                   "it is painted on them; null: drawn from `seed` (a `cue~cue:resubset` partner "
                                   "gets another: the same data distribution, another cued subset)")
    eval_split: str = setting("test", choices=EVAL_SPLITS, doc="images the four counterfactual sets are built "
                              "from: test (for reporting) | val (the validation images carved from the training "
                              "split, for choosing settings; never trained on either way)")
    root: str | None = setting(None, doc="directory of the dataset files (None for digits)")

    def __post_init__(self) -> None:
        info = DATASETS.get(self.dataset)
        if info is not None and self.cue == "box" and "box" not in info.cues:
            object.__setattr__(self, "cue", info.cues[0])  # the field default means "this dataset's cue"
        super().__post_init__()

    def cross_problems(self) -> list[tuple[str, str]]:
        if self.dataset not in DATASETS:
            problem = plugins.name_problem(self.dataset, tuple(DATASETS), plugins.DATASET_GROUP, "dataset",
                                           "package.module:load")
            if problem:
                return [("dataset", problem)]
            allowed = ("box",)
        else:
            allowed = DATASETS[self.dataset].cues
        if self.cue not in allowed:
            return [("cue", f"{self.cue!r} is not available for dataset {self.dataset!r}; allowed: {', '.join(allowed)}")]
        return []


# The version of the images the built-in datasets yield; part of every task id. Bump it when they
# change (2: the validation images were carved out of the training splits).
DATA_VERSION = 2


def data_identity(settings: DataSettings) -> dict:
    """What identifies a task's data in its id: the settings (as `identity_dict`, without `root`) and
    the data's version (DATA_VERSION, or a dataset of your own's `tasks.plugins.version`)."""
    identity = {k: v for k, v in identity_dict(settings).items() if k != "root"}
    identity["version"] = DATA_VERSION if settings.dataset in DATASETS else \
        plugins.version(settings.dataset, plugins.DATASET_GROUP)
    return identity


def dataset_info(name: str, root: str | None = None) -> DatasetInfo:
    """The facts of a built-in dataset (`DATASETS`), or of a dataset of your own: loaded by
    `tasks.data.user_dataset_info` (numpy, and your code, imported only then)."""
    if name in DATASETS:
        return DATASETS[name]
    from tasks.data import user_dataset_info

    return user_dataset_info(name, root)
