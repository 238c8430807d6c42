"""Token inspector: shows *why* the model produced its text, as an HTML string for ``gr.HTML``.

Every generated token becomes a chip coloured by its probability; hovering (or focusing) a
chip shows its id, probability, logprob and the top-N alternatives the model weighed at that
step. Prompt tokens, a step table and ``best_of`` candidates side by side complete the view.
Pure Python, no gradio: the tab wires ``render_inspector`` in.

All model and user text goes through ``html.escape``: tokens can be ``<script>``, quotes,
newlines. Remote endpoints return what they return, so every detail may be missing.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from huggingface_hub import TextGenerationOutput

# (css class, lowest probability, legend label), highest first. Compared in log space so
# ``log(0.7)`` lands in the top bucket exactly.
BUCKETS = (
    ("p-high", 0.7, "≥ 70%"),
    ("p-mid", 0.3, "30–70%"),
    ("p-low", 0.1, "10–30%"),
    ("p-rare", 0.0, "< 10%"),
)
NO_DETAILS = "No details returned by this endpoint"
FINISH_REASONS = {
    "length": "length — reached max_new_tokens",
    "eos_token": "eos_token — the model ended its answer",
    "stop_sequence": "stop_sequence — hit a stop sequence",
}
# Hover cards sit at z-index 50: above Gradio's block labels (40), below its toasts.
# Whitespace drawn visibly in chips; everything else is shown exactly as generated.
VISIBLE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})

STYLE = """<style>
.tok-inspector{--tk-fg:var(--body-text-color,#1f2937);--tk-dim:var(--body-text-color-subdued,#6b7280);
--tk-bg:var(--background-fill-primary,#fff);--tk-bg2:var(--background-fill-secondary,#f3f4f6);
--tk-line:var(--border-color-primary,#d1d5db);color:var(--tk-fg);font-size:14px;line-height:1.9}
.tok-inspector .tok-head{display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;margin-bottom:.4rem}
.tok-inspector .tok-head b{font-weight:600}
.tok-inspector .tok-legend{display:flex;flex-wrap:wrap;gap:.4rem;margin:.3rem 0 .6rem;
font-size:12px;color:var(--tk-dim)}
.tok-inspector .tok-flow{background:var(--tk-bg2);border:1px solid var(--tk-line);
border-radius:8px;padding:.5rem .6rem;margin-bottom:.6rem}
.tok-inspector .tok-chip{position:relative;display:inline-block;white-space:pre;
font-family:var(--font-mono,ui-monospace,monospace);font-size:13px;line-height:1.35;
padding:0 2px;margin:1px 1px;border-radius:4px;border-bottom:3px solid transparent;cursor:default}
.tok-inspector .tok-chip:hover,.tok-inspector .tok-chip:focus{outline:2px solid var(--tk-fg);
z-index:50}
.tok-inspector .p-high{background:rgba(34,197,94,.22);border-bottom-color:#16a34a}
.tok-inspector .p-mid{background:rgba(234,179,8,.28);border-bottom-color:#ca8a04}
.tok-inspector .p-low{background:rgba(249,115,22,.32);border-bottom-color:#ea580c}
.tok-inspector .p-rare{background:rgba(239,68,68,.34);border-bottom-color:#dc2626}
.tok-inspector .p-none{background:transparent;border-bottom-color:var(--tk-line)}
.tok-inspector .tok-special{font-style:italic;outline:1px dashed var(--tk-dim);color:var(--tk-dim)}
.tok-inspector .tok-prefill{background:transparent;border-bottom-color:transparent;
color:var(--tk-dim)}
.tok-inspector .tok-prompt{white-space:pre-wrap;color:var(--tk-dim)}
.tok-inspector .tok-tip{display:none;position:absolute;left:0;top:calc(100% + 4px);z-index:50;
width:max-content;min-width:12rem;max-width:min(24rem,80vw);white-space:normal;font-style:normal;
background:var(--tk-bg);color:var(--tk-fg);border:1px solid var(--tk-line);border-radius:6px;
padding:.4rem .55rem;box-shadow:0 4px 14px rgba(0,0,0,.25);font-size:12px;line-height:1.45}
.tok-inspector .tok-chip:hover>.tok-tip,.tok-inspector .tok-chip:focus>.tok-tip{display:block}
.tok-inspector .tok-tip-text{display:block;font-weight:600;white-space:pre-wrap;
word-break:break-all}
.tok-inspector .tok-alt{display:grid;grid-template-columns:minmax(4rem,1fr) 5rem 3.6rem;gap:.4rem;
align-items:center}
.tok-inspector .tok-alt.chosen{font-weight:700}
.tok-inspector .tok-tip-line{display:block}
.tok-inspector .tok-tip-alts{margin-top:.3rem;color:var(--tk-dim)}
.tok-inspector .tok-bar{display:block;height:6px;border-radius:3px;background:var(--tk-dim)}
.tok-inspector .tok-bar.p-high{background:#16a34a}.tok-inspector .tok-bar.p-mid{background:#ca8a04}
.tok-inspector .tok-bar.p-low{background:#ea580c}.tok-inspector .tok-bar.p-rare{background:#dc2626}
.tok-inspector .tok-alt span:last-child,.tok-inspector td.num{text-align:right;
font-variant-numeric:tabular-nums}
.tok-inspector table{border-collapse:collapse;font-size:12px;width:100%}
.tok-inspector th,.tok-inspector td{border-bottom:1px solid var(--tk-line);padding:2px 6px;
text-align:left;vertical-align:top}
.tok-inspector td code{white-space:pre;background:var(--tk-bg2);border-radius:3px;padding:0 3px}
.tok-inspector .tok-compare{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));
gap:.6rem;margin-bottom:.6rem}
.tok-inspector .tok-seq{border:1px solid var(--tk-line);border-radius:8px;padding:.4rem .5rem}
.tok-inspector .tok-seq.chosen{border:2px solid #16a34a}
.tok-inspector .tok-seq-head{font-size:12px;color:var(--tk-dim);margin-bottom:.2rem}
.tok-inspector .tok-badge{background:#16a34a;color:#fff;border-radius:4px;padding:0 5px;
font-weight:600}
.tok-inspector .tok-empty{color:var(--tk-dim);font-style:italic}
.tok-inspector summary{cursor:pointer;color:var(--tk-dim)}
</style>"""


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` for the hub's dataclasses, ``obj[name]`` for plain dicts."""
    if obj is None:
        return default
    value = getattr(obj, name, None)
    if value is None and isinstance(obj, Mapping):
        value = obj.get(name)
    return default if value is None else value


def _logprob(token: Any) -> float | None:
    value = _field(token, "logprob")
    return None if value is None or math.isnan(value) else float(value)


def probability_class(logprob: float | None) -> str:
    """The colour bucket of a token: ``p-high`` (≥ 70%), ``p-mid`` (30–70%), ``p-low``
    (10–30%), ``p-rare`` (< 10%), or ``p-none`` when the logprob is missing."""
    if logprob is None or math.isnan(logprob):
        return "p-none"
    for name, floor, _ in BUCKETS:
        if floor == 0.0 or logprob >= math.log(floor):
            return name
    return "p-rare"


def format_probability(logprob: float | None) -> str:
    """``exp(logprob)`` as a percentage: one decimal, ``<0.1%`` below that, ``—`` if missing."""
    if logprob is None:
        return "—"
    percent = min(math.exp(logprob), 1.0) * 100
    return f"{percent:.1f}%" if percent >= 0.1 else "<0.1%"


def _format_logprob(logprob: float | None) -> str:
    return "—" if logprob is None else f"{logprob:.3f}"


def _visible(text: str) -> str:
    return html.escape(text.translate(VISIBLE)) if text else "∅"


def _alternatives(token: Any, top: Sequence[Any] | None) -> str:
    if not top:
        return ""
    chosen_id = _field(token, "id")
    rows = []
    for alt in top:
        lp = _logprob(alt)
        chosen = _field(alt, "id") == chosen_id
        width = 0 if lp is None else min(math.exp(lp), 1.0) * 100
        rows.append(
            f'<span class="tok-alt{" chosen" if chosen else ""}" data-alt-id="{_field(alt, "id")}">'
            f"<span>{'▶ ' if chosen else ''}{_visible(_field(alt, 'text', ''))}</span>"
            f'<span class="tok-bar {probability_class(lp)}" style="width:{width:.0f}%"></span>'
            f"<span>{format_probability(lp)}</span></span>"
        )
    if not any(_field(alt, "id") == chosen_id for alt in top):
        rows.append(f'<span class="tok-empty">chosen token not in the top {len(top)}</span>')
    head = f'<span class="tok-tip-line tok-tip-alts">Top {len(top)} alternatives:</span>'
    return head + "".join(rows)


def _chip(token: Any, *, step: int, top: Sequence[Any] | None = None, attr: str = "data-step"):
    """One token as an inline chip with a hover card; ``attr`` tags where it belongs."""
    text = _field(token, "text", "")
    lp = _logprob(token)
    special = bool(_field(token, "special", False))
    bucket = "tok-prefill" if attr == "data-prefill" else probability_class(lp)
    classes = f"tok-chip {bucket}{' tok-special' if special else ''}"
    tip = (
        f'<span class="tok-tip"><span class="tok-tip-text">'
        f"{html.escape(json.dumps(text, ensure_ascii=False))}</span>"
        f'<span class="tok-tip-line">id {html.escape(str(_field(token, "id", "—")))}'
        f"{' · special' if special else ''} · p {format_probability(lp)}"
        f" · logprob {_format_logprob(lp)}</span>{_alternatives(token, top)}</span>"
    )
    breaks = "<br>" * text.count("\n")
    return (
        f'<span class="{classes}" {attr}="{step}" data-p="{probability_class(lp)}" tabindex="0">'
        f"{_visible(text)}{tip}</span>{breaks}"
    )


def _chips(tokens: Sequence[Any], top_tokens: Sequence[Any] | None, *, attr: str) -> str:
    top_tokens = top_tokens or []
    return "".join(
        _chip(token, step=i, top=top_tokens[i] if i < len(top_tokens) else None, attr=attr)
        for i, token in enumerate(tokens)
    )


def _legend() -> str:
    items = [
        f'<span class="tok-chip {name}" data-legend="{name}">{label}</span>'
        for name, _, label in BUCKETS
    ]
    items.append('<span class="tok-chip p-none tok-special" data-legend="special">special</span>')
    return f'<div class="tok-legend">Probability: {"".join(items)}</div>'


def _mean_logprob(tokens: Iterable[Any]) -> float | None:
    values = [lp for lp in map(_logprob, tokens) if lp is not None]
    return sum(values) / len(values) if values else None


def _header(details: Any, tokens: Sequence[Any]) -> str:
    parts = []
    reason = _field(details, "finish_reason")
    if reason:
        parts.append(
            f"<span>Finish: <b>{html.escape(FINISH_REASONS.get(reason, reason))}</b></span>"
        )
    count = _field(details, "generated_tokens", len(tokens))
    parts.append(f"<span>Generated tokens: <b>{html.escape(str(count))}</b></span>")
    if _field(details, "seed") is not None:
        parts.append(f"<span>Seed: <b>{html.escape(str(_field(details, 'seed')))}</b></span>")
    mean = _mean_logprob(tokens)
    if mean is not None:
        perplexity = math.exp(-mean)
        parts.append(
            f"<span>Mean logprob: <b>{mean:.3f}</b> · perplexity: <b>{perplexity:.2f}</b></span>"
        )
    return f'<div class="tok-head">{"".join(parts)}</div>'


def _table(tokens: Sequence[Any], top_tokens: Sequence[Any] | None) -> str:
    top_tokens = top_tokens or []
    rows = []
    for i, token in enumerate(tokens):
        lp = _logprob(token)
        alts = top_tokens[i] if i < len(top_tokens) else []
        alt_text = " ".join(
            f"{'<b>' if _field(a, 'id') == _field(token, 'id') else ''}<code>"
            f"{_visible(_field(a, 'text', ''))}</code> {format_probability(_logprob(a))}"
            f"{'</b>' if _field(a, 'id') == _field(token, 'id') else ''}"
            for a in alts
        )
        rows.append(
            f'<tr data-row="{i}"><td class="num">{i}</td>'
            f"<td><code>{_visible(_field(token, 'text', ''))}</code></td>"
            f'<td class="num">{html.escape(str(_field(token, "id", "—")))}</td>'
            f'<td class="num">{format_probability(lp)}</td>'
            f'<td class="num">{_format_logprob(lp)}</td><td>{alt_text or "—"}</td></tr>'
        )
    return (
        f"<details><summary>Step table ({len(tokens)} tokens)</summary><table><thead><tr>"
        "<th>step</th><th>token</th><th>id</th><th>prob</th><th>logprob</th>"
        f"<th>alternatives</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def _sequence_column(seq: Any, *, label: str, chosen: bool) -> str:
    tokens = _field(seq, "tokens", [])
    total = sum(lp for lp in map(_logprob, tokens) if lp is not None)
    reason = _field(seq, "finish_reason", "—")
    badge = '<span class="tok-badge">chosen</span> ' if chosen else ""
    return (
        f'<div class="tok-seq{" chosen" if chosen else ""}" data-seq="{html.escape(label)}" '
        f'data-chosen="{str(chosen).lower()}" data-total="{total:.3f}">'
        f'<div class="tok-seq-head">{badge}{html.escape(label)} · total logprob '
        f"<b>{total:.3f}</b> · {len(tokens)} tokens · {html.escape(str(reason))}</div>"
        f"{_chips(tokens, _field(seq, 'top_tokens'), attr='data-seq-step')}</div>"
    )


def _wrap(body: str) -> str:
    return f'{STYLE}<div class="tok-inspector">{body}</div>'


def render_inspector(output: TextGenerationOutput | None, *, prompt: str | None = None) -> str:
    """The full inspector for a finished ``text_generation(..., details=True)`` call.

    Args:
        output: the hub's ``TextGenerationOutput`` (a plain dict of the same shape works).
        prompt: shown greyed before the tokens when the endpoint returned no prefill.

    Returns:
        Self-contained HTML (scoped ``<style>`` + markup). Missing details give a short
        message instead of raising.
    """
    details = _field(output, "details")
    tokens = _field(details, "tokens", [])
    if not tokens:
        text = _field(output, "generated_text", "")
        shown = f'<div class="tok-flow tok-prompt">{html.escape(text)}</div>' if text else ""
        if details is None:
            message = f"{NO_DETAILS} — ask with details=True (TGI-compatible endpoints only)."
        else:
            message = "This endpoint returned details without any tokens."
        return _wrap(f'<p class="tok-empty" data-empty="details">{message}</p>{shown}')
    top_tokens = _field(details, "top_tokens")
    prefill = _field(details, "prefill", [])
    if prefill:
        context = _chips(prefill, None, attr="data-prefill")
    elif prompt:
        context = f'<span class="tok-prompt" data-prompt="">{html.escape(prompt)}</span>'
    else:
        context = ""
    chips = _chips(tokens, top_tokens, attr="data-step")
    parts = [
        _header(details, tokens),
        _legend(),
        f'<div class="tok-flow" data-flow="generated">{context}{chips}</div>',
    ]
    others = _field(details, "best_of_sequences", [])
    if others:
        columns = [_sequence_column(details, label="output", chosen=True)]
        columns += [
            _sequence_column(seq, label=f"candidate {i}", chosen=False)
            for i, seq in enumerate(others, start=1)
        ]
        parts.append(
            f"<details open><summary>best_of: {len(columns)} sequences</summary>"
            f'<div class="tok-compare">{"".join(columns)}</div></details>'
        )
    parts.append(_table(tokens, top_tokens))
    return _wrap("".join(parts))
