"""The text-generation tab's parameter panel: every TGI parameter, grouped (sampling,
penalties, output control, details). Its values become a ``forms.TextGenerationForm``
(``read_form``), which maps them to ``text_generation`` keywords and names each refused
value next to its widget."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import gradio as gr

from backends.params import MAX_BEST_OF, MAX_TOP_N_TOKENS
from components.common import wire_presets
from components.forms import TextGenerationForm
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


def read_form(*values) -> TextGenerationForm:
    """The panel's values (``ParameterPanel.widgets`` order, as a handler gets them) as
    the tab's form."""
    return TextGenerationForm.from_widgets(**dict(zip(NAMES, values, strict=True)))
