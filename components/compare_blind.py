"""The Compare tab's blind mode: stakeholders vote on answers without knowing their targets.

With *Blind* on, the panes' connection panels and parameters are hidden, and each round
(one message; the panes start empty) deals the configured panes to the labels A–D in a
fresh random order. Which target answered under which label lives only in a per-session
``gr.State`` (server side, never sent to the page); the panes' stats lines, which can name
a target (an error, a queue), read "done" until the vote. Once every answer is in, the
viewer votes: "A better" / "B better" / "Tie" / "Both bad" for two panes; for three or
four, the best pane ("A best", …), "Tie" (no pane stands out) or "All bad". The vote reveals
every label's target and the real stats lines.

Votes are kept in the viewer's browser (``gr.BrowserState`` encrypted with the app's
storage secret, like saved conversations); the leaderboard (``components.leaderboard``:
Bradley–Terry, Elo scale) and this session's tally are shown after each vote, hidden while
a round waits for its vote. Export writes CSV or JSON; import (JSON) merges another
viewer's votes, deduped by vote id.
"""

from __future__ import annotations

import os
import random
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from components import leaderboard as lb

_RANDOM = random.SystemRandom()  # a viewer cannot predict the deal


@dataclass(frozen=True)
class Round:
    """One blind round: the targets' names by label (A first) and their real stats lines,
    shown after the vote. Kept in a ``gr.State`` only."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    targets: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    voted: bool = False


def deal(n: int, rng: random.Random = _RANDOM) -> list[int]:
    """A random order of the ``n`` configured panes: label i shows pane ``order[i]``."""
    order = list(range(n))
    rng.shuffle(order)
    return order


def vote_buttons(n: int) -> list[tuple[str, bool]]:
    """The vote buttons for ``n`` panes, as (label, visible): one per pane label (A–D),
    then "Tie", then "Both bad" / "All bad"."""
    panes = [(lb.outcome_label(label, n), i < n) for i, label in enumerate(lb.LABELS)]
    return [*panes, (lb.outcome_label(lb.TIE, n), True), (lb.outcome_label(lb.BAD, n), True)]


def masked_line(error: str, done: bool) -> str:
    """A blind pane's stats line before the vote: says how it went, names nothing."""
    if error:
        return "🔴 This pane's target failed (the reason is shown after the vote)."
    return "✓ done — vote below" if done else "… answering"


@dataclass
class BlindWidgets:
    """The blind section's widgets (``render``); ``outputs`` are what a round updates."""

    blind: Any
    store: Any
    session: Any
    round: Any
    section: Any
    vote_row: Any
    pane_votes: list
    tie: Any
    bad: Any
    reveal: Any
    results: Any
    tally: Any
    board: Any
    board_note: Any
    export_csv: Any
    export_json: Any
    file: Any
    upload: Any
    note: Any

    @property
    def outputs(self) -> list:
        return [self.round, self.vote_row, self.reveal, self.results]


def start_outputs() -> list:
    """A blind round starts: no vote yet, nothing revealed, results hidden."""
    return [None, gr.Group(visible=False), "", gr.Column(visible=False)]


def cleared_outputs() -> list:
    """No round (the panes were cleared, or blind mode switched): results shown."""
    return [None, gr.Group(visible=False), "", gr.Column(visible=True)]


def finished_outputs(round_: Round) -> list:
    """Every answer is in: the round is kept for the vote, the vote buttons shown."""
    return [round_, gr.Group(visible=True), "", gr.Column(visible=False)]


def board_frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(lb.table(records), columns=lb.HEADERS)


def board_note(records: list[dict]) -> str:
    n = len(records)
    if not n:
        return "No votes in this browser yet."
    return (
        f"{n} vote{'s' if n != 1 else ''} in this browser. Rating: Bradley–Terry on the Elo "
        "scale (1000 = even); *Best* / *Tie / bad* / *Lost* count the votes by result."
    )


