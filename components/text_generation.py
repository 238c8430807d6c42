"""Text-generation tab: raw prompt continuation with TGI's parameters, streamed.

``run`` is plain Python; ``render`` lays out widgets and wires events. The Gradio API
endpoint ``/text_generation`` takes just a prompt (every other input has a default).
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from backends import Backend
from backends.errors import BackendError
from backends.params import TextGenerationParameters, validate
from components import connection as connection_panel
from components import show_code
from components.common import (
    GENERATION_CONCURRENCY_ID,
    TICK,
    StreamStats,
    loading_notice,
    optional_seed,
    parse_stop,
    show_error,
    show_problem,
    to_gradio_error,
    waiting_line,
    wire_presets,
    with_ticks,
)
from components.connection import api_connection, backend_for
from presets import DEFAULT_PRESET, examples, presets

FINISH_REASONS = {
    "length": "length — reached max_new_tokens",
    "eos_token": "eos_token — the model ended its answer",
    "stop_sequence": "stop_sequence — hit a stop sequence",
}


def tgi_parameters(
    *,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
    stop: list[str] | None = None,
    return_full_text: bool = False,
) -> dict:
    """UI values → ``text_generation`` keywords, as the request and its "Show code" send them.

    With ``do_sample`` off no warper is sent (greedy); ``top_k=0``, ``top_p=1`` and
    ``repetition_penalty=1`` mean "off". Bounds are checked either way (as TGI does), so a
    value out of range is an error even when greedy decoding would drop it.
    """
    validate(
        TextGenerationParameters,
        {
            "temperature": temperature,
            "top_k": top_k or None,
            "top_p": top_p if top_p is None or top_p != 1 else None,
        },
    )
    sampling = bool(do_sample)
    return {
        "max_new_tokens": max_new_tokens,
        "do_sample": sampling,
        "temperature": temperature if sampling else None,
        "top_k": top_k if sampling and top_k else None,
        "top_p": top_p if sampling and top_p is not None and top_p < 1 else None,
        "repetition_penalty": None if repetition_penalty in (None, 1, 1.0) else repetition_penalty,
        "seed": seed,
        "stop": stop,
        "return_full_text": return_full_text,
    }


def widget_values(
    max_new_tokens,
    do_sample,
    temperature,
    top_k,
    top_p,
    repetition_penalty,
    seed,
    stop_text,
    return_full_text,
) -> dict:
    """The parameter widgets' values (in their on-screen order) as ``run`` keywords."""
    return {
        "max_new_tokens": int(max_new_tokens),
        "do_sample": bool(do_sample),
        "temperature": float(temperature),
        "top_k": int(top_k),
        "top_p": float(top_p),
        "repetition_penalty": float(repetition_penalty),
        "seed": optional_seed(seed),
        "stop": parse_stop(stop_text),
        "return_full_text": bool(return_full_text),
    }


def run(backend: Backend, prompt: str, **values) -> Iterator[tuple[str, str, str]]:
    """Stream a continuation: yields ``(text so far, finish reason, stats line)``.
    ``values`` are the UI's (see ``tgi_parameters``). Raises ``BackendError``."""
    stats = StreamStats()
    params = tgi_parameters(**values)
    outputs = backend.text_generation(prompt, **params, details=True, stream=True)
    return_full_text = params["return_full_text"]
    text = prompt if return_full_text else ""
    yield text, "", ""
    for output in with_ticks(outputs):
        if output is TICK:
            yield text, "", waiting_line(backend, stats.started)
            continue
        if not output.token.special:
            text += output.token.text
        stats.token()
        if output.details is not None:
            text = output.generated_text if output.generated_text is not None else text
            details = output.details
            seed_note = f"seed {details.seed}" if details.seed is not None else ""
            line = stats.line(
                prompt_tokens=details.input_length,
                completion_tokens=details.generated_tokens,
                extra=seed_note,
            )
            yield text, FINISH_REASONS.get(details.finish_reason, details.finish_reason), line
            return
        yield text, "", stats.line()


