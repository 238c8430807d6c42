"""Show code for the task tabs: the current input, target and parameters as Python, curl
and JavaScript.

Pure functions, no gradio. Python calls the target directly: ``InferenceClient.<task>`` for
a remote target (a Hub model through a provider, or an endpoint URL), ``gradio_client`` for
this app's local model. curl and JavaScript go through this app's Gradio API (the task's
endpoint, ``/gradio_api/call/<task>``), which takes ``endpoint=`` / ``provider=`` /
``token=`` like ``/chat`` does, so they reach a remote target too.

Files appear by their name (the uploaded file's base name): the code runs where the user
keeps that file. No token is ever an input: the code reads ``HF_TOKEN`` from the
environment. User text reaches the code only through ``repr`` (Python), ``json.dumps``
(JavaScript, JSON bodies) and ``shlex.quote`` (shell).
"""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from backends.tasks import TaskSpec
from components.snippets import Target

# Pick a field out of Gradio's JSON answers (python3 is there wherever this app runs).
_FIRST = "python3 -c 'import json, sys; print(json.load(sys.stdin)[0])'"
_EVENT_ID = "python3 -c 'import json, sys; print(json.load(sys.stdin)[\"event_id\"])'"


# Placeholders in the JSON for what the shell or JavaScript fills in (a file's server path,
# the token), swapped for that expression once the JSON is quoted. A fresh nonce per call:
# user text cannot name one.
def _marks() -> tuple[str, Callable[[str], str]]:
    nonce = secrets.token_hex(8)
    return f"TOKEN-{nonce}", lambda name: f"FILE-{nonce}-{name}"


def task_snippets(
    spec: TaskSpec,
    target: Target,
    *,
    app_url: str,
    inputs: dict[str, Any],
    parameters: dict[str, Any],
) -> dict[str, str]:
    """``{"python", "curl", "javascript"}`` for one task call.

    Args:
        spec: the task.
        target: ``local`` (this app's model; ``model`` = a typed local model or None),
            ``model`` (a Hub id and provider) or ``url`` (an endpoint serving one model).
        app_url: this app's address (its Gradio API).
        inputs: InferenceClient's inputs by name; files as their path (only the name is
            shown), tables as ``{column: [cells]}``.
        parameters: the parameters that were set, InferenceClient's names and types.
    """
    app_url = app_url.rstrip("/")
    files = {item.name for item in spec.inputs if item.kind in ("image", "audio")}
    shown = {
        name: PurePath(value).name if name in files and value else value
        for name, value in inputs.items()
    }
    python = _python_remote if target.kind != "local" else _python_local
    return {
        "python": python(spec, target, app_url, shown, files, parameters),
        "curl": _curl(spec, target, app_url, shown, files, parameters),
        "javascript": _javascript(spec, target, app_url, shown, files, parameters),
    }


def _kwargs(pairs: dict[str, str]) -> list[str]:
    return [f"    {key}={value}," for key, value in pairs.items()]


def _python_remote(spec, target, app_url, inputs, files, parameters) -> str:
    ctor = {"model": repr(target.base_url)} if target.kind == "url" else {}
    if target.kind == "model" and target.provider:
        ctor["provider"] = repr(target.provider)
    if target.kind == "model" or target.has_token:
        ctor["token"] = 'os.environ["HF_TOKEN"]'
    call = {name: repr(value) for name, value in inputs.items()}
    if target.kind == "model" and target.model:
        call["model"] = repr(target.model)
    call.update({key: repr(value) for key, value in parameters.items()})
    lines = ["import os", ""] if "token" in ctor else []
    lines += ["from huggingface_hub import InferenceClient", ""]
    lines += ["client = InferenceClient(", *_kwargs(ctor), ")"]
    lines += ["", f"result = client.{spec.name}(", *_kwargs(call), ")", "print(result)"]
    named = sorted(str(inputs[name]) for name in files if inputs.get(name))
    if named:
        lines.insert(0, f"# Run where {', '.join(named)} is: the file you uploaded.")
    return "\n".join(lines) + "\n"


def _widget_value(kind: str, value: Any) -> Any:
    """An InferenceClient value as the task tab's widget holds it (what its Gradio API
    endpoint takes): lists as lines or comma-separated text, tables as ``{headers, data}``."""
    if kind == "sentences" and isinstance(value, list):
        return "\n".join(value)
    if kind == "labels" and isinstance(value, list):
        return ", ".join(value)
    if kind == "table" and isinstance(value, dict):
        headers = list(value)
        rows = zip(*value.values(), strict=True)
        return {"headers": headers, "data": [list(row) for row in rows]}
    return value


