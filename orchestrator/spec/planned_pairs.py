"""Which pair types a spec can plan, and what the plan says about them: the pair types its cue proportions
(or an empty `finetune.methods`) give no model to pair, the proportions that cue every sample (no
`resubset` partner there), a default `paths.pairs` trimmed to what can run with a note naming what it
left out, and the notes on pair types planned at fewer proportions or without the controls the claims
compare them with. `spec.rules` refuses what the user asked for and cannot be planned; these are the
default's and the plan's side of the same facts.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from orchestrator import vocab
from orchestrator.messages import show
from tasks.datasets import DataError
from tasks.settings.data import cue_count, dataset_info
from tasks.settings.finetune import CBFT, NAIVE, NAIVE_CUED


def unservable_pairs(pair_types: tuple[str, ...], props: tuple[float, ...],
                     all_cued: tuple[float, ...] = ()) -> dict[str, str]:
    """The pair types (as written) that `cue_proportions` `props` give no model to pair
    (`vocab.pair_proportions`; `all_cued`: the proportions that cue every sample, `all_cued`), each with
    what it needs."""
    needs = {vocab.CUE_NOCUE: "both 0.0 and a proportion > 0", vocab.CUE_CUE: "a proportion > 0",
             vocab.NOCUE_NOCUE: "0.0", vocab.PRETRAINED_FT: "a proportion > 0"}
    out = {}
    for text in pair_types:
        pair, design, _ = vocab.parse_pair_type(text)
        if not vocab.pair_proportions(pair, design, props, all_cued):
            full = [p for p in props if p >= 1 or p in all_cued]
            out[text] = (f"a proportion above 0 and below 1 that leaves some samples without the cue; at "
                         f"{show(full[0] if len(full) == 1 else full)} {_ALL_CUED}"
                         if design == vocab.RESUBSET and full else needs[pair])
    return out


_ALL_CUED = "every sample carries the cue, so there is no other cued subset"


def all_cued(props: tuple[float, ...], dataset: str | None, root: str | None) -> tuple[float, ...]:
    """The proportions of `props` that cue every training sample of `dataset`: 1.0, and those whose p * n
    rounded half up is every sample of its largest class (`cue_count`; 0.997 of digits' 124), there and so
    in every class; where the largest class is only known as a bound, of a class of that bound, which
    cues every smaller class whole too. A `cue~cue:resubset` partner is not planned at these
    (`vocab.pair_proportions`): there is no other cued subset, the partner would be the model."""
    try:
        n = dataset_info(dataset, root).largest_class if dataset is not None else None
    except (DataError, ValueError):
        n = None                        # `_variant_problems` names that
    return tuple(p for p in props if p >= 1 or (p > 0 and n and cue_count(n, p) == n))


def partly_planned(pair_types: tuple[str, ...], props: tuple[float, ...],
                   all_cued: tuple[float, ...] = ()) -> list[str]:
    """Notes on the pair types planned at fewer of the cue proportions > 0 than the others (a `resubset`
    control at a proportion of `all_cued`, 1.0 among them)."""
    cue = [p for p in props if p > 0]
    out = []
    for text in pair_types:
        pair, design, _ = vocab.parse_pair_type(text)
        planned = vocab.pair_proportions(pair, design, props, all_cued)
        missing = [p for p in cue if p not in planned]
        if planned and missing and pair != vocab.NOCUE_NOCUE:
            out.append(f"{show(text)} is not planned at cue proportion {show(missing[0] if len(missing) == 1 else missing)}: "
                       f"there {_ALL_CUED}" + (" (p * n rounded half up is every sample of each class)"
                                               if any(p < 1 for p in missing) else ""))
    return out


def uncontrolled(pair_types: tuple[str, ...], path_kinds: tuple[str, ...] = vocab.PATH_KINDS,
                 methods: tuple[str, ...] = ()) -> list[str]:
    """Notes on pair types planned without the controls the claims compare them with (the claim then says
    `not measured` for that comparison): same-init cue~nocue without a same-data pair from one initialisation
    (claim (d)); fine-tuned pairs without a pair of independently trained models (claim (b)); cue~nocue
    without the quadratic path (claim (d)); CBFT fine-tuned and compared without naive fine-tuning, or without
    the control with its extra cued data (claim (c)). Every pair type of a valid spec is planned at some
    proportion (`spec_problems` refuses the others)."""
    parsed = [vocab.parse_pair_type(t)[:2] for t in pair_types]
    out = []
    if (vocab.CUE_NOCUE, vocab.SAME_INIT) in parsed and not any(map(vocab.shares_only_the_start, pair_types)):
        out.append(f"{show(vocab.CUE_NOCUE + ':' + vocab.SAME_INIT)} is planned without a same-data pair from one "
                   "initialisation: claim (d) compares it with 'cue~cue:spawn@0' or 'cue~cue:resubset' and says "
                   "'not measured' without one; add one to `paths.pairs`")
    references = {(pair, vocab.INDEPENDENT) for pair in vocab.FT_REFERENCES}   # `cue~cue:independent` too
    if any(pair == vocab.PRETRAINED_FT for pair, _ in parsed) and not references & set(parsed):
        out.append(f"{show(vocab.PRETRAINED_FT)} is planned without a pair of independently trained models: claim "
                   "(b) compares the fine-tuned model's barrier with one and says 'not measured' without it; add "
                   f"{', '.join(map(show, vocab.FT_REFERENCES[:-1]))} or {show(vocab.FT_REFERENCES[-1])} to `paths.pairs`")
    if any(pair == vocab.CUE_NOCUE for pair, _ in parsed) and vocab.QUADRATIC not in path_kinds:
        out.append(f"{show(vocab.CUE_NOCUE)} pairs are planned without the quadratic path: claim (d) compares it with "
                   f"the linear one and says 'not measured' without it; add {show(vocab.QUADRATIC)} to `paths.kinds`")
    # methods a valid spec lists are trained (`unplanned_requests` refuses the others): pretrained~ft or a population
    if CBFT in methods and NAIVE not in methods:
        out.append(f"`finetune.methods` has {show(CBFT)} without {show(NAIVE)}: claim (c) compares CBFT with naive "
                   f"fine-tuning and says 'not measured' without it; add {show(NAIVE)} to `finetune.methods`")
    if CBFT in methods and NAIVE_CUED not in methods:
        out.append(f"`finetune.methods` has {show(CBFT)} without {show(NAIVE_CUED)}: without naive fine-tuning on "
                   "CBFT's extra cued data, claim (c) cannot tell CBFT's objective apart from the data it sees (its "
                   f"note says so); add {show(NAIVE_CUED)} to `finetune.methods`")
    return out


_NO_METHODS = "pairs fine-tuned models while `finetune.methods` is empty"


def without_unservable_default_pairs(top, set_by_user: bool, cued: tuple[float, ...]) -> tuple[Any, dict[str, str]]:
    """A `paths.pairs` the user did not set (the default's, a profile's or an `extends:`) without the pair
    types `cue_proportions` cannot train, or that pair fine-tuned models where `finetune.methods` is empty,
    and those left out with what each needs: a default that cannot run is no request. Pairs the user listed
    stay (`spec_problems` refuses them), and so does a list none of whose pairs can run (the same refusal
    says why)."""
    dropped = unservable_pairs(top.paths.pairs, top.cue_proportions, cued)
    if not top.finetune.methods:
        dropped.update({text: _NO_METHODS for text in top.paths.pairs if text not in dropped and
                        vocab.parse_pair_type(text)[0] == vocab.PRETRAINED_FT})
    kept = tuple(p for p in top.paths.pairs if p not in dropped)
    if set_by_user or not dropped or not kept:
        return top, {}
    return replace(top, paths=replace(top.paths, pairs=kept)), dropped


def left_out_note(dropped: dict[str, str], origin: str, props: tuple[float, ...]) -> str:
    """The note on what `without_unservable_default_pairs` left out of the default `paths.pairs` (`origin`:
    the layer that set it), each pair type with its cause."""
    by_props = ", ".join(f"{show(text)} (needs {what})" for text, what in dropped.items() if what != _NO_METHODS)
    by_methods = ", ".join(show(text) for text, what in dropped.items() if what == _NO_METHODS)
    left_out = ", and ".join(([f"{by_props}, which `cue_proportions` {show(list(props))} cannot train"] if by_props
                              else []) + ([f"{by_methods}, which {_NO_METHODS}"] if by_methods else []))
    return f"`paths.pairs` ({origin}): left out {left_out}; list `paths.pairs` to choose the pairs yourself"
