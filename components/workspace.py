"""Conversations that last: saved in the visitor's own browser, listed in a sidebar,
exported and imported as files, shared as links.

Two ``gr.BrowserState`` values (encrypted localStorage, per browser and origin) hold the
visitor's work: ``store`` (every saved conversation, newest first) and ``current`` (the
open one, written while a reply streams, about once a second). On page load ``current``
is folded back into ``store``; a reply that was still streaming is marked interrupted.
The records are ``components.conversations``, the files ``components.conversation_files``;
here: the storage secret, the sidebar and its events.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.conversation_files import (
    MAX_IMPORT_BYTES,
    ImportError_,
    export_json,
    export_markdown,
    file_stem,
    parse_import,
    write_export,
)
from components.conversations import (
    chat_messages,
    choices,
    conversations,
    find,
    fold_current,
    last_stats,
    make_store,
    new_id,
    remove,
    rename,
    settings_of,
    snapshot,
    switch_version,
    title_from,
    upsert,
    valid,
    version_label,
)

STORE_KEY = "playground-conversations"
CURRENT_KEY = "playground-current"
SECRET_ENV = "PLAYGROUND_STORAGE_SECRET"
SECRET_FILE = "storage-secret"


# ---------------------------------------------------------------- storage secret


def storage_secret(cache_dir: Path) -> str:
    """``PLAYGROUND_STORAGE_SECRET``, else one generated once and kept in ``cache_dir``
    (so saved conversations stay readable across restarts)."""
    value = os.environ.get(SECRET_ENV, "").strip()
    if value:
        return value
    path = Path(cache_dir) / SECRET_FILE
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except OSError:
        pass
    value = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value)
    except FileExistsError:
        return path.read_text().strip() or value
    except OSError:
        pass  # a read-only cache: this process's secret only
    return value


# ---------------------------------------------------------------- the UI


@dataclass
class Sidebar:
    store: Any
    current: Any
    search: Any
    listing: Any
    new: Any
    title: Any
    rename: Any
    delete: Any
    clear_all: Any
    confirm_box: Any
    confirm: Any
    cancel: Any
    export_one: Any
    export_all: Any
    export_md: Any
    file: Any
    upload: Any
    note: Any
    share: Any
    share_chat: Any
    share_url: Any


def render_sidebar(secret: str | None) -> Sidebar:
    """The conversations column (call inside a ``gr.Column``)."""
    import gradio as gr

    store = gr.BrowserState({"conversations": []}, storage_key=STORE_KEY, secret=secret)
    current = gr.BrowserState({}, storage_key=CURRENT_KEY, secret=secret)
    with gr.Row():
        new = gr.Button("+ New chat", size="sm", variant="primary", elem_id="new-chat")
    search = gr.Textbox(
        placeholder="Search conversations", show_label=False, elem_id="conversation-search"
    )
    listing = gr.Radio([], label="Conversations", elem_id="conversation-list", container=False)
    with gr.Accordion("This conversation", open=False, elem_id="conversation-actions"):
        title = gr.Textbox(label="Title", elem_id="conversation-title", max_lines=1)
        with gr.Row():
            rename = gr.Button("Rename", size="sm", elem_id="rename-chat")
            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-chat")
        with gr.Row():
            share_chat = gr.Checkbox(
                True, label="with the conversation", elem_id="share-with-chat", min_width=100
            )
            share = gr.Button("🔗 Share link", size="sm", elem_id="share-link")
        share_url = gr.Textbox(
            label="Link (target, parameters, system prompt — never a token)",
            visible=False, max_lines=3, buttons=["copy"], elem_id="share-url",
        )  # fmt: skip
    with gr.Accordion("Export / import", open=False, elem_id="conversation-files"):
        with gr.Row():
            export_one = gr.Button("Export chat", size="sm", elem_id="export-one")
            export_all = gr.Button("Export all", size="sm", elem_id="export-all")
            export_md = gr.Button("Markdown", size="sm", elem_id="export-md")
        file = gr.File(label="Download", visible=False, elem_id="export-file")
        upload = gr.UploadButton(
            "Import (.json)", file_types=[".json"], size="sm", elem_id="import-button"
        )
    note = gr.Markdown("", elem_id="workspace-note")
    clear_all = gr.Button("Clear all", size="sm", elem_id="clear-all")
    with gr.Group(visible=False, elem_id="clear-all-confirm") as confirm_box:
        gr.Markdown("Delete **every** saved conversation in this browser?")
        with gr.Row():
            confirm = gr.Button(
                "Yes, delete all", size="sm", variant="stop", elem_id="confirm-clear"
            )
            cancel = gr.Button("Cancel", size="sm", elem_id="cancel-clear")
    return Sidebar(
        store, current, search, listing, new, title, rename, delete, clear_all, confirm_box,
        confirm, cancel, export_one, export_all, export_md, file, upload, note, share,
        share_chat, share_url,
    )  # fmt: skip


def wire(
    sb: Sidebar,
    *,
    chatbot: Any,
    stats: Any,
    system_prompt: Any,
    form_widgets: dict,
    connection: Any,
    connection_fields: Sequence[Any],
    versions: tuple[Any, Any, Any],
    after: Sequence[Any],
    cancels: list,
) -> None:
    """Events: load, save after each change of the chat (``after``: events whose end
    saves), switch, new, search, rename, delete, clear all, export, import, versions."""
    import gradio as gr

    from components import share
    from components.connection import mode_choices

    hidden = dict(api_visibility="private", show_progress="hidden")
    form_names = list(form_widgets)
    settings_inputs = [system_prompt, *form_widgets.values(), connection]
    mode, endpoint, provider, model = list(connection_fields)[:4]
    prev_btn, label, next_btn, row = versions
    opened = [
        chatbot, stats, system_prompt, *form_widgets.values(), mode, endpoint, provider,
        model, label, row, sb.title,
    ]  # fmt: skip

    def settings(values: Sequence[Any]) -> dict:
        system, *rest = values[:-1]
        return settings_of(system, dict(zip(form_names, rest, strict=True)), values[-1])

    def open_values(record: dict | None) -> list:
        """Widget values that show ``record`` (a blank chat for None: settings stay)."""
        record = valid(record)
        if record is None:
            return [[], "", *([gr.update()] * (len(opened) - 5)), "", gr.Row(visible=False), ""]
        p, s, t = record["parameters"], record["structured"], record["target"]
        form = {**p, **s}
        modes = [value for _, value in mode_choices()]
        return [
            chat_messages(record),
            last_stats(record),
            record["system_prompt"],
            *(form.get(name, gr.update()) for name in form_names),
            t["mode"] if t["mode"] in modes else gr.update(),
            t["endpoint"],
            t["provider"] or "auto",
            t["model"],
            version_label(record),
            gr.Row(visible=bool(version_label(record))),
            record["title"],
        ]

    def listed(store, query="", active=None):
        return gr.Radio(choices=choices(store, query), value=active)

    def save(store, current, history, line, query, title_box, *values):
        record = snapshot(current, history, stats=line, **settings(values))
        if not record.get("messages"):
            return (
                make_store(conversations(store)),
                {},
                listed(store, query),
                "",
                gr.Row(visible=False),
                "",
            )
        store = upsert(store, record)
        shown = version_label(record)
        listing = listed(store, query, record["id"])
        # The title box is written when empty (a new chat) or showing the saved title: a
        # title being typed while a reply streams is not overwritten by its end-of-reply save.
        typed = (title_box or "").strip()
        before = (valid(current) or {}).get("title")
        title = record["title"] if not typed or typed == before else gr.update()
        return store, record, listing, shown, gr.Row(visible=bool(shown)), title

    save_io = dict(
        fn=save,
        inputs=[sb.store, sb.current, chatbot, stats, sb.search, sb.title, *settings_inputs],
        outputs=[sb.store, sb.current, sb.listing, label, row, sb.title],
        concurrency_limit=None,  # quick: never waits behind another visitor's save
        **hidden,
    )
    for event in after:
        event.then(**save_io)

    def load(request, store, current):
        folded, record = fold_current(store, current)
        note = gr.skip()
        shared = request.query_params.get(share.QUERY_KEY) if request is not None else None
        if shared:  # a share link: opened as a new conversation, never over one's own
            try:
                setup = share.decode(shared)
            except share.ShareError as exc:
                gr.Warning(str(exc), title="Share link not opened", duration=10)
                note = f"⚠️ Share link not opened — {exc}"
            else:
                record = share.as_record(setup, new_id=new_id(), now=time.time())
                record["title"] = title_from(record["messages"]) if record["messages"] else ""
                folded = upsert(folded, record)
                where = record["target"]["endpoint"] or record["target"]["mode"] or "local"
                note = (
                    f"🔗 Opened a shared setup (target: `{where}`). Check the target before "
                    "you send anything private."
                )
        # Unchanged values are not sent back (a large store would be re-encrypted and
        # rewritten on every page load).
        return [
            gr.update() if folded == store else folded,
            gr.update() if record == current else record,
            listed(folded, "", record.get("id")),
            *open_values(record),
            note,
        ]

    load.__annotations__ = {"request": gr.Request}  # Gradio passes the page's request

    load_outputs = [sb.store, sb.current, sb.listing, *opened]

    def switch(store, current, history, line, query, chosen, *values):
        record = snapshot(current, history, stats=line, **settings(values))
        store = upsert(store, record) if record.get("messages") else store
        target = find(store, chosen) or {}
        return [store, target, listed(store, query, target.get("id")), *open_values(target)]

    switch_inputs = [sb.store, sb.current, chatbot, stats, sb.search, sb.listing]
    sb.listing.input(
        switch, [*switch_inputs, *settings_inputs], load_outputs, cancels=cancels,
        queue=False, **hidden,
    )  # fmt: skip

    def new_chat(store, current, history, line, query, *values):
        record = snapshot(current, history, stats=line, **settings(values))
        store = upsert(store, record) if record.get("messages") else store
        return [store, {}, listed(store, query), *open_values(None)]

    sb.new.click(
        new_chat, [*switch_inputs[:5], *settings_inputs], load_outputs, cancels=cancels,
        queue=False, **hidden,
    )  # fmt: skip
    sb.search.change(
        lambda store, query, current: listed(store, query, (current or {}).get("id")),
        [sb.store, sb.search, sb.current], sb.listing, queue=False, **hidden,
    )  # fmt: skip

    def do_rename(store, current, query, title):
        store, record = rename(store, current, title)
        if not record or not record.get("messages"):
            return (
                store,
                record,
                listed(store, query),
                "Send a message first: an empty chat is not saved.",
            )
        return store, record, listed(store, query, record["id"]), ""

    for trigger in (sb.rename.click, sb.title.submit):
        trigger(
            do_rename, [sb.store, sb.current, sb.search, sb.title],
            [sb.store, sb.current, sb.listing, sb.note], queue=False, **hidden,
        )  # fmt: skip

    def do_delete(store, current, query):
        store = remove(store, (current or {}).get("id", ""))
        return [store, {}, listed(store, query), *open_values(None)]

    sb.delete.click(
        do_delete, [sb.store, sb.current, sb.search], load_outputs, cancels=cancels,
        queue=False, **hidden,
    )  # fmt: skip
    sb.clear_all.click(lambda: gr.Group(visible=True), None, sb.confirm_box, queue=False, **hidden)
    sb.cancel.click(lambda: gr.Group(visible=False), None, sb.confirm_box, queue=False, **hidden)
    sb.confirm.click(
        lambda: [{"conversations": []}, {}, listed({}), *open_values(None), gr.Group(visible=False)],  # noqa: E501
        None, [*load_outputs, sb.confirm_box], cancels=cancels, queue=False, **hidden,
    )  # fmt: skip

    def export(which: str):
        def run(store, current, history, line, *values):
            record = snapshot(current, history, stats=line, **settings(values))
            if which == "all":
                records = conversations(upsert(store, record))
                text, name = export_json(records), "conversations.json"
            elif which == "md":
                records = [record] if record.get("messages") else []
                text, name = export_markdown(records), f"{file_stem(record)}.md"
            else:
                records = [record] if record.get("messages") else []
                text, name = export_json(records), f"{file_stem(record)}.json"
            if not records:
                return gr.File(visible=False), "Nothing to export yet: send a message first."
            return gr.File(write_export(text, name), visible=True), ""

        return run

    for button, which in ((sb.export_one, "one"), (sb.export_all, "all"), (sb.export_md, "md")):
        button.click(
            export(which), [sb.store, sb.current, chatbot, stats, *settings_inputs],
            [sb.file, sb.note], queue=False, **hidden,
        )  # fmt: skip

    def do_import(path, store, current, history, line, query, *values):
        unchanged = [gr.update()] * (len(load_outputs))
        try:
            size = os.path.getsize(path)
            if size > MAX_IMPORT_BYTES:
                raise ImportError_(
                    f"The file is {size / 1_048_576:.1f} MB; imports are limited to "
                    f"{MAX_IMPORT_BYTES // 1_048_576} MB."
                )
            records = parse_import(Path(path).read_bytes())
        except (ImportError_, OSError) as exc:
            gr.Warning(str(exc), title="Import refused", duration=10)
            return [*unchanged, f"⚠️ Import refused — {exc} Nothing was changed."]
        record = snapshot(current, history, stats=line, **settings(values))
        store = upsert(store, record) if record.get("messages") else store
        for imported in records:
            store = upsert(store, imported)
        first = find(store, records[0]["id"]) or records[0]
        count = len(records)
        message = f"✅ Imported {count} conversation{'s' if count != 1 else ''}."
        return [store, first, listed(store, query, first["id"]), *open_values(first), message]

    sb.upload.upload(
        do_import, [sb.upload, *switch_inputs[:5], *settings_inputs],
        [*load_outputs, sb.note], cancels=cancels, concurrency_limit=None, **hidden,
    )  # fmt: skip

    def step(direction: int):
        def run(store, current, query):
            record = switch_version(current, direction)
            if not record:
                return [gr.update()] * 7
            store = upsert(store, record)
            return (
                store, record, listed(store, query, record["id"]), chat_messages(record),
                last_stats(record), version_label(record), gr.Row(visible=True),
            )  # fmt: skip

        return run

    for button, direction in ((prev_btn, -1), (next_btn, 1)):
        button.click(
            step(direction), [sb.store, sb.current, sb.search],
            [sb.store, sb.current, sb.listing, chatbot, stats, label, row], queue=False,
            **hidden,
        )  # fmt: skip
    from gradio.context import Context

    Context.root_block.load(
        load,
        [sb.store, sb.current],
        [*load_outputs, sb.note],
        concurrency_limit=None,
        **hidden,
    ).then(None, js=DROP_SETUP_JS, **hidden)  # a reload does not open the link again

    def make_link(current, history, line, with_chat, *values):
        record = snapshot(current, history, stats=line, **settings(values))
        try:
            query = share.query(share.setup_of(record, conversation=bool(with_chat)))
        except share.ShareError as exc:
            return gr.Textbox(visible=False), f"⚠️ {exc}"
        return gr.Textbox(query, visible=True), ""

    sb.share.click(
        make_link, [sb.current, chatbot, stats, sb.share_chat, *settings_inputs],
        [sb.share_url, sb.note], queue=False, **hidden,
    ).then(None, sb.share_url, sb.share_url, js=FULL_LINK_JS, **hidden)  # fmt: skip


# The page's own address before a share link's query (what the visitor sees, behind any
# proxy or Space), and the query taken off the address bar once the link is opened (the
# page is then marked as loaded: ``body[data-workspace-loaded]``).
FULL_LINK_JS = "(q) => (q && q.startsWith('?')) ? location.origin + location.pathname + q : q"
DROP_SETUP_JS = """() => {
  document.body.dataset.workspaceLoaded = "1";  // the saved work is on the page
  const url = new URL(location.href);
  if (url.searchParams.has("setup")) {
    url.searchParams.delete("setup");
    history.replaceState(null, "", url);
  }
}"""
