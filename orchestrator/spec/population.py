"""The spec's `population:` section: which models a sweep pairs with every other one (the mechanism
map: all-pairs connectivity, clustered and set against cue reliance; docs/SCIENCE.md, "Mechanism map").

    population:
      kinds: [pretrain, finetune]   # every pretrained and every fine-tuned model; [] (default): no population
      controls: true                # with the models only control pairs train (partners, spawn, resubset, twins)
      cue_proportions: []           # only models trained at these proportions; []: all
      methods: []                   # only fine-tuned models of these methods; []: all
      path_kinds: [linear]          # linear (default), aligned, quadratic

Every unordered pair of the population gets one path evaluation per path kind. The population plans
the models it names even without a pair type naming them (the primary cue and no-cue models of every
proportion and seed; the fine-tuned ones of every method), so `paths.pairs: []` with a population is
the map alone. A pair a pair type already plans (same endpoints and path) is that pair's task; the
others are labelled pair type `population`. Ids depend only on the two endpoints and the path
settings, so adding models (seeds, proportions, methods) to a finished sweep adds only their pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator import vocab
from tasks.settings import Settings, setting
from tasks.settings.finetune import FINETUNE_METHOD_NAMES

MODEL_KINDS = (vocab.PRETRAIN, vocab.FINETUNE)


@dataclass(frozen=True)
class Population(Settings):
    kinds: tuple = setting((), choices=MODEL_KINDS, doc="which models are paired with every other one: pretrain "
                           "(every pretrained model: cue and no-cue, and with `controls` the control pairs' models) "
                           "and/or finetune (every fine-tuned model); [] (the default): no population pairs")
    controls: bool = setting(True, doc="include the pretrained models that only control pairs train (cue~cue and "
                             "nocue~nocue partners, spawn children, resubset and same-init models)")
    cue_proportions: tuple[float, ...] = setting((), ge=0.0, le=1.0, doc="only models trained at these cue "
                                                 "proportions (each one of `cue_proportions`); []: every proportion")
    methods: tuple = setting((), choices=FINETUNE_METHOD_NAMES, doc="only fine-tuned models of these methods (each one of "
                             "`finetune.methods`); []: every method")
    path_kinds: tuple = setting((vocab.LINEAR,), choices=vocab.PATH_KINDS, doc="paths evaluated between every two "
                                "models: linear (the default), aligned (permutation alignment first; "
                                "`paths.alignments`), quadratic (a trained midpoint per pair: costly)")

    def cross_problems(self) -> list[tuple[str, str]]:
        out = []
        if self.kinds and not self.path_kinds:
            out.append(("path_kinds", f"[] is empty; give at least one of {', '.join(vocab.PATH_KINDS)}"))
        return out

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)
