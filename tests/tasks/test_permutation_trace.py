"""Permutation specs traced from a model's forward (tasks/permutation.py): the built-ins' equal the
hand-written specs they replaced. The built-ins also go through every alignment test of test_align.py."""
import pytest

from tasks.align import permutation_spec
from tasks.models import BasicBlock, ConvBN, PlainCNN, ResNet, build_model
from tasks.permutation import trace_permutation_spec

BUILTINS = [("small_cnn", 3), ("vgg13", 2), ("resnet18", 3)]
BN_ENTRIES = ("weight", "bias", "running_mean", "running_var")


# The hand-written specs the tracer replaced (tasks/align.py until the tracer), kept as the oracle.
def _convbn(name, out, inp):
    return {f"{name}.conv.weight": (out, inp, None, None), **{f"{name}.bn.{e}": (out,) for e in BN_ENTRIES}}


def _hand_written(model):
    axes, points = {}, {}
    if isinstance(model, PlainCNN):
        prev = None
        for i in range(len(model.blocks)):
            axes.update(_convbn(f"blocks.{i}", f"blocks.{i}", prev))
            points[f"blocks.{i}"], prev = [f"blocks.{i}"], f"blocks.{i}"
    else:
        assert isinstance(model, ResNet)
        prev = "stage.0"
        axes.update(_convbn("stem", prev, None))
        points[prev] = ["stem"]
        for k, block in enumerate(model.blocks):
            name, inner, stage = f"blocks.{k}", f"blocks.{k}.inner", prev
            assert isinstance(block, BasicBlock)
            if isinstance(block.shortcut, ConvBN):
                stage = f"stage.{int(prev.split('.')[1]) + 1}"
                axes.update(_convbn(f"{name}.shortcut", stage, prev))
                points[stage] = []
            axes[f"{name}.conv1.weight"] = (inner, prev, None, None)
            axes.update({f"{name}.bn1.{e}": (inner,) for e in BN_ENTRIES})
            axes[f"{name}.conv2.weight"] = (stage, inner, None, None)
            axes.update({f"{name}.bn2.{e}": (stage,) for e in BN_ENTRIES})
            points[inner] = [f"{name}.bn1"]
            points[stage].append(name)
            prev = stage
    axes["head.weight"], axes["head.bias"] = (None, prev), (None,)
    return axes, {g: tuple(p) for g, p in points.items()}


@pytest.mark.parametrize("name,width", BUILTINS)
def test_traced_specs_of_the_builtins_equal_the_hand_written_ones_in_the_same_order(name, width):
    """Same state entries in the same order, the same groups (tied axes) in the same order, the same
    points; only group names may differ. Weight matching depends on the group order (its coordinate
    descent visits groups in a seeded random order of the list), so the order is part of the check."""
    model = build_model(name, 10, in_channels=3, width=width)
    traced = trace_permutation_spec(model)
    axes, points = _hand_written(model)
    assert list(traced.axes) == list(axes)
    names = {}
    for group, entries in traced.groups.items():
        old = {axes[n][ax] for n, ax in entries}
        assert len(old) == 1, (group, old)
        names[group] = old.pop()
    assert len(set(names.values())) == len(names)
    assert {n: tuple(names.get(g) for g in gs) for n, gs in traced.axes.items()} == axes
    assert list(names.values()) == list(dict.fromkeys(g for gs in axes.values() for g in gs if g is not None))
    assert {names[g]: p for g, p in traced.points.items()} == points


def test_a_resnet_stage_is_one_group_across_its_residual_adds():
    spec = permutation_spec(build_model("resnet18", 10, width=4))
    group = {(n, ax): g for g, entries in spec.groups.items() for n, ax in entries}
    stages = [[("stem.conv.weight", 0), ("blocks.0.conv1.weight", 1), ("blocks.0.conv2.weight", 0),
               ("blocks.1.conv2.weight", 0), ("blocks.1.bn2.running_var", 0), ("blocks.2.shortcut.conv.weight", 1)]]
    for k in (2, 4, 6):   # a stage: its projection, every block's output, the next stage's inputs
        stages.append([(f"blocks.{k}.shortcut.conv.weight", 0), (f"blocks.{k}.conv2.weight", 0),
                       (f"blocks.{k + 1}.conv1.weight", 1), (f"blocks.{k + 1}.conv2.weight", 0)]
                      + ([(f"blocks.{k + 2}.conv1.weight", 1)] if k < 6 else [("head.weight", 1)]))
    stage_groups = [{group[e] for e in entries} for entries in stages]
    assert all(len(g) == 1 for g in stage_groups)
    assert len(set.union(*stage_groups)) == 4
    for k in range(8):    # a block's inner channels: conv1's output, bn1, conv2's input; nothing else
        inner = group[(f"blocks.{k}.conv1.weight", 0)]
        assert set(spec.groups[inner]) == {(f"blocks.{k}.conv1.weight", 0), (f"blocks.{k}.conv2.weight", 1)} | \
            {(f"blocks.{k}.bn1.{e}", 0) for e in BN_ENTRIES}
        assert spec.points[inner] == (f"blocks.{k}.bn1",)
    assert len(spec.groups) == 4 + 8
    assert spec.points[group[("stem.conv.weight", 0)]] == ("stem", "blocks.0", "blocks.1")
    assert spec.axes["stem.conv.weight"][1] is None and spec.axes["head.weight"][0] is None
