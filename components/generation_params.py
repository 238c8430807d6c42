"""The text-generation tab's parameter panel: every TGI parameter, grouped (sampling,
penalties, output control, details), the mapping from widget values to
``text_generation`` keywords, and per-field validation shown next to each widget."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields

import gradio as gr
from pydantic import ValidationError

from backends.errors import InputValidationError
from backends.params import MAX_BEST_OF, MAX_TOP_N_TOKENS, TextGenerationParameters
from components.common import optional_seed, parse_stop, wire_presets
from presets import DEFAULT_PRESET, presets


@dataclass
class ParameterPanel:
    """The widgets, in the order their values reach handlers (``widgets``)."""

    max_new_tokens: gr.Slider
    do_sample: gr.Checkbox
    temperature: gr.Slider
    top_k: gr.Slider
    top_p: gr.Slider
    typical_p: gr.Slider
    seed: gr.Number
    repetition_penalty: gr.Slider
    frequency_penalty: gr.Slider
    stop: gr.Textbox
    return_full_text: gr.Checkbox
    truncate: gr.Number
    best_of: gr.Slider
    watermark: gr.Checkbox
    top_n_tokens: gr.Slider
    decoder_input_details: gr.Checkbox
    grammar_type: gr.Dropdown
    grammar_value: gr.Code

    @property
    def widgets(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]


NAMES = [f.name for f in fields(ParameterPanel)]
EXAMPLE_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "hobbies": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["name", "age", "hobbies"],
    },
    indent=2,
)


def render_parameters() -> ParameterPanel:
    """Lay out the panel (call inside a column); presets fill the sampling values."""
    table = presets()
    default = table[DEFAULT_PRESET]
    with gr.Accordion("Parameters", open=True):
        preset = gr.Dropdown(list(table), value=DEFAULT_PRESET, label="Preset", interactive=True)
        max_new_tokens = gr.Slider(
            1, 4096, value=default.max_new_tokens, step=1, label="max_new_tokens"
        )
        with gr.Tab("Sampling"):
            do_sample = gr.Checkbox(
                default.do_sample,
                label="do_sample",
                info="Off = greedy; temperature, top_k, top_p, typical_p apply when on",
            )
            temperature = gr.Slider(
                0.05, 2, value=default.temperature, step=0.05, label="temperature"
            )
            top_k = gr.Slider(
                0, 200, value=default.top_k or 0, step=1, label="top_k", info="0 = off"
            )
            top_p = gr.Slider(
                0.05, 1, value=default.top_p, step=0.01, label="top_p", info="1 = off"
            )
            typical_p = gr.Slider(0.05, 1, value=1, step=0.01, label="typical_p", info="1 = off")
            seed = gr.Number(-1, label="seed", precision=0, minimum=-1, info="-1 = random")
        with gr.Tab("Penalties"):
            repetition_penalty = gr.Slider(
                0.5,
                2,
                value=default.repetition_penalty,
                step=0.01,
                label="repetition_penalty",
                info="1 = off; > 1 discourages repeats",
            )
            frequency_penalty = gr.Slider(
                -2,
                2,
                value=0,
                step=0.1,
                label="frequency_penalty",
                info="0 = off; subtracts penalty × occurrences so far",
            )
        with gr.Tab("Output"):
            stop = gr.Textbox(
                "",
                label="stop",
                lines=2,
                info="One stop sequence per line (up to 4); \\n = newline",
            )
            return_full_text = gr.Checkbox(
                False, label="return_full_text", info="Prepend the prompt to the output"
            )
            truncate = gr.Number(
                0,
                label="truncate",
                precision=0,
                minimum=0,
                info="Keep only the last N prompt tokens (0 = off)",
            )
            best_of = gr.Slider(
                1,
                MAX_BEST_OF,
                value=1,
                step=1,
                label="best_of",
                info="Sample N sequences, keep the most likely (needs do_sample; no streaming)",
            )
            watermark = gr.Checkbox(False, label="watermark", info="Kirchenbauer et al., as TGI")
        with gr.Tab("Structure"):
            grammar_type = gr.Dropdown(
                ["none", "json", "regex"], value="none", label="grammar",
                info="Constrain the output: a JSON schema it must validate, or a regex it "
                "must fully match",
            )  # fmt: skip
            grammar_value = gr.Code(
                EXAMPLE_SCHEMA, language="json", label="JSON schema or regex", lines=6
            )
        with gr.Tab("Details"):
            top_n_tokens = gr.Slider(
                0,
                MAX_TOP_N_TOKENS,
                value=3,
                step=1,
                label="top_n_tokens",
                info="Alternatives shown per token in the inspector",
            )
            decoder_input_details = gr.Checkbox(
                False, label="decoder_input_details", info="Logprobs of the prompt's tokens too"
            )
    panel = ParameterPanel(
        max_new_tokens, do_sample, temperature, top_k, top_p, typical_p, seed,
        repetition_penalty, frequency_penalty, stop, return_full_text, truncate, best_of,
        watermark, top_n_tokens, decoder_input_details, grammar_type, grammar_value,
    )  # fmt: skip
    wire_presets(
        preset,
        table,
        [max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty],
        lambda p: [
            p.max_new_tokens, p.do_sample, p.temperature, p.top_k or 0, p.top_p,
            p.repetition_penalty,
        ],
    )  # fmt: skip
    return panel


def ui_values(*values) -> dict:
    """The panel's values (in ``NAMES`` order) as plain Python, UI conventions kept."""
    raw = dict(zip(NAMES, values, strict=True))
    return {
        "max_new_tokens": int(raw["max_new_tokens"]),
        "do_sample": bool(raw["do_sample"]),
        "temperature": float(raw["temperature"]),
        "top_k": int(raw["top_k"] or 0),
        "top_p": float(raw["top_p"]),
        "typical_p": float(raw["typical_p"]),
        "seed": optional_seed(raw["seed"]),
        "repetition_penalty": float(raw["repetition_penalty"]),
        "frequency_penalty": float(raw["frequency_penalty"] or 0),
        "stop": parse_stop(raw["stop"]),
        "return_full_text": bool(raw["return_full_text"]),
        "truncate": int(raw["truncate"] or 0),
        "best_of": int(raw["best_of"] or 1),
        "watermark": bool(raw["watermark"]),
        "top_n_tokens": int(raw["top_n_tokens"] or 0),
        "decoder_input_details": bool(raw["decoder_input_details"]),
        "grammar": _grammar(raw["grammar_type"], raw["grammar_value"]),
    }