def _write(text: str, name: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="playground-votes-"))
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def checkbox() -> gr.Checkbox:
    """The *Blind* checkbox (placed by the caller, above the panes)."""
    return gr.Checkbox(
        False, label="Blind", info="hide targets, shuffle panes, vote", elem_id="compare-blind"
    )


def render(blind: gr.Checkbox, secret: str | None) -> BlindWidgets:
    """The blind section (call inside the Compare tab, below the panes)."""
    store = gr.BrowserState({"votes": []}, storage_key=lb.STORE_KEY, secret=secret)
    session = gr.State([])
    round_state = gr.State(None)
    with gr.Column(visible=False, elem_id="compare-blind-section") as section:
        with gr.Group(visible=False, elem_id="compare-vote") as vote_row:
            gr.Markdown("**Which answer is better?** Targets are revealed after your vote.")
            with gr.Row():
                *each, (tie_label, _), (bad_label, _) = vote_buttons(2)
                pane_votes = [
                    gr.Button(label, visible=shown, variant="primary") for label, shown in each
                ]
                tie = gr.Button(tie_label)
                bad = gr.Button(bad_label, variant="stop")
        reveal = gr.Markdown("", elem_id="compare-reveal")
        with gr.Column(elem_id="compare-results") as results:
            tally = gr.Markdown(lb.tally([]), elem_id="compare-tally")
            board = gr.Dataframe(
                board_frame([]),
                label="Leaderboard (this browser's votes)",
                interactive=False,
                elem_id="compare-leaderboard",
            )
            note_line = gr.Markdown(board_note([]), elem_id="compare-board-note")
            with gr.Row():
                export_csv = gr.Button("Export CSV", size="sm", elem_id="votes-export-csv")
                export_json = gr.Button("Export JSON", size="sm", elem_id="votes-export-json")
                upload = gr.UploadButton(
                    "Import votes (.json)",
                    file_types=[".json"],
                    size="sm",
                    elem_id="votes-import",
                )
            file = gr.File(label="Download", visible=False, elem_id="votes-file")
            note = gr.Markdown("", elem_id="votes-note")
    return BlindWidgets(
        blind, store, session, round_state, section, vote_row, pane_votes, tie, bad, reveal,
        results, tally, board, note_line, export_csv, export_json, file, upload, note,
    )  # fmt: skip