def _api_arguments(spec, target, inputs, parameters) -> dict[str, Any]:
    """The Gradio API endpoint's arguments by name (what the task tab sends)."""
    kinds = {item.name: item.kind for item in spec.inputs}
    kinds.update({param.name: param.kind for param in spec.params})
    arguments = {name: _widget_value(kinds.get(name, ""), v) for name, v in inputs.items()}
    if target.model:
        arguments["model"] = target.model
    arguments.update({name: _widget_value(kinds[name], v) for name, v in parameters.items()})
    if target.kind == "url":
        arguments["endpoint"] = target.base_url
    elif target.kind == "model":
        arguments["endpoint"] = target.model
        arguments.pop("model", None)
        if target.provider:
            arguments["provider"] = target.provider
    return arguments


def _needs_token(target: Target) -> bool:
    return target.kind == "model" or (target.kind == "url" and target.has_token)


def _python_local(spec, target, app_url, inputs, files, parameters) -> str:
    arguments = _api_arguments(spec, target, inputs, parameters)
    call = {
        name: f"handle_file({value!r})" if name in files else repr(value)
        for name, value in arguments.items()
    }
    call["api_name"] = repr(f"/{spec.name}")
    imports = "Client, handle_file" if files else "Client"
    lines = [f"from gradio_client import {imports}", ""]
    lines += [f"client = Client({app_url + '/'!r})", "", "result = client.predict("]
    lines += [*_kwargs(call), ")", "print(result)"]
    return "\n".join(lines) + "\n"


def _positional(spec: TaskSpec, arguments: dict[str, Any]) -> list[Any]:
    """The endpoint's ``data`` list: every argument in its signature's order (Gradio's
    HTTP route takes them by position), unset ones as null."""
    names = [item.name for item in spec.inputs] + ["model"]
    names += [param.name for param in spec.params] + ["endpoint", "provider", "token"]
    return [arguments.get(name) for name in names]


def _curl(spec, target, app_url, inputs, files, parameters) -> str:
    arguments = _api_arguments(spec, target, inputs, parameters)
    token_mark, file_mark = _marks()
    for name in files & set(arguments):
        arguments[name] = {"path": file_mark(name), "meta": {"_type": "gradio.FileData"}}
    if _needs_token(target):
        arguments["token"] = token_mark
    body = shlex.quote(json.dumps({"data": _positional(spec, arguments)}, ensure_ascii=False))
    # Inside the single-quoted body: close the quote, expand the variable, reopen.
    body = body.replace(token_mark, "'\"$HF_TOKEN\"'")
    lines = [f"URL={shlex.quote(app_url)}"]
    for name in sorted(files & set(inputs)):
        var = name.upper()
        body = body.replace(file_mark(name), f"'\"${var}\"'")
        lines += [
            f"# Upload {inputs[name]} first: Gradio answers with its path on the server.",
            f"{var}=$(curl -s -F {shlex.quote('files=@' + inputs[name])}"
            f' "$URL/gradio_api/upload" | {_FIRST})',
        ]
    lines += [
        f'EVENT_ID=$(curl -s -X POST "$URL/gradio_api/call/{spec.name}" \\',
        "    -H 'Content-Type: application/json' \\",
        f"    -d {body} \\",
        f"    | {_EVENT_ID})",
        "# The result (or the error) as server-sent events:",
        f'curl -sN "$URL/gradio_api/call/{spec.name}/$EVENT_ID"',
    ]
    return "\n".join(lines) + "\n"


def _javascript(spec, target, app_url, inputs, files, parameters) -> str:
    arguments = _api_arguments(spec, target, inputs, parameters)
    token_mark, file_mark = _marks()
    marks = {}
    for name in files & set(arguments):
        marks[name] = f"handle_file(new Blob([await readFile({json.dumps(inputs[name])})]))"
        arguments[name] = file_mark(name)
    if _needs_token(target):
        arguments["token"] = token_mark
    obj = json.dumps(arguments, indent=2, ensure_ascii=False)
    obj = obj.replace(json.dumps(token_mark), "process.env.HF_TOKEN")
    for name, expression in marks.items():
        obj = obj.replace(json.dumps(file_mark(name)), expression)
    head = (
        'import { Client, handle_file } from "@gradio/client";\n'
        if files
        else ('import { Client } from "@gradio/client";\n')
    )
    if files:
        head += 'import { readFile } from "node:fs/promises";\n'
    return (
        f"{head}\n"
        f"const client = await Client.connect({json.dumps(app_url + '/')});\n"
        f"const result = await client.predict({json.dumps('/' + spec.name)}, {obj});\n"
        "console.log(result.data);\n"
    )
