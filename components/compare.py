"""Compare tab: one prompt, 2–4 panes, each with its own target and parameters, streaming
side by side.

``stream_panes`` is plain Python (unit-testable): it runs each pane's chat in its own
thread and yields every pane's state together, so all panes grow at once; a failing target
ends with its message in its own pane while the others go on; closing the stream (Stop)
closes every pane's stream. ``word_diff`` marks what differs between two answers.
``render`` lays out the panes and wires the events.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from backends import Backend
from backends.errors import BackendError
from components import chat, compare_blind, text_generation
from components import connection as connection_panel
from components.common import show_problem
from components.connection import LOCAL, Connection, backend_for, signed_in
from components.forms import ChatForm, TextGenerationForm, optional_seed
from components.visitors import Visitors
from presets import DEFAULT_PRESET, presets

MAX_PANES = 4
PANE_NAMES = "ABCD"
CHAT, TEXT = "Chat", "Text generation"  # the tab's modes
REFRESH_S = 0.1  # how often the panes' progress is pushed to the page


@dataclass(frozen=True)
class PaneState:
    """One pane's reply so far: text, stats line, error (if its target failed), done."""

    text: str = ""
    line: str = ""
    error: str = ""
    done: bool = False
    facts: Any = None  # what a measuring ``run`` yields third (``compare_api.ReplyFacts``)


@dataclass(frozen=True)
class PaneJob:
    """What one pane asks: a backend (or the reason there is none), messages, parameters."""

    backend: Backend | None
    messages: list[dict[str, str]] | str  # the prompt itself in text-generation mode
    form: ChatForm
    error: str = ""  # set when the pane could not even start (a bad target)


def stream_panes(
    jobs: list[PaneJob],
    *,
    refresh_s: float = REFRESH_S,
    run: Callable[..., Iterator[tuple[str, str]]] = chat.run,
) -> Iterator[list[PaneState]]:
    """Run every job at once; yield all panes' states every ``refresh_s`` while any runs,
    and once more at the end. Closing this generator stops every pane. ``run`` yields
    ``(text, line)`` or ``(text, line, facts)`` (kept as ``PaneState.facts``)."""
    states = [PaneState(error=job.error, done=bool(job.error)) for job in jobs]
    lock = threading.Lock()
    stop = threading.Event()

    def work(i: int, job: PaneJob) -> None:
        stream = run(job.backend, job.messages, job.form)
        try:
            for text, line, *facts in stream:
                with lock:
                    states[i] = replace(states[i], text=text, line=line)
                    if facts:
                        states[i] = replace(states[i], facts=facts[0])
                if stop.is_set():
                    break
        except BackendError as exc:
            with lock:
                states[i] = replace(states[i], error=exc.user_message())
        except Exception as exc:  # a pane never takes the others down
            with lock:
                states[i] = replace(states[i], error=f"{type(exc).__name__}: {exc}")
        finally:
            stream.close()  # frees the engine slot / HTTP connection at once
            with lock:
                states[i] = replace(states[i], done=True)

    threads = [
        threading.Thread(target=work, args=(i, job), name=f"compare-{i}", daemon=True)
        for i, job in enumerate(jobs)
        if not job.error
    ]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            with lock:
                snapshot = list(states)
            yield snapshot
            time.sleep(refresh_s)
        with lock:
            yield list(states)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def complete(backend: Backend, prompt: str, form: ChatForm) -> Iterator[tuple[str, str]]:
    """A text-generation pane: ``prompt`` continued (``text_generation``, no chat template)
    with the pane's parameters — temperature 0 is greedy, top_p 1 is off — yielding
    ``(continuation so far, stats line)``."""
    sampled = bool(form.temperature)
    tg = TextGenerationForm(
        max_new_tokens=form.max_tokens,
        do_sample=sampled,
        temperature=form.temperature if sampled else None,
        top_p=form.top_p if sampled and (form.top_p or 1) < 1 else None,
        seed=form.seed,
    )
    stream = text_generation.run(backend, prompt, tg)
    try:
        for text, finish, line, _ in stream:
            reason = finish.split(" — ")[0] if finish else ""
            yield text, f"{line} · finish: {reason}" if reason else line
    finally:
        stream.close()


_WORD = re.compile(r"\s+|[^\s]+")


def word_diff(left: str, right: str) -> list[tuple[str, str | None]]:
    """``right`` as ``gr.HighlightedText`` pairs against ``left``: words only in ``right``
    are ``"+"``, words of ``left`` missing from ``right`` are shown struck as ``"-"``, the
    rest unmarked (None)."""
    a, b = _WORD.findall(left), _WORD.findall(right)
    out: list[tuple[str, str | None]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("".join(b[j1:j2]), None))
            continue
        if op in ("delete", "replace"):
            out.append(("".join(a[i1:i2]), "-"))
        if op in ("insert", "replace"):
            out.append(("".join(b[j1:j2]), "+"))
    return out