def _grammar(kind: str | None, value: str | None) -> dict | None:
    """The grammar widgets as TGI's ``{"type", "value"}``; a schema that is not JSON stays
    a string, which validation then refuses with the parser's reason."""
    if not kind or kind == "none":
        return None
    if kind == "json":
        try:
            return {"type": "json", "value": json.loads(value or "")}
        except json.JSONDecodeError as exc:
            return {"type": "json", "value": f"invalid JSON: {exc}"}
    return {"type": "regex", "value": value or ""}


def _off(value, off):
    return None if value is None or value == off else value


def _warpers(ui: dict) -> dict:
    return {
        "temperature": ui.get("temperature"),
        "top_k": _off(ui.get("top_k"), 0),
        "top_p": _off(ui.get("top_p"), 1),
        "typical_p": _off(ui.get("typical_p"), 1),
    }


def _sent(ui: dict) -> dict:
    """What the request carries. "Off" values (top_k 0, top_p/typical_p 1, penalties 1/0,
    truncate 0, best_of 1, top_n_tokens 0) are left out; with ``do_sample`` off no warper
    is sent (greedy decoding)."""
    sampling = bool(ui.get("do_sample"))
    return {
        "max_new_tokens": ui.get("max_new_tokens"),
        "do_sample": sampling,
        **{k: (v if sampling else None) for k, v in _warpers(ui).items()},
        "repetition_penalty": _off(ui.get("repetition_penalty"), 1),
        "frequency_penalty": _off(ui.get("frequency_penalty"), 0),
        "seed": ui.get("seed"),
        "stop": ui.get("stop"),
        "return_full_text": bool(ui.get("return_full_text")),
        "truncate": _off(ui.get("truncate"), 0),
        "best_of": _off(ui.get("best_of"), 1),
        "watermark": bool(ui.get("watermark")),
        "top_n_tokens": _off(ui.get("top_n_tokens"), 0),
        "decoder_input_details": bool(ui.get("decoder_input_details")),
        "grammar": ui.get("grammar"),
    }


def _errors(values: dict) -> dict[str, str]:
    try:
        TextGenerationParameters.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors(include_url=False):
            # A rule across fields (best_of's) has no location: it belongs to best_of.
            name = str(err["loc"][0]) if err["loc"] else "best_of"
            errors.setdefault(name, err["msg"].removeprefix("Value error, "))
        return errors
    return {}


def field_errors(ui: dict) -> dict[str, str]:
    """``{parameter: reason}`` for every value TGI would refuse, to show next to its widget.
    Sampling values are checked even when greedy decoding leaves them out, as TGI does."""
    errors = {**_errors(_warpers(ui)), **_errors(_sent(ui))}
    grammar = ui.get("grammar")
    if grammar and isinstance(grammar["value"], str) and grammar["value"].startswith("invalid"):
        errors["grammar_value"] = grammar["value"]
    elif grammar and grammar["type"] == "regex":
        try:
            re.compile(grammar["value"])
        except re.error as exc:
            errors["grammar_value"] = f"invalid regex: {exc}"
    return errors


def tgi_parameters(**ui) -> dict:
    """UI values → ``text_generation`` keywords (what the request and "Show code" send).
    Raises ``InputValidationError`` naming the first refused parameter."""
    errors = field_errors(ui)
    if errors:
        name, reason = next(iter(errors.items()))
        raise InputValidationError(f"`{name}`: {reason}", field=name)
    return _sent(ui)
