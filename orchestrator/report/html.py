"""report.html: the page skeleton, styles and self-test script are files under `templates/`
(`report.html`, `report.css`, `selftest.js`); this module renders the tables and figures into it.
The page is self-contained: figures are inline base64 PNGs (the files next to it are linked too)."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from string import Template

import pandas as pd

from orchestrator.report import claims as claims_lib
from orchestrator.report import figures as figures_lib
from orchestrator import vocab
from orchestrator.report import learnt, plots, stats
from tasks.settings.data import EVAL_SETS
from tasks.settings.finetune import FINETUNE_METHOD_NAMES
MARKS = claims_lib.MARKS
VERDICT_CLASS = {claims_lib.HOLDS: "holds", claims_lib.FAILS: "fails", claims_lib.UNSEPARATED: "unseparated",
                 claims_lib.NOT_TESTABLE: "unmeasured"}


@lru_cache(maxsize=None)
def template(name: str) -> str:
    return resources.files("orchestrator.report").joinpath("templates", name).read_text(encoding="utf-8")


def esc(value) -> str:
    return html.escape(str(value))


def _cell_text(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return stats.MISSING
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def html_table(df: pd.DataFrame, digits: int = 4) -> str:
    if df.empty:
        return "<p><em>No rows yet.</em></p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        texts = [_cell_text(v, digits) for v in row]
        cells = [f'<td class="missing">{esc(t)}</td>' if t == stats.MISSING else f"<td>{esc(t)}</td>" for t in texts]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(items: Mapping[str, object]) -> str:
    if not items:
        return "<p><em>None recorded.</em></p>"
    rows = "".join(f'<tr><th class="row">{esc(k)}</th><td class="row">{esc(v)}</td></tr>' for k, v in items.items())
    return f"<table>{rows}</table>"


def shade(fraction: float, rgb: tuple[int, int, int] = (66, 133, 244)) -> str:
    """A background colour whose strength grows with `fraction` in [0, 1]."""
    f = min(1.0, max(0.0, fraction)) if fraction == fraction else 0.0
    return f"background: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {0.05 + 0.35 * f:.2f})"


def _n_text(ns) -> str:
    ns = sorted({int(n) for n in ns if n == n})
    return stats.MISSING if not ns else str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------

def banner(progress: pd.DataFrame, planned: int | None, damaged: Mapping[str, str] | None = None,
           spec_unread: str = "", unlearnt: str = "") -> str:
    """Progress: green when every planned task finished, amber for a partial sweep, red when
    some tasks failed or were skipped (their results are missing), when finished tasks' outputs no longer
    verify (`damaged`: task id -> why), or when the sweep's spec could not be read (`spec_unread`: why;
    the claims are then judged by the default rules), or when trained models learnt nothing (`unlearnt`:
    `learnt.warning_text`'s line)."""
    total = progress.iloc[-1] if not progress.empty else None
    finished = int(total[vocab.FINISHED]) if total is not None else 0
    bad = int(total[vocab.FAILED] + total[vocab.SKIPPED]) if total is not None else 0
    if planned is None:
        text = f"<strong>{finished} tasks finished</strong> (the number planned is unknown)."
        cls = "bad" if bad else "ok"
    elif finished >= planned and not bad:
        text, cls = f"<strong>{finished} of {planned} tasks finished</strong>: the sweep is complete.", "ok"
    else:
        text = (f"<strong>⚠ This is a partial sweep</strong>: <strong>{finished} of {planned} tasks "
                f"finished</strong>, {planned - finished} have no results yet"
                + (f" ({bad} failed or skipped)" if bad else "")
                + ". Tables show “—” for missing cells; figures, statistics and claims cover finished tasks "
                  "only. Rerun <code>mmc-sweep report DIR</code> to refresh.")
        cls = "bad" if bad else "partial"
    if damaged:
        shown = "; ".join(f"<code>{esc(t)}</code>: {esc(why)}" for t, why in list(damaged.items())[:5])
        one = len(damaged) == 1
        text += (f"<p><strong>⚠ {len(damaged)} finished task{'' if one else 's'} no longer "
                 f"verif{'ies' if one else 'y'}</strong> ({'its' if one else 'their'} files changed after "
                 f"{'it' if one else 'they'} finished): counted as not run above; the next <code>mmc-sweep run</code> "
                 f"recomputes {'it' if one else 'them'}. {shown}{' …' if len(damaged) > 5 else ''}</p>")
        cls = "bad"
    if spec_unread:
        text += (f"<p><strong>⚠ {esc(spec_unread)}</strong>: the claims are judged by the default rules, not those "
                 "the sweep declared.</p>")
        cls = "bad"
    if unlearnt:
        rest = unlearnt.removeprefix(f"warning: {learnt.HEAD}")
        text += f"<p><strong>⚠ {esc(learnt.HEAD.capitalize())}</strong>{esc(rest)}</p>"
        cls = "bad"
    table = html_table(progress.astype(object)) if not progress.empty else ""
    return f'<div class="banner {cls}" id="progress">{text}{table}</div>'


def failed_table(failed: pd.DataFrame) -> str:
    if failed.empty:
        return ""
    shown = failed[["task_id", "kind", "error"]].copy()
    shown["error"] = shown["error"].fillna("").map(lambda e: e.strip().splitlines()[-1][:300] if e.strip() else "")
    return ('<h2 id="failed">Failed tasks</h2><p class="muted">Last line of each error; the full traceback is in '
            "the task's log and its MLflow run.</p>" + html_table(shown))


def claims_html(claims: Sequence[claims_lib.Claim], rules: Mapping[str, object] | None = None) -> str:
    """The claims with their rules (the spec's `claims:` section, printed as the spec states it), each
    verdict, its comparisons (with why a comparison is not testable, and its power) and statistics."""
    if not claims:
        return "<p><em>No claim can be judged yet: no results (or the dataset's class count is unknown).</em></p>"
    out, context = [], None
    if rules:
        out.append('<details class="rules" id="claim-rules"><summary>Decision rules (the spec\'s <code>claims:</code>, '
                   "fixed before the results)</summary>" + kv_table({k: _rule_text(v) for k, v in rules.items()})
                   + "</details>")
    for claim in claims:
        if claim.context != context and (claim.context or context):
            # a claim of the whole sweep (claim (e)'s population) after per-context ones gets a heading of its own,
            # not the last context's
            out.append(f"<h3>{esc(claim.context or 'the whole sweep')}</h3>")
        context = claim.context
        checks = "".join(
            f'<li><span class="mark {c.outcome}">{MARKS[c.outcome]}</span>{esc(c.text)} '
            f'<span class="muted">— {esc(c.evidence)}{"" if c.required else " (supporting)"}</span>'
            + (f'<br><span class="reason">{"not testable: " if c.outcome == claims_lib.UNTESTABLE else ""}'
               f"{esc(c.reason)}</span>" if c.reason else "")
            + (f'<br><span class="muted power">power: {esc(c.power)}</span>' if c.power else "") + "</li>"
            for c in claim.checks)
        also = [d for d, _ in claim.rows[0].also] if claim.rows and claim.rows[0].also else []
        rows = "".join(
            f'<tr class="{r.role}"><td class="row">{esc(r.role)}</td><td class="row">{esc(r.label)}</td>'
            f'<td class="row">{esc(r.measure)}</td><td>{r.est.n}</td><td>{esc(r.value())}</td>'
            + "".join(f"<td>{esc(e.text(3).rsplit(' (n =', 1)[0])}</td>" for _, e in r.also)
            + "".join("<td></td>" for _ in range(len(also) - len(r.also))) + "</tr>"
            for r in claim.rows)
        table = ("<details><summary>The statistics behind it</summary><table><thead><tr><th>role</th>"
                 "<th>model / pair</th><th>measure</th><th>n</th><th>mean [interval]</th>"
                 + "".join(f"<th>{esc(d)}</th>" for d in also) + f"</tr></thead><tbody>{rows}</tbody></table></details>") \
            if rows else ""
        out.append(f'<div class="claim {VERDICT_CLASS[claim.verdict]}"><p><strong>({esc(claim.key)})</strong> '
                   f'{esc(claim.statement)} <span class="verdict">{esc(claim.badge())}</span></p>'
                   f"<p>{esc(claim.sentence())}</p><ul class=\"checks\">{checks}</ul>"
                   # the rule is long (every guard it declares): one click away, beside the statistics
                   f'<details class="rule"><summary>Rule: how each comparison is decided (declared before the '
                   f"results)</summary><p>{esc(claim.rule)}</p></details>{table}</div>")
    return "".join(out)


def drift_html(drift: pd.DataFrame) -> str:
    """Endpoints on the path (BatchNorm re-estimated) against the trained models, per pair type."""
    if drift.empty:
        return "<p><em>No path endpoints to compare yet.</em></p>"
    labels = {c.replace("_", " "): drift[c] for c in stats.varying_labels(drift)}   # several models or proportions
    shown = pd.DataFrame({
        "pair type": drift["pair_type"], "path": drift["path"], **labels, "endpoint": drift["endpoint"],
        "eval set": drift["eval_set"], "n": drift["n"],
        "loss: path − trained": [_interval(m, lo, hi, 1.0, 3) for m, lo, hi in
                                 zip(drift["loss_drift"], drift["loss_low"], drift["loss_high"])],
        "accuracy: path − trained (pp)": [_interval(m, lo, hi, 100.0, 1) for m, lo, hi in
                                          zip(drift["acc_drift"], drift["acc_low"], drift["acc_high"])]})
    return html_table(shown)


def _interval(mean, low, high, scale: float, digits: int) -> str:
    if mean != mean:
        return stats.MISSING
    ci = "" if low != low else f" [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"
    return f"{scale * mean:+.{digits}f}{ci}"


def _rule_text(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else "null" if value is None else str(value)


def barrier_grid(summary: pd.DataFrame, metric: str = "loss", definition: str = "chord", digits: int = 3) -> str:
    """The headline table: rows = pair type × path (and model/cue proportion where the sweep has
    several), an n column (pairs), columns = eval sets, cells "mean [95% CI]" shaded by the mean."""
    if summary.empty:
        return "<p><em>No barriers yet.</em></p>"
    sel = summary[(summary["metric"] == metric) & (summary["definition"] == definition)]
    if sel.empty:
        return "<p><em>No barriers yet.</em></p>"
    sel = sel.assign(path=stats.path_variants(sel))
    extra = stats.varying_labels(sel)
    keys = ["pair_type", "path", *extra]
    sets = stats.order_values(sel["eval_set"], EVAL_SETS)
    rows = sel[keys].drop_duplicates()
    order = [stats.pair_sort_key(p, FINETUNE_METHOD_NAMES) + stats.variant_sort_key(v)
             for p, v in zip(rows["pair_type"], rows["path"])]
    rows = rows.assign(_o=order).sort_values(["_o", *extra]).drop(columns="_o")
    lookup = {tuple(r[k] for k in keys) + (r["eval_set"],): r for _, r in sel.iterrows()}
    top = max(float(sel["mean"].abs().max()), 1e-12)
    head = "".join(f'<th class="row">{esc(k.replace("_", " "))}</th>' for k in ("pair type", "path", *extra))
    head += "<th>n</th>" + "".join(f"<th>{esc(plots.EVAL_SET_TITLES.get(e, e))}</th>" for e in sets)
    body, previous = [], None
    for key in rows.itertuples(index=False):
        key = tuple(key)
        hits = [lookup.get(key + (e,)) for e in sets]
        cells = [f'<td class="row"><strong>{esc(key[0] if key[0] != previous else "")}</strong></td>']
        previous = key[0]
        cells += [f'<td class="row">{esc(v)}</td>' for v in key[1:]]
        cells.append(f"<td>{_n_text([h['n'] for h in hits if h is not None])}</td>")
        for hit in hits:
            if hit is None or pd.isna(hit["mean"]):
                cells.append(f'<td class="missing">{stats.MISSING}</td>')
                continue
            ci = "" if hit["n"] <= 1 else \
                f' <span class="muted">[{hit["ci_low"]:.{digits}f}, {hit["ci_high"]:.{digits}f}]</span>'
            cells.append(f'<td style="{shade(abs(hit["mean"]) / top, (229, 57, 53))}" '
                         f'title="n = {int(hit["n"])}, std = {hit["std"]:.{digits}f}">'
                         f'{hit["mean"]:.{digits}f}{ci}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def barriers_html(summary: pd.DataFrame, swept: Sequence[str]) -> str:
    """The barrier grid per combination of swept values (pairs no axis affects appear in each)."""
    parts = []
    for combo in stats.swept_combos([summary], swept) if not summary.empty else [{}]:
        part = stats.facet(summary, combo) if combo else summary
        heading = f"<h3>{esc(stats.facet_label(combo))}</h3>" if combo else ""
        parts.append(heading + barrier_grid(part) + "<details><summary>Accuracy drop (chord, as a fraction of the set: "
                     f"0.05 is 5 pp), in the same layout</summary>{barrier_grid(part, metric='acc')}</details>")
    return "".join(parts) + ("<details><summary>Every barrier statistic (loss and accuracy; chord and mean-endpoint "
                             "definitions), as in <code>summary.parquet</code></summary>"
                             f"{html_table(summary)}</details>")


def finetune_grid(text: pd.DataFrame, long: pd.DataFrame) -> str:
    """Table 1: rows = models (pretrained references, then methods), one column group per cue
    proportion with one column per eval set, "mean ± std" accuracy (%) shaded by the mean; n models."""
    if text.empty:
        return "<p><em>No pretrained or fine-tuned models evaluated yet.</em></p>"
    groups: dict[str, list[tuple[str, str]]] = {}
    for col in [c for c in text.columns if c not in ("method", "n")]:
        prop, _, eval_set = col.partition(" ")
        groups.setdefault(prop, []).append((col, eval_set))
    means = {(r.row, stats.proportion_text(r.cue_proportion), r.eval_set): r.mean for r in long.itertuples()}
    top = ('<tr><th class="row" rowspan="2">model / fine-tuning method</th><th rowspan="2">n</th>'
           + "".join(f'<th class="group" colspan="{len(cols)}">cue proportion {esc(p)}</th>'
                     for p, cols in groups.items())
           + "</tr>")
    sub = "<tr>" + "".join(f"<th>{esc(plots.EVAL_SET_TITLES.get(e, e))}</th>" for cols in groups.values()
                           for _, e in cols) + "</tr>"
    body = []
    for values in text.to_dict("records"):
        name = values["method"]
        cells = [f'<td class="row">{esc(name)}</td><td>{esc(values["n"])}</td>']
        for prop, cols in groups.items():
            for col, eval_set in cols:
                mean = means.get((name, prop, eval_set))
                cells.append(f'<td class="missing">{stats.MISSING}</td>' if values[col] == stats.MISSING or mean is None
                             else f'<td style="{shade(mean)}">{esc(values[col])}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead>{top}{sub}</thead><tbody>{''.join(body)}</tbody></table>"


def table1_html(table1: Sequence[tuple[dict, stats.FinetuneTable]]) -> str:
    return "".join((f"<h3>{esc(stats.facet_label(combo))}</h3>" if combo else "") + finetune_grid(t.text, t.long)
                   for combo, t in table1) or finetune_grid(pd.DataFrame(), pd.DataFrame())


def mechanism_html(mech: pd.DataFrame) -> str:
    if mech.empty:
        return "<p><em>No agreement or cue-reliance measurements along paths yet.</em></p>"
    columns = [("agree_a", "agreement with A"), ("agree_b", "agreement with B"),
               ("reliance_randimg", "acc(randimg) − chance"), ("reliance_randcue", "acc(nocue) − acc(randcue)")]
    alphas = sorted({c.split("@")[1] for c in mech.columns if "@" in c and not c.endswith(("_low", "_high"))},
                    key=float)
    extra = stats.varying_labels(mech) + [c for c in mech.columns if "." in c and "@" not in c]
    head = ('<tr><th class="row" rowspan="2">pair type</th><th class="row" rowspan="2">path</th>'
            + "".join(f'<th class="row" rowspan="2">{esc(k)}</th>' for k in extra) + '<th rowspan="2">n</th>'
            + "".join(f'<th class="group" colspan="{len(alphas)}">{esc(t)} (pp)</th>' for _, t in columns) + "</tr><tr>"
            + "".join(f"<th>α = {esc(a)}</th>" for _ in columns for a in alphas) + "</tr>")
    body, previous = [], None
    for r in mech.to_dict("records"):
        cells = [f'<td class="row"><strong>{esc(r["pair_type"] if r["pair_type"] != previous else "")}</strong></td>',
                 f'<td class="row">{esc(stats.path_variant(r["path_kind"], r["alignment"]))}</td>']
        previous = r["pair_type"]
        cells += [f'<td class="row">{esc(_cell_text(r[k], 3))}</td>' for k in extra] + [f"<td>{r['n']}</td>"]
        for column, _ in columns:
            for a in alphas:
                mean, low, high = (r.get(f"{column}@{a}{s}") for s in ("", "_low", "_high"))
                if mean is None or mean != mean:
                    cells.append(f'<td class="missing">{stats.MISSING}</td>')
                    continue
                tip = f"95% t-interval [{100 * low:.1f}, {100 * high:.1f}]" if low == low else "n = 1: no interval"
                cells.append(f'<td title="{tip}">{100 * mean:.1f}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def map_html(maps: Sequence, figs: Sequence[figures_lib.Figure]) -> str:
    """The mechanism maps of the population: one row per map (models, threshold, clusters, components,
    the permutation test and the adjusted Rand index of claim (e)), then their figures."""
    if not maps:
        return ""
    rows = []
    for m in maps:
        test, ari = m.within_across, m.ari_test
        rows.append({
            "context": m.context_label() or stats.MISSING, "eval set": m.eval_set, "path": m.path, "models": m.k,
            "left out": m.left_out, "threshold": m.threshold.text(), "clusters": int(m.models["cluster"].nunique()),
            "components": int(m.models["component"].nunique()),
            "across − within": stats.MISSING if test is None else f"{test.observed:+.3f}",
            "p (one-sided)": stats.MISSING if test is None else f"{test.p_upper:.3g}",
            "ARI": stats.MISSING if ari is None else f"{m.ari:.2f} (p = {ari.p_upper:.3g})"})
    table = html_table(pd.DataFrame(rows))
    return ('<h2 id="map">Mechanism map: every model against every other</h2>'
            "<p>The population's models (<code>population:</code> in the spec), each pair's barrier (the claims' "
            "metric and definition) on each of the claims' barrier sets, clustered (average linkage) and cut at a "
            "threshold the sweep's own controls set: the upper interval bound of the mean barrier of the same-data "
            "pairs from one initialisation (X~X:spawn@0, cue~cue:resubset), else of the noise floor (X~X:self). "
            "Components link models whose barrier is at most the threshold. Across − within: the mean barrier "
            "across the reliance groups minus within them, with its permutation p-value (the models' groups "
            "relabeled); ARI: the adjusted Rand index of the clusters and the groups. Claim (e) decides with these. "
            'Every model with its cluster: <a href="clusters.parquet">clusters.parquet</a>.</p>'
            + table + figures_html(figs, figures_lib.MAP_SECTION))


def figure_html(fig: figures_lib.Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure id="fig-{esc(fig.name[:-4])}"><img data-name="{esc(fig.name)}" alt="{esc(fig.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption><strong>{esc(fig.title)}.</strong> {esc(fig.caption)} '
            f'<a href="{esc(fig.name)}">{esc(fig.name)}</a></figcaption></figure>')


def figures_html(figs: Sequence[figures_lib.Figure], section: str, headings: bool = False) -> str:
    parts, current = [], None
    for fig in (f for f in figs if f.section == section):
        if headings and fig.heading != current:
            start, end = plots.endpoint_names(fig.heading)
            parts.append(f'<h3>{esc(fig.heading)} <span class="muted">({esc(start)} → {esc(end)})</span></h3>')
            current = fig.heading
        parts.append(figure_html(fig))
    return "".join(parts)


def render_page(*, title: str, progress: pd.DataFrame, planned: int | None, claims: Sequence[claims_lib.Claim],
                summary: pd.DataFrame, swept: Sequence[str], table1, figures: Sequence[figures_lib.Figure],
                provenance: Mapping[str, object], spec_text: str | None, failed: pd.DataFrame,
                mechanism: pd.DataFrame | None = None, agreement_set: str = "",
                rules: Mapping[str, object] | None = None, drift: pd.DataFrame | None = None,
                maps: Sequence = (), damaged: Mapping[str, str] | None = None, spec_unread: str = "",
                unlearnt: str = "") -> str:
    """The whole page, from `templates/report.html`."""
    failed_html = failed_table(failed)
    swept_note = (" With swept settings (" + ", ".join(f"<code>{esc(k)}</code>" for k in swept) + "), every table "
                  "is given per combination; tasks an axis does not affect appear under each of its values."
                  ) if swept else ""
    return Template(template("report.html")).substitute(
        title=esc(title), css=template("report.css"), js=template("selftest.js"),
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        failed_link='<a href="#failed">Failed tasks</a>' if failed_html else "",
        map_link='<a href="#map">Mechanism map</a>' if maps else "", mechanism_map=map_html(maps, figures),
        banner=banner(progress, planned, damaged, spec_unread, unlearnt), swept_note=swept_note, claims=claims_html(claims, rules),
        drift=drift_html(drift if drift is not None else pd.DataFrame()),
        barriers=barriers_html(summary, swept), barrier_figures=figures_html(figures, figures_lib.BARRIERS_SECTION),
        table1=table1_html(table1), table1_figures=figures_html(figures, figures_lib.TABLE1_SECTION),
        agreement_set=esc(agreement_set or "the first evaluation set"),
        mechanism=mechanism_html(mechanism if mechanism is not None else pd.DataFrame()),
        path_figures=figures_html(figures, figures_lib.PATHS_SECTION, headings=True)
        or "<p><em>No path evaluations yet.</em></p>",
        failed=failed_html, provenance=kv_table(provenance),
        spec=f"<pre>{esc(spec_text)}</pre>" if spec_text else "<p><em>No spec recorded.</em></p>")