def target_name(connection: Connection) -> str:
    """A target as results and votes name it (never its token)."""
    return "local model" if connection.mode == LOCAL else connection.describe()


def pane_line(state: PaneState) -> str:
    if state.error:
        return f"🔴 {state.error}"
    return state.line


def render(
    local: Backend,
    *,
    providers: list[str],
    visitors: Visitors | None = None,
    storage_secret: str | None = None,
) -> None:
    """The Compare tab's widgets and events (call inside a ``gr.Tab``). ``storage_secret``
    encrypts the blind votes kept in the browser (``compare_blind``)."""
    visitors = visitors or Visitors()
    default = presets()[DEFAULT_PRESET]
    with gr.Row():
        count = gr.Radio([2, 3, 4], value=2, label="Panes", scale=1, elem_id="compare-count")
        system = gr.Textbox(chat.DEFAULT_SYSTEM_PROMPT, label="System prompt", scale=3)
        blind = compare_blind.checkbox()
        mode = gr.Radio(
            [CHAT, TEXT], value=CHAT, label="Mode", scale=1, elem_id="compare-mode",
            info="Text generation: each pane continues the prompt (no chat template, no "
            "system prompt; every send starts afresh)",
        )  # fmt: skip
    panes: list[dict] = []
    with gr.Row(equal_height=False):
        for i in range(MAX_PANES):
            with gr.Column(visible=i < 2, min_width=280, elem_id=f"compare-pane-{i}") as column:
                gr.Markdown(f"### {PANE_NAMES[i]}", elem_classes=["compare-pane-name"])
                with gr.Column(elem_id=f"compare-setup-{i}") as setup:  # hidden when blind
                    panel = connection_panel.render_panel(local, providers)
                    with gr.Accordion("Parameters", open=False):
                        max_tokens = gr.Slider(
                            1, 4096, value=default.max_new_tokens, step=1, label="max_tokens"
                        )
                        temperature = gr.Slider(
                            0, 2, value=default.temperature, step=0.05, label="temperature"
                        )
                        top_p = gr.Slider(0.05, 1, value=default.top_p, step=0.01, label="top_p")
                        seed = gr.Number(
                            -1, label="seed", precision=0, minimum=-1, info="-1 = random"
                        )
                box = gr.Chatbot(
                    label=f"Pane {PANE_NAMES[i]}", height=360, elem_id=f"compare-chat-{i}"
                )
                stats = gr.Markdown("", elem_id=f"compare-stats-{i}")
            panes.append(
                dict(column=column, setup=setup, panel=panel, chatbot=box, stats=stats,
                     params=[max_tokens, temperature, top_p, seed])
            )  # fmt: skip
    with gr.Row():
        prompt = gr.Textbox(
            label="Message", show_label=False, scale=6, elem_id="compare-input",
            placeholder="One message to every pane — press Enter",
        )  # fmt: skip
        send = gr.Button("Send to all", variant="primary", scale=1, min_width=100)
        stop = gr.Button("Stop all", variant="stop", scale=1, min_width=100)
    with gr.Row():
        copy = gr.Button("Copy A's parameters to every pane", size="sm")
        clear = gr.Button("🗑 Clear all panes", size="sm")
        diff_btn = gr.Button("Highlight differences (A → B)", size="sm")
    diff = gr.HighlightedText(
        label="B's last answer against A's: + only in B, − only in A",
        color_map={"+": "green", "-": "red"},
        combine_adjacent=True,
        elem_id="compare-diff",
    )
    bw = compare_blind.render(blind, storage_secret)

    count.change(
        lambda n: [gr.Column(visible=i < int(n)) for i in range(MAX_PANES)],
        count,
        [pane["column"] for pane in panes],
        api_visibility="private",
        queue=False,
    )
    chatbots = [pane["chatbot"] for pane in panes]
    stats_lines = [pane["stats"] for pane in panes]

    def add_user(text: str, n: int, blind_on: bool, how: str, *histories):
        if not text or not text.strip():
            show_problem("Type a message first.", title="Empty message")
            return [text or "", *[gr.skip()] * MAX_PANES]
        # A blind round is one message: the panes are dealt anew, so each starts empty; so
        # does a text-generation prompt (a continuation has no conversation).
        fresh = blind_on or how == TEXT
        updated = [
            ([] if fresh else list(h or [])) + [{"role": "user", "content": text}]
            if i < int(n)
            else gr.skip()
            for i, h in enumerate(histories)
        ]
        return ["", *updated]

    inputs = [count, system, blind, mode]
    for pane in panes:
        inputs += [pane["panel"].state, pane["chatbot"], *pane["params"]]
    per_pane = 2 + len(panes[0]["params"])

    def respond(
        request: gr.Request,
        oauth: gr.OAuthToken | None,
        n,
        system_prompt,
        blind_on,
        how,
        *values,
    ):
        n = int(n)
        groups = [values[i * per_pane : (i + 1) * per_pane] for i in range(MAX_PANES)][:n]
        histories = [list(group[1] or []) for group in groups]
        if not any(h and h[-1].get("role") == "user" for h in histories):
            yield [gr.skip()] * (2 * MAX_PANES + len(bw.outputs))
            return
        # Blind: label i shows configured pane order[i] (its target and parameters); which
        # is which stays in this handler and the round's gr.State.
        order = compare_blind.deal(n) if blind_on else list(range(n))
        groups = [(*groups[j][:1], histories[i], *groups[j][2:]) for i, j in enumerate(order)]
        names = [target_name(group[0] or Connection()) for group in groups]
        jobs = []
        for conn, history, max_tokens, temperature, top_p, seed in groups:
            form = ChatForm(
                max_tokens=int(max_tokens),
                temperature=float(temperature),
                top_p=float(top_p),
                seed=optional_seed(seed),
            )
            try:
                backend = backend_for(signed_in(conn, oauth), local)
                if how == TEXT:
                    asked = chat.message_text(history[-1]["content"]) if history else ""
                    jobs.append(PaneJob(backend, asked, form))
                else:
                    messages = chat.to_messages(history, system_prompt or "")
                    jobs.append(PaneJob(backend, messages, form))
            except BackendError as exc:
                jobs.append(PaneJob(None, [], form, error=exc.user_message()))
        blind_out = compare_blind.start_outputs() if blind_on else [gr.skip()] * len(bw.outputs)
        try:
            with visitors.hold(request):  # one compare run counts as one generation
                for states in stream_panes(jobs, run=complete if how == TEXT else chat.run):
                    out: list = []
                    for i in range(MAX_PANES):
                        if i >= n:
                            out.append(gr.skip())
                            continue
                        reply = [{"role": "assistant", "content": states[i].text}]
                        out.append(histories[i] + reply if states[i].text else histories[i])
                    lines = [pane_line(state) for state in states]
                    if blind_on:
                        shown = [compare_blind.masked_line(s.error, s.done) for s in states]
                        if all(state.done for state in states):
                            round_ = compare_blind.Round(targets=tuple(names), lines=tuple(lines))
                            blind_out = compare_blind.finished_outputs(round_)
                    else:
                        shown = lines
                    yield out + shown + [gr.skip()] * (MAX_PANES - n) + blind_out
        except BackendError as exc:
            yield (
                [gr.skip()] * MAX_PANES
                + [f"🔴 {exc.user_message()}"] * n
                + [gr.skip()] * (MAX_PANES - n)
                + [gr.skip()] * len(bw.outputs)
            )

    hidden = dict(api_visibility="undocumented")
    generate = dict(
        fn=respond,
        inputs=inputs,
        outputs=[*chatbots, *stats_lines, *bw.outputs],
        concurrency_limit=None,
        show_progress="hidden",
        **hidden,
    )
    events = []
    for trigger in (prompt.submit, send.click):
        added = trigger(
            add_user,
            [prompt, count, blind, mode, *chatbots],
            [prompt, *chatbots],
            concurrency_limit=None,
            show_progress="hidden",
            **hidden,
        )
        events.append(added.success(**generate))
    stopped = stop.click(None, cancels=events, **hidden)
    compare_blind.wire(
        bw,
        stopped=stopped,
        count=count,
        setups=[pane["setup"] for pane in panes],
        chatbots=chatbots,
        stats_lines=stats_lines,
        cancels=events,
    )
    clear.click(  # a blind round not voted on yet is dropped with its answers
        lambda: [[]] * MAX_PANES + [""] * MAX_PANES + [[]] + compare_blind.cleared_outputs(),
        outputs=[*chatbots, *stats_lines, diff, *bw.outputs],
        cancels=events,
        queue=False,
        **hidden,
    )

    first = panes[0]["params"]

    def copy_from_a(*values):
        return list(values) * (MAX_PANES - 1)

    copy.click(
        copy_from_a,
        first,
        [p for pane in panes[1:] for p in pane["params"]],
        queue=False,
        **hidden,
    )

    def highlight(a_history, b_history):
        a = chat.message_text((a_history or [{}])[-1].get("content")) if a_history else ""
        b = chat.message_text((b_history or [{}])[-1].get("content")) if b_history else ""
        if not a or not b:
            show_problem("Both A and B need an answer to compare.", title="Nothing to compare")
            return gr.skip()
        return word_diff(a, b)

    diff_btn.click(highlight, [chatbots[0], chatbots[1]], diff, **hidden)
