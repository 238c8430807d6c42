"""Presets of one's own: the chat's system prompt and parameters (+ response format and
tools) saved under a name in the visitor's browser, applied, renamed, deleted, and
exported/imported as YAML in the schema of ``presets/generation.yaml`` (one model,
``presets.GenerationPreset``, validates both).

A preset sets exactly the keys it names: it is stored and exported with only those keys
(``model_dump(exclude_unset=True)``), and applying one leaves every other widget as it is.
Everything but ``render`` is plain Python on dicts (unit-tested).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import yaml

from components.forms import optional_seed, parse_stop
from presets import GenerationPreset, PresetError, presets, validate_presets

STORE_KEY = "playground-presets"
MAX_PRESETS = 100
MAX_IMPORT_BYTES = 256 * 1024
# The chat widgets a preset can set, in the order ``render``'s ``targets`` are given.
CHAT_FIELDS = (
    "system_prompt", "max_tokens", "temperature", "top_p", "seed", "stop",
    "format_kind", "format_value", "tools_text", "tool_choice",
)  # fmt: skip


def stored(store: Any) -> dict[str, GenerationPreset]:
    """The visitor's presets from the browser's store (entries that do not validate, e.g.
    written by an older version, are left out)."""
    table = store.get("presets", {}) if isinstance(store, dict) else {}
    out = {}
    for name, data in (table or {}).items():
        try:
            out.update(validate_presets({name: data}, "saved preset"))
        except PresetError:
            continue
    return out


def make_store(table: dict[str, GenerationPreset]) -> dict:
    return {"presets": {name: named(p) for name, p in list(table.items())[:MAX_PRESETS]}}


def named(preset: GenerationPreset) -> dict:
    """Only the keys the preset names (what it sets)."""
    return preset.model_dump(exclude_unset=True, mode="json")


def from_chat(system_prompt: str, form: dict[str, Any]) -> GenerationPreset:
    """The preset the chat's current settings make. Temperature 0 (greedy) is
    ``do_sample: false``, as in ``generation.yaml``; a random seed, no stop sequences, plain
    text and no tools are left unnamed."""
    data: dict[str, Any] = {"system_prompt": system_prompt or ""}
    data["max_new_tokens"] = int(form["max_tokens"])
    temperature = float(form["temperature"])
    if temperature > 0:
        data["temperature"] = temperature
    else:
        data["do_sample"] = False
    data["top_p"] = float(form["top_p"])
    seed = optional_seed(form.get("seed"))
    if seed is not None:
        data["seed"] = seed
    stop = parse_stop(form.get("stop"))
    if stop:
        data["stop"] = stop
    kind, value = form.get("format_kind") or "text", form.get("format_value") or ""
    if kind == "json_schema":
        try:
            schema = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PresetError(f"The JSON schema does not parse: {exc}") from exc
        data["response_format"] = {"type": "json_schema", "value": schema}
    elif kind == "regex":
        data["response_format"] = {"type": "regex", "value": value}
    choice = form.get("tool_choice") or "none"
    if choice != "none":
        try:
            data["tools"] = json.loads(form.get("tools_text") or "[]")
        except json.JSONDecodeError as exc:
            raise PresetError(f"The tools do not parse as JSON: {exc}") from exc
        data["tool_choice"] = choice
    return validate_presets({"preset": data}, "the current settings")["preset"]


def chat_values(preset: GenerationPreset) -> dict[str, Any]:
    """The chat widgets' new values, for the keys ``preset`` names only."""
    given = preset.model_fields_set
    out: dict[str, Any] = {}
    if "system_prompt" in given:
        out["system_prompt"] = preset.system_prompt or ""
    if "max_new_tokens" in given:
        out["max_tokens"] = preset.max_new_tokens
    if "temperature" in given:
        out["temperature"] = preset.temperature
    elif "do_sample" in given and not preset.do_sample:
        out["temperature"] = 0  # greedy
    if "top_p" in given:
        out["top_p"] = preset.top_p
    if "seed" in given:
        out["seed"] = -1 if preset.seed is None else preset.seed
    if "stop" in given:
        escaped = [s.replace("\n", "\\n").replace("\t", "\\t") for s in preset.stop or []]
        out["stop"] = "\n".join(escaped)
    if "response_format" in given:
        fmt = preset.response_format
        if fmt is None:
            out.update(format_kind="text")
        else:
            value = fmt.value if isinstance(fmt.value, str) else json.dumps(fmt.value, indent=2)
            out.update(format_kind=fmt.type, format_value=value)
    if "tools" in given:
        out["tools_text"] = json.dumps(preset.tools or [], indent=2)
    if "tool_choice" in given:
        out["tool_choice"] = preset.tool_choice or "none"
    return out


def check_name(name: str, table: dict) -> str:
    """A usable new name (stripped); ``PresetError`` for an empty one or a bundled one."""
    name = " ".join((name or "").split())
    if not name:
        raise PresetError("Type a name for the preset first.")
    if len(name) > 80:
        raise PresetError("A preset name is at most 80 characters.")
    if name in presets():
        raise PresetError(f"{name!r} is a bundled preset; choose another name.")
    if name not in table and len(table) >= MAX_PRESETS:
        raise PresetError(f"This browser keeps up to {MAX_PRESETS} presets; delete one first.")
    return name


