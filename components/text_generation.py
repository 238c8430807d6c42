"""Text-generation tab: raw prompt continuation with TGI's parameters, streamed.

``run`` is plain Python; ``render`` lays out widgets and wires events. The Gradio API
endpoint ``/text_generation`` takes just a prompt (every other input has a default).
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
from huggingface_hub import TextGenerationOutput, TextGenerationOutputDetails

from backends import Backend
from backends.errors import BackendError
from components import connection as connection_panel
from components import runs, show_code
from components.common import (
    GENERATION_CONCURRENCY,
    GENERATION_CONCURRENCY_ID,
    TICK,
    StreamStats,
    api_text,
    loading_notice,
    show_error,
    to_gradio_error,
    waiting_line,
    with_ticks,
)
from components.connection import api_connection, backend_for, signed_in
from components.forms import TextGenerationForm
from components.generation_params import NAMES, read_form, render_parameters
from components.inspector import FINISH_REASONS, render_inspector
from components.visitors import Visitors
from presets import DEFAULT_PRESET, examples, presets


def _stream_output(tokens: list, top: list, last) -> TextGenerationOutput:
    """The streamed tokens as a ``TextGenerationOutput`` for the inspector."""
    details = last.details
    return TextGenerationOutput(
        generated_text=last.generated_text or "",
        details=TextGenerationOutputDetails(
            finish_reason=details.finish_reason,
            generated_tokens=details.generated_tokens,
            prefill=[],
            tokens=tokens,
            seed=details.seed,
            top_tokens=top if any(top) else None,
        ),
    )


def run(
    backend: Backend, prompt: str, form: TextGenerationForm
) -> Iterator[tuple[str, str, str, str | None]]:
    """Generate: yields ``(text so far, finish reason, stats line, inspector HTML)``; the
    HTML is ``None`` while it has not changed.

    Streams token by token, except for ``best_of`` > 1 and ``decoder_input_details``,
    which TGI answers in one piece. Raises ``BackendError`` (``forms.FormErrors`` for
    values the form refuses, before the backend is called).
    """
    stats = StreamStats()
    params = form.keywords()
    text = prompt if params["return_full_text"] else ""
    if (params.get("best_of") or 1) > 1 or params["decoder_input_details"]:
        yield text, "", "⏳ generating (this mode answers in one piece)…", ""
        result = backend.text_generation(prompt, **params, details=True, stream=False)
        stats.token(result.details.generated_tokens)
        line = stats.line(
            completion_tokens=result.details.generated_tokens, extra=_seed(result.details.seed)
        )
        finish = FINISH_REASONS.get(result.details.finish_reason, result.details.finish_reason)
        yield result.generated_text, finish, line, render_inspector(result, prompt=prompt)
        return
    outputs = backend.text_generation(prompt, **params, details=True, stream=True)
    tokens, top = [], []
    yield text, "", "", ""
    for output in with_ticks(outputs):
        if output is TICK:
            line = stats.line() if tokens else waiting_line(backend, stats.started, outputs)
            yield text, "", line, None
            continue
        if not output.token.special:
            text += output.token.text
        tokens.append(output.token)
        top.append(output.top_tokens or [])
        stats.token()
        if output.details is not None:
            text = output.generated_text if output.generated_text is not None else text
            details = output.details
            line = stats.line(
                prompt_tokens=details.input_length,
                completion_tokens=details.generated_tokens,
                extra=_seed(details.seed),
            )
            finish = FINISH_REASONS.get(details.finish_reason, details.finish_reason)
            yield text, finish, line, render_inspector(_stream_output(tokens, top, output))
            return
        yield text, "", stats.line(), None


def _seed(seed: int | None) -> str:
    return f"seed {seed}" if seed is not None else ""


def render(
    local: Backend,
    *,
    providers: list[str],
    api_key_required: bool = False,
    visitors: Visitors | None = None,
    storage_secret: str | None = None,
) -> None:
    """The text-generation tab's widgets and events (call inside a ``gr.Tab``). ``local``
    answers unless the tab's connection panel points at a remote endpoint; ``visitors``:
    the per-visitor bounds and sign-in; ``storage_secret``: encrypts the runs kept in the
    browser (``components.runs``)."""
    visitors = visitors or Visitors()
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
                label="Output", lines=8, max_lines=30, elem_id="tg-output", buttons=["copy"]
            )
            finish = gr.Textbox(label="Finish reason", interactive=False, elem_id="tg-finish")
            stats = gr.Markdown("", elem_id="tg-stats")
            with gr.Accordion("Token inspector", open=True):
                inspector = gr.HTML(
                    "<p>Generate to see each token's probability and its alternatives.</p>",
                    elem_id="tg-inspector",
                )
            gr.Examples(examples().text_generation, inputs=prompt, label="Examples")
            runs_slot = gr.Column()
            code_slot = gr.Column()
            with gr.Accordion("Watermark detector", open=False):
                suspect = gr.Textbox(
                    label="Text to test",
                    lines=4,
                    placeholder="Paste text generated with watermark on",
                )
                detect_btn = gr.Button("Detect watermark", size="sm")
                verdict = gr.Markdown(elem_id="tg-watermark")
        with gr.Column(scale=2):
            connection = connection_panel.render(local, providers)
            panel = render_parameters()

    inputs = [prompt, connection, *panel.widgets]

    def code_request(text, conn, *values):
        return conn, text or "", read_form(*values).keywords()

    with code_slot:
        show_code.render("text-generation", code_request, inputs, api_key_required=api_key_required)

    def check(text, conn, *values):
        """Shown next to each widget before anything runs (TGI's bounds)."""
        errors = read_form(*values).errors()
        checks = [
            gr.validate(bool(text and text.strip()), "Type a prompt first."),
            gr.validate(True, ""),
        ]
        return checks + [gr.validate(name not in errors, errors.get(name, "")) for name in NAMES]

    def generate(request: gr.Request, oauth: gr.OAuthToken | None, text, conn, *values):
        try:
            backend = backend_for(signed_in(conn, oauth), local)
            with visitors.hold(request):
                notice = loading_notice(backend)
                if notice:
                    yield notice, "", "", gr.skip()
                for text_so_far, reason, line, html in run(backend, text, read_form(*values)):
                    yield text_so_far, reason, line, gr.skip() if html is None else html
        except BackendError as exc:
            show_error(exc)
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()  # the (partial) output stays

    event_args = dict(
        fn=generate,
        inputs=inputs,
        outputs=[output, finish, stats, inspector],
        validator=check,
        concurrency_limit=GENERATION_CONCURRENCY,
        concurrency_id=GENERATION_CONCURRENCY_ID,
        show_progress="minimal",
        api_visibility="undocumented",  # a private event cannot be cancelled (Gradio 6.31)
    )
    events = [generate_btn.click(**event_args), prompt.submit(**event_args)]
    stop_btn.click(None, cancels=events, api_visibility="undocumented")
    with runs_slot:  # each run kept in the browser, opened again from the list
        runs.render(
            events=events, prompt=prompt, connection=connection,
            widgets=dict(zip(NAMES, panel.widgets, strict=True)),
            shown=[output, finish, stats, inspector], secret=storage_secret,
        )  # fmt: skip

    def detect(text, conn):
        backend = backend_for(conn, local) if conn is not None else local
        if not hasattr(backend, "detect_watermark"):
            return "The detector needs the local model (it knows the watermark's key)."
        try:
            found = backend.detect_watermark(text or "")
        except BackendError as exc:
            return f"⚠️ {exc.user_message()}"
        icon, word = (
            ("🟢", "carries the watermark")
            if found["watermarked"]
            else ("⚪", "shows no watermark")
        )
        return (
            f"{icon} This text **{word}**: z-score {found['z_score']:.2f} "
            f"(threshold {found['threshold']:g}), {found['green_fraction']:.0%} of "
            f"{found['tokens']} tokens on the green list (50% expected by chance)."
        )

    detect_btn.click(detect, [suspect, connection], verdict, api_visibility="private")

    default = presets()[DEFAULT_PRESET]

    def text_generation(
        request: gr.Request,
        oauth: gr.OAuthToken | None,
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
        prompt = api_text(prompt, "prompt")
        if not prompt:
            raise gr.Error("`prompt` cannot be empty.", print_exception=False)
        try:
            connection = api_connection(endpoint, provider, model, token, oauth)
            backend = backend_for(connection, local)
            form = TextGenerationForm(
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                repetition_penalty=repetition_penalty,
                seed=seed,
                stop=stop or None,
                return_full_text=return_full_text,
            )
            with visitors.hold(request):
                for text, _, _, _ in run(backend, prompt, form):
                    yield text
        except BackendError as exc:
            raise to_gradio_error(exc) from None

    gr.api(
        text_generation,
        api_name="text_generation",
        concurrency_limit=GENERATION_CONCURRENCY,
        concurrency_id=GENERATION_CONCURRENCY_ID,
    )