def render(
    local: Backend,
    *,
    providers: list[str],
    concurrency_limit: int | None = None,
    api_key_required: bool = False,
) -> None:
    """The text-generation tab's widgets and events (call inside a ``gr.Tab``). ``local``
    answers unless the tab's connection panel points at a remote endpoint."""
    preset_table = presets()
    default = preset_table[DEFAULT_PRESET]
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(
                label="Prompt",
                lines=6,
                max_lines=20,
                placeholder="Text for the model to continue",
                elem_id="tg-prompt",
            )
            with gr.Row():
                generate_btn = gr.Button("Generate", variant="primary")
                stop_btn = gr.Button("Stop", variant="stop")
            output = gr.Textbox(
                label="Output", lines=10, max_lines=30, elem_id="tg-output", buttons=["copy"]
            )
            finish = gr.Textbox(label="Finish reason", interactive=False, elem_id="tg-finish")
            stats = gr.Markdown("", elem_id="tg-stats")
            gr.Examples(examples().text_generation, inputs=prompt, label="Examples")
            code_slot = gr.Column()
        with gr.Column(scale=2):
            connection = connection_panel.render(local, providers)
            with gr.Accordion("Parameters", open=True):
                preset = gr.Dropdown(
                    list(preset_table), value=DEFAULT_PRESET, label="Preset", interactive=True
                )
                max_new_tokens = gr.Slider(
                    1, 4096, value=default.max_new_tokens, step=1, label="max_new_tokens"
                )
                do_sample = gr.Checkbox(
                    default.do_sample,
                    label="do_sample",
                    info="Off = greedy; temperature, top_k, top_p apply when on",
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
                repetition_penalty = gr.Slider(
                    0.5,
                    2,
                    value=default.repetition_penalty,
                    step=0.01,
                    label="repetition_penalty",
                    info="1 = off",
                )
                seed = gr.Number(-1, label="seed", precision=0, minimum=-1, info="-1 = random")
                stop = gr.Textbox(
                    "",
                    label="stop",
                    lines=2,
                    info="One stop sequence per line (up to 4); \\n = newline",
                )
                return_full_text = gr.Checkbox(
                    False, label="return_full_text", info="Prepend the prompt to the output"
                )
    sampling_widgets = [max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty]
    wire_presets(
        preset,
        preset_table,
        sampling_widgets,
        lambda p: [
            p.max_new_tokens,
            p.do_sample,
            p.temperature,
            p.top_k or 0,
            p.top_p,
            p.repetition_penalty,
        ],
    )

    def code_request(text, conn, *values):
        return conn, text or "", tgi_parameters(**widget_values(*values))

    with code_slot:
        show_code.render(
            "text-generation",
            code_request,
            [prompt, connection, *sampling_widgets, seed, stop, return_full_text],
            api_key_required=api_key_required,
        )

    def generate(text, conn, *values):
        if not text or not text.strip():
            show_problem("Type a prompt first.", title="Empty prompt")
            yield gr.update(), gr.update(), gr.update()  # ending without a yield clears outputs
            return
        try:
            backend = backend_for(conn, local)
            notice = loading_notice(backend)
            if notice:
                yield notice, "", ""
            yield from run(backend, text, **widget_values(*values))
        except BackendError as exc:
            show_error(exc)
            yield gr.update(), gr.update(), gr.update()  # the (partial) output stays

    inputs = [prompt, connection, *sampling_widgets, seed, stop, return_full_text]
    event_args = dict(
        fn=generate,
        inputs=inputs,
        outputs=[output, finish, stats],
        concurrency_limit=concurrency_limit,
        concurrency_id=GENERATION_CONCURRENCY_ID,
        show_progress="minimal",
        api_visibility="undocumented",  # a private event cannot be cancelled (Gradio 6.31)
    )
    events = [generate_btn.click(**event_args), prompt.submit(**event_args)]
    stop_btn.click(None, cancels=events, api_visibility="undocumented")

    def text_generation(
        prompt: str,
        max_new_tokens: int = default.max_new_tokens,
        do_sample: bool = default.do_sample,
        temperature: float = default.temperature,
        top_k: int = default.top_k or 0,
        top_p: float = default.top_p,
        repetition_penalty: float = default.repetition_penalty,
        seed: int | None = None,
        stop: list[str] | None = None,
        return_full_text: bool = False,
        endpoint: str = "",
        provider: str = "auto",
        model: str = "",
        token: str = "",
    ) -> Iterator[str]:
        """Continue `prompt`: streams the generated text so far. `endpoint` (a Hub model id
        or a URL; empty = the local model), `provider`, `model` and `token` pick a remote
        endpoint."""
        if not prompt:
            raise gr.Error("`prompt` cannot be empty.", print_exception=False)
        try:
            backend = backend_for(api_connection(endpoint, provider, model, token), local)
            for text, _, _ in run(
                backend,
                prompt,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                repetition_penalty=repetition_penalty,
                seed=seed,
                stop=stop or None,
                return_full_text=return_full_text,
            ):
                yield text
        except BackendError as exc:
            raise to_gradio_error(exc) from None

    gr.api(
        text_generation,
        api_name="text_generation",
        concurrency_limit=concurrency_limit,
        concurrency_id=GENERATION_CONCURRENCY_ID,
    )