def export_yaml(table: dict[str, GenerationPreset]) -> str:
    header = "# Inference Playground presets (the schema of presets/generation.yaml)\n"
    body = {name: named(p) for name, p in table.items()}
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def parse_yaml(raw: bytes) -> dict[str, GenerationPreset]:
    """Presets from an imported file; ``PresetError`` says what is wrong (size, not YAML,
    a preset or key that does not validate, a bundled preset's name)."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise PresetError(
            f"The file is {len(raw) / 1024:.0f} KB; preset files are limited to "
            f"{MAX_IMPORT_BYTES // 1024} KB."
        )
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PresetError(f"Not a YAML file: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise PresetError("A presets file maps names to presets (like presets/generation.yaml).")
    table = validate_presets(data, "the file")
    bundled = sorted(set(table) & set(presets()))
    if bundled:
        raise PresetError(f"These names are bundled presets; rename them in the file: {bundled}")
    return table


def write_export(text: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="presets-"))
    path = folder / "presets.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- the widgets


def render(dropdown: Any, targets: dict[str, Any], secret: str | None) -> None:
    """ "My presets" under the preset ``dropdown`` (call inside the Parameters accordion);
    ``targets``: the chat widgets a preset sets, by ``CHAT_FIELDS`` name. Replaces the
    dropdown's plain apply: bundled and own presets are applied alike."""
    from gradio.context import Context

    store = gr.BrowserState({"presets": {}}, storage_key=STORE_KEY, secret=secret)
    with gr.Accordion("My presets", open=False, elem_id="my-presets"):
        name = gr.Textbox(
            label="Name", max_lines=1, elem_id="preset-name",
            placeholder="e.g. JSON extractor",
        )  # fmt: skip
        with gr.Row():
            save = gr.Button("Save current", size="sm", elem_id="save-preset")
            rename = gr.Button("Rename selected", size="sm", elem_id="rename-preset")
            delete = gr.Button(
                "Delete selected", size="sm", variant="stop", elem_id="delete-preset"
            )
        with gr.Row():
            export = gr.Button("Export YAML", size="sm", elem_id="export-presets")
            upload = gr.UploadButton(
                "Import YAML", file_types=[".yaml", ".yml"], size="sm", elem_id="import-presets"
            )
        file = gr.File(label="Download", visible=False, elem_id="presets-file")
        note = gr.Markdown("", elem_id="presets-note")
    hidden = dict(api_visibility="private", show_progress="hidden", queue=False)
    fields = list(targets)
    outputs = list(targets.values())

    def choices(table: dict, value: str | None = None) -> dict:
        names = [*presets(), *table]
        if value in names:
            return gr.update(choices=names, value=value)
        return gr.update(choices=names)  # the shown preset stays

    def apply(choice: str, saved):
        preset = presets().get(choice) or stored(saved).get(choice)
        values = chat_values(preset) if preset is not None else {}
        return [values.get(field, gr.skip()) for field in fields]

    dropdown.input(apply, [dropdown, store], outputs, **hidden)

    def do_save(saved, typed, *values):
        table = stored(saved)
        current = dict(zip(fields, values, strict=True))
        try:
            key = check_name(typed, table)
            system = current.pop("system_prompt")
            table[key] = from_chat(system, current)
        except PresetError as exc:
            return gr.skip(), gr.skip(), f"⚠️ {exc}"
        return make_store(table), choices(table, key), f"✅ Saved preset **{key}**."

    save.click(do_save, [store, name, *outputs], [store, dropdown, note], **hidden)

    def do_rename(saved, selected, typed):
        table = stored(saved)
        if selected not in table:
            return gr.skip(), gr.skip(), "⚠️ Select one of your own presets to rename it."
        try:
            key = check_name(typed, {k: v for k, v in table.items() if k != selected})
        except PresetError as exc:
            return gr.skip(), gr.skip(), f"⚠️ {exc}"
        table = {key if k == selected else k: v for k, v in table.items()}
        return make_store(table), choices(table, key), f"✅ Renamed to **{key}**."

    rename.click(do_rename, [store, dropdown, name], [store, dropdown, note], **hidden)

    def do_delete(saved, selected):
        table = stored(saved)
        if selected not in table:
            return gr.skip(), gr.skip(), "⚠️ Select one of your own presets to delete it."
        del table[selected]
        update = gr.Dropdown(choices=[*presets(), *table], value=next(iter(presets())))
        return make_store(table), update, f"🗑 Deleted **{selected}**."

    delete.click(do_delete, [store, dropdown], [store, dropdown, note], **hidden)

    def do_export(saved):
        table = stored(saved)
        if not table:
            return gr.File(visible=False), "Nothing to export yet: save a preset first."
        return gr.File(write_export(export_yaml(table)), visible=True), ""

    export.click(do_export, store, [file, note], **hidden)

    def do_import(path, saved):
        try:
            imported = parse_yaml(Path(path).read_bytes())
            table = {**stored(saved), **imported}
            if len(table) > MAX_PRESETS:
                raise PresetError(f"This browser keeps up to {MAX_PRESETS} presets.")
        except (PresetError, OSError) as exc:
            gr.Warning(str(exc), title="Import refused", duration=10)
            return gr.skip(), gr.skip(), f"⚠️ Import refused — {exc} Nothing was changed."
        count = len(imported)
        return make_store(table), choices(table), f"✅ Imported {count} preset(s)."

    upload.upload(
        do_import, [upload, store], [store, dropdown, note],
        api_visibility="private", show_progress="hidden", concurrency_limit=None,
    )  # fmt: skip
    Context.root_block.load(
        lambda saved: choices(stored(saved)), store, dropdown, concurrency_limit=None,
        api_visibility="private", show_progress="hidden",
    )  # fmt: skip
