"""Show code for a sweep: the Python loop that sends the same requests with
``huggingface_hub.InferenceClient`` (``chat_completion`` per cell) and writes the results
to ``sweep.csv``. The local model is reached through this app's OpenAI-compatible API.

Pure: no gradio. User text reaches the code only through ``repr``; tokens never do (they
are read from environment variables, as in ``components.snippets``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.snippets import Target, _token_env
from components.sweep_grid import Cell


def _client_arguments(target: Target) -> dict[str, str]:
    """``InferenceClient(...)`` keyword arguments, as source text."""
    if target.kind == "model":
        out = {"model": repr(target.model)}
        if target.provider:
            out["provider"] = repr(target.provider)
    else:
        out = {"base_url": repr((target.base_url or "").rstrip("/"))}
    env = _token_env(target)
    if env:
        out["api_key" if target.kind == "local" else "token"] = f"os.environ[{env!r}]"
    return out


def python_loop(
    cells: Sequence[Cell], targets: Sequence[Target], *, template: str, system_prompt: str
) -> str:
    """A runnable script that sweeps ``cells`` one at a time (``targets[cell.target]``)."""
    rows: dict[int, dict[str, Any]] = {}
    params: list[dict[str, Any]] = []
    for cell in cells:
        rows.setdefault(cell.row, cell.variables)
        if cell.keywords not in params:
            params.append(cell.keywords)
    lines = ["import csv", "import os", "import re", "import time", "",
             "from huggingface_hub import InferenceClient", "",
             f"TEMPLATE = {template!r}", f"SYSTEM_PROMPT = {system_prompt!r}",
             "ROWS = ["]  # fmt: skip
    lines += [f"    {row!r}," for row in rows.values()] + ["]"]
    lines += ["# (name, InferenceClient arguments, model sent in each request)", "TARGETS = ["]
    for target in targets:
        arguments = ", ".join(f"{k}={v}" for k, v in _client_arguments(target).items())
        model = target.model if target.kind == "url" else None
        name = {"local": "local", "url": target.base_url, "model": target.model}[target.kind]
        lines.append(f"    ({name!r}, dict({arguments}), {model!r}),")
    lines += ["]", "# chat_completion keyword arguments, one set per parameter combination",
              "PARAMETERS = ["]  # fmt: skip
    lines += [f"    {p!r}," for p in params] + ["]", ""]
    lines += [
        "",
        'VARIABLE = re.compile(r"\\{\\{\\s*(\\w+)\\s*\\}\\}")',
        "",
        "",
        "def fill(template, row):",
        "    return VARIABLE.sub(lambda m: str(row[m.group(1)]), template)",
        "",
        "",
        "results = []",
        "for row_number, row in enumerate(ROWS, start=1):",
        '    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if SYSTEM_PROMPT else []',
        '    messages.append({"role": "user", "content": fill(TEMPLATE, row)})',
        "    for name, arguments, model in TARGETS:",
        "        client = InferenceClient(**arguments)  # kept alive while its stream is read",
        "        for parameters in PARAMETERS:",
        '            started, first, output, finish, error = time.perf_counter(), None, "", "", ""',
        "            try:",
        "                for chunk in client.chat_completion(",
        "                    messages, model=model, stream=True, **parameters",
        "                ):",
        "                    if chunk.choices:",
        '                        output += chunk.choices[0].delta.content or ""',
        "                        finish = chunk.choices[0].finish_reason or finish",
        "                        first = first or time.perf_counter()",
        "            except Exception as exc:  # one failing target does not stop the sweep",
        "                error = str(exc)",
        "            total_ms = (time.perf_counter() - started) * 1000",
        "            ttft_ms = (first - started) * 1000 if first else None",
        "            results.append(",
        '                {"row": row_number, **row, "target": name, **parameters,',
        '                 "output": output, "ttft_ms": ttft_ms, "total_ms": total_ms,',
        '                 "finish_reason": finish, "error": error}',
        "            )",
        "            print(row_number, name, parameters, repr(output[:60]), error)",
        "",
        'with open("sweep.csv", "w", newline="") as file:',
        "    columns = list(dict.fromkeys(key for result in results for key in result))",
        "    writer = csv.DictWriter(file, columns)",
        "    writer.writeheader()",
        "    writer.writerows(results)",
        'print(f"{len(results)} cells written to sweep.csv")',
    ]
    return "\n".join(lines) + "\n"


def gradio_client_call(origin: str, arguments: dict[str, Any]) -> str:
    """The same sweep through this app's Gradio API (``/sweep``)."""
    shown = "".join(f"    {k}={v!r},\n" for k, v in arguments.items())
    return (
        "from gradio_client import Client\n\n"
        f"client = Client({origin + '/'!r})\n"
        f'rows = client.predict(\n{shown}    api_name="/sweep",\n)\n'
        "for row in rows:\n"
        '    print(row["cell"], row["target"], row["temperature"], repr(row["output"][:60]))\n'
    )
