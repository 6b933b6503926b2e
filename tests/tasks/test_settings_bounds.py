"""The least value each count setting means something at, and the class sizes the plan bounds cue proportions by."""
import pytest

from tasks import settings as S
from tasks.align import AlignSettings
from tasks.finetune import FinetuneSettings
from tasks.paths import PathSettings
from tasks.settings.data import DATASETS, cue_count, cue_proportion_problem, same_cued_samples


def test_alignment_needs_at_least_two_samples_to_correlate_activations():
    """Activation matching correlates channels over the samples; the features a head reads are one row per image,
    so a single image gives every channel zero variance and no correlation at all. Two are the least that match."""
    with pytest.raises(S.SettingsError, match="`samples`: "):
        AlignSettings(samples=1)
    assert AlignSettings(samples=2).samples == 2


def test_paths_may_be_evaluated_and_batchnorm_re_estimated_one_image_per_batch():
    """`eval_batch_size` only splits the work ("a batch of at least one"): one image per batch is allowed."""
    assert PathSettings(eval_batch_size=1).eval_batch_size == 1
    with pytest.raises(S.SettingsError, match="`eval_batch_size`: "):
        PathSettings(eval_batch_size=0)


def test_fine_tuning_may_take_a_clean_subset_of_a_single_image():
    """The least clean subset is one image (fine-tuned in batches of one); none at all is refused."""
    one = FinetuneSettings(clean_subset=1, batch_size=1)
    assert (one.clean_subset, one.cross_problems()) == (1, [])
    with pytest.raises(S.SettingsError, match="`clean_subset`: "):
        FinetuneSettings(clean_subset=0, batch_size=1)


# The published training splits are balanced: CIFAR-10 50,000 images (5,000 per class), CIFAR-100 50,000 (500 per
# class), FashionMNIST 60,000 (6,000 per class); dominoes pairs CIFAR-10's.
PUBLISHED_PER_CLASS = {"cifar10": 5000, "cifar100": 500, "fashion_mnist": 6000, "dominoes": 5000}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PER_CLASS))
def test_the_largest_class_of_a_downloaded_dataset_is_its_published_per_class_count(name):
    """"else the published per-class count (an upper bound)": the images of a class before the validation
    carve-out, the published training split (train_size + val_size) shared evenly among the classes."""
    info = DATASETS[name]
    assert info.largest_class == PUBLISHED_PER_CLASS[name]
    assert info.largest_class * info.num_classes == info.train_size + info.val_size


def test_a_fashion_mnist_proportion_that_cues_one_of_six_thousand_is_not_refused():
    """A class of 6,000 FashionMNIST images gets p * 6000 rounded half up cued: 8.5e-5 cues 1 of them (0.51), so
    the plan may not call it a proportion that cues nothing; 8e-5 (0.48) cues none, below 1 / 12,000."""
    assert cue_proportion_problem(8.5e-5, DATASETS["fashion_mnist"].largest_class, "fashion_mnist",
                                  resubset=False, at_most=True) is None
    assert cue_proportion_problem(8e-5, DATASETS["fashion_mnist"].largest_class, "fashion_mnist",
                                  resubset=False, at_most=True) is not None


def test_proportions_that_differ_only_in_a_class_of_one_image_do_not_cue_the_same_samples():
    """"in every class of up to `largest_class` images": a class of 1 gets 0.49 rounded half up = 0 cued under
    p = 0.49 and 1 under q = 0.5, though a class of 2 gets 1 under both; a class of one image tells them apart."""
    assert cue_count(1, 0.49) == 0 and cue_count(1, 0.5) == 1
    assert cue_count(2, 0.49) == cue_count(2, 0.5) == 1
    assert not same_cued_samples(0.49, 0.5, 2)
    assert same_cued_samples(0.49, 0.45, 2)