def wire(
    w: BlindWidgets,
    *,
    stopped: Any,
    count: Any,
    setups: list,
    chatbots: list,
    stats_lines: list,
    cancels: list,
) -> None:
    """Events: after Stop (``stopped``: the Stop click's event), the checkbox, the pane
    count (vote buttons), votes, export, import, load."""
    hidden = dict(api_visibility="private", show_progress="hidden")
    panes = len(setups)

    def stopped_lines(on: bool, n, round_: Round | None):
        # A blind round stopped before its answers were all in gets no vote: its panes say
        # so (instead of "answering" forever). A finished round keeps its vote buttons.
        if not on or round_ is not None:
            return [gr.skip()] * len(stats_lines)
        line = "⏹ Stopped — no vote this round. Send a message for a new one."
        return [line if i < int(n) else gr.skip() for i in range(len(stats_lines))]

    # The lines are written once the cancel is done (.then): written with it, a last update
    # of the cancelled round could still arrive after them.
    stopped.then(stopped_lines, [w.blind, count, w.round], stats_lines, queue=False, **hidden)

    def toggle(on: bool, store):
        # A switch either way starts clean: no answer, stat or round from the other mode.
        # The board is read again here: the Compare tab (and its BrowserState) is only
        # mounted once opened, after the page's load event has run.
        return [
            *[gr.Column(visible=not on) for _ in setups],
            gr.Column(visible=on),
            *[[] for _ in chatbots],
            *["" for _ in stats_lines],
            *cleared_outputs(),
            board_frame(lb.votes(store)),
            board_note(lb.votes(store)),
        ]

    w.blind.change(
        toggle,
        [w.blind, w.store],
        [*setups, w.section, *chatbots, *stats_lines, *w.outputs, w.board, w.board_note],
        cancels=cancels,
        queue=False,
        **hidden,
    )

    def buttons(n):
        return [gr.Button(label, visible=shown) for label, shown in vote_buttons(int(n))]

    count.change(buttons, count, [*w.pane_votes, w.tie, w.bad], queue=False, **hidden)

    def vote(outcome: str):
        def run(round_: Round | None, store, session):
            if round_ is None or round_.voted:
                gr.Warning("Send a message first, then vote once its answers are in.")
                return [gr.skip()] * (9 + panes)
            if outcome in lb.LABELS and lb.LABELS.index(outcome) >= len(round_.targets):
                return [gr.skip()] * (9 + panes)
            record = lb.new_vote(round_.targets, outcome)
            store, _ = lb.merge(store, [record])
            session = [*session, record]
            records = lb.votes(store)
            lines = [round_.lines[i] if i < len(round_.lines) else gr.skip() for i in range(panes)]
            return [
                store,
                session,
                replace(round_, voted=True),
                gr.Group(visible=False),
                lb.reveal(round_.targets, outcome),
                gr.Column(visible=True),
                lb.tally(session),
                board_frame(records),
                board_note(records),
                *lines,
            ]

        return run

    vote_outputs = [
        w.store, w.session, w.round, w.vote_row, w.reveal, w.results, w.tally, w.board,
        w.board_note, *stats_lines,
    ]  # fmt: skip
    choices = [*zip(w.pane_votes, lb.LABELS, strict=True), (w.tie, lb.TIE), (w.bad, lb.BAD)]
    for button, outcome in choices:
        button.click(
            vote(outcome),
            [w.round, w.store, w.session],
            vote_outputs,
            concurrency_limit=None,
            **hidden,
        )

    def export(kind: str):
        def run(store):
            records = lb.votes(store)
            if not records:
                return gr.File(visible=False), "Nothing to export yet: vote first."
            if kind == "csv":
                path = _write(lb.export_csv(records), "votes.csv")
            else:
                path = _write(lb.export_json(records), "votes.json")
            return gr.File(path, visible=True), ""

        return run

    for button, kind in ((w.export_csv, "csv"), (w.export_json, "json")):
        button.click(export(kind), w.store, [w.file, w.note], queue=False, **hidden)

    def do_import(path, store):
        try:
            size = os.path.getsize(path)
            if size > lb.MAX_IMPORT_BYTES:
                raise lb.ImportRefused(
                    f"The file is {size / 1_048_576:.1f} MB; imports are limited to "
                    f"{lb.MAX_IMPORT_BYTES // 1_048_576} MB."
                )
            imported = lb.parse_import(Path(path).read_bytes())
        except (lb.ImportRefused, OSError) as exc:
            gr.Warning(str(exc), title="Import refused", duration=10)
            refused = f"⚠️ Import refused — {exc} Nothing was changed."
            return gr.skip(), gr.skip(), gr.skip(), refused
        store, added = lb.merge(store, imported)
        known = len(imported) - added
        message = f"✅ Imported {len(imported)} vote{'s' if len(imported) != 1 else ''}: "
        message += f"{added} new, {known} already here."
        records = lb.votes(store)
        return store, board_frame(records), board_note(records), message

    w.upload.upload(
        do_import,
        [w.upload, w.store],
        [w.store, w.board, w.board_note, w.note],
        concurrency_limit=None,
        **hidden,
    )

    def load(store):
        return board_frame(lb.votes(store)), board_note(lb.votes(store))

    from gradio.context import Context

    Context.root_block.load(
        load, w.store, [w.board, w.board_note], concurrency_limit=None, **hidden
    )
