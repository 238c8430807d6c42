"""Show code: the request a tab sends, as Python, curl and JavaScript.

Pure functions, no gradio. The Python snippet uses ``huggingface_hub.InferenceClient``, the
JavaScript one ``@huggingface/inference``'s ``InferenceClient``; both stream, like the app.
No token is ever an input here: snippets read it from an environment variable
(``HF_TOKEN``, or ``PLAYGROUND_API_KEY`` for this app's own local API).

User text reaches the code only through ``repr`` (Python) and ``json.dumps`` (JSON bodies,
JavaScript objects), and the curl body through ``shlex.quote``, so quotes, newlines,
backslashes, ``$`` and backticks cannot break out of a literal.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any, Literal

ROUTER_URL = "https://router.huggingface.co"
_HF_INFERENCE = ("auto", "hf-inference")  # text-generation on the router: TGI-style route
_RESERVED = {"stream", "model", "messages", "prompt", "inputs", "provider"}


@dataclass(frozen=True)
class Target:
    """Where the request goes; never holds the token itself.

    ``local``: this app's local API at ``base_url``; ``model``: a Hub id served by
    ``provider`` through the Hugging Face router; ``url``: a TGI / Inference Endpoint URL
    or an OpenAI-compatible base ending in ``/v1`` (``model`` then names the served model).
    """

    kind: Literal["local", "model", "url"]
    model: str | None = None
    provider: str | None = None
    base_url: str | None = None
    has_token: bool = False


def snippets(
    task: Literal["chat-completion", "text-generation"],
    target: Target,
    *,
    inputs: Any,
    parameters: dict,
) -> dict[str, str]:
    """Equivalent code for one request.

    Args:
        task: ``"chat-completion"`` (``inputs`` is a list of ``{"role", "content"}``
            messages) or ``"text-generation"`` (``inputs`` is the prompt string).
        target: where the request goes.
        inputs: the messages or the prompt.
        parameters: ``InferenceClient`` keyword arguments; ``None`` values are left out.

    Returns:
        ``{"python": ..., "curl": ..., "javascript": ...}``

    Raises:
        ValueError: unknown task, a target missing its model / URL, or a parameter name that
            is not a keyword argument.
    """
    if task not in ("chat-completion", "text-generation"):
        raise ValueError(f"No snippets for task {task!r}")
    if target.kind == "model" and not target.model:
        raise ValueError("A model target needs a Hub model id")
    if target.kind in ("local", "url") and not target.base_url:
        raise ValueError(f"A {target.kind} target needs a base_url")
    params = {key: value for key, value in parameters.items() if value is not None}
    for key in params:
        if not key.isidentifier() or key in _RESERVED:
            raise ValueError(f"{key!r} is not an InferenceClient keyword argument")
    return {
        "python": _python(task, target, inputs, params),
        "curl": _curl(task, target, inputs, params),
        "javascript": _javascript(task, target, inputs, params),
    }


def _token_env(target: Target) -> str | None:
    """The environment variable holding the credential, or None when none is sent."""
    if target.kind == "model":
        return "HF_TOKEN"  # the router always needs one
    if not target.has_token:
        return None
    return "PLAYGROUND_API_KEY" if target.kind == "local" else "HF_TOKEN"


def _endpoint(task: str, target: Target) -> str:
    """The URL handed to the clients: the chat base as given, or TGI's root for generation
    (InferenceClient and ``endpoint()`` POST text-generation to the URL itself)."""
    base = (target.base_url or "").rstrip("/")
    return base if task == "chat-completion" else base.removesuffix("/v1")


def _chat_url(base: str) -> str:
    """``{base}/v1/chat/completions``, completed the way both InferenceClients do it."""
    base = base.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")


def _python(task: str, target: Target, inputs: Any, params: dict) -> str:
    if target.kind == "model":
        ctor = {"model": repr(target.model)}
        if target.provider:
            ctor["provider"] = repr(target.provider)
    else:
        ctor = {"base_url": repr(_endpoint(task, target))}
    env = _token_env(target)
    if env:
        ctor["api_key" if target.kind == "local" else "token"] = f"os.environ[{env!r}]"
    call = {"stream": "True"}
    if task == "chat-completion" and target.kind != "model" and target.model:
        call["model"] = repr(target.model)  # OpenAI-compatible servers route on it
    call.update({key: repr(value) for key, value in params.items()})

    lines = ["import os", ""] if env else []
    lines += ["from huggingface_hub import InferenceClient", "", "client = InferenceClient("]
    lines += [f"    {key}={value}," for key, value in ctor.items()] + [")", ""]
    if task == "chat-completion":
        lines += ["messages = ["] + [f"    {message!r}," for message in inputs] + ["]"]
        lines += ["", "stream = client.chat_completion(", "    messages,"]
        text = 'chunk.choices[0].delta.content or ""'
    else:
        lines += [f"prompt = {inputs!r}", "", "stream = client.text_generation(", "    prompt,"]
        text = "chunk.token.text" if params.get("details") else "chunk"
    lines += [f"    {key}={value}," for key, value in call.items()] + [")"]
    lines += ["for chunk in stream:", f'    print({text}, end="", flush=True)', "print()"]
    return "\n".join(lines) + "\n"


def _http_request(task: str, target: Target, inputs: Any, params: dict) -> tuple[str, dict, str]:
    """(URL, JSON body, leading comment or "") of the equivalent raw HTTP request."""
    model, provider = target.model, target.provider or "auto"
    if task == "chat-completion":
        if target.kind != "model":
            url = _chat_url(target.base_url)
        elif provider == "hf-inference":  # the route huggingface_hub itself uses
            url = f"{ROUTER_URL}/hf-inference/models/{model}/v1/chat/completions"
        else:  # the router's OpenAI-compatible route; `id:provider` pins the provider
            url = f"{ROUTER_URL}/v1/chat/completions"
            model = model if provider == "auto" else f"{model}:{provider}"
        head = {"model": model} if model else {}
        return url, {**head, "messages": inputs, **params, "stream": True}, ""
    if target.kind != "model":
        url = f"{_endpoint(task, target)}/generate_stream"
        return url, {"inputs": inputs, "parameters": params}, ""
    if provider in _HF_INFERENCE:
        url = f"{ROUTER_URL}/hf-inference/models/{model}"
        return url, {"inputs": inputs, "parameters": params, "stream": True}, ""
    # A third-party completions route, with the body huggingface_hub sends there.
    note = (
        f"# {provider} may know this model under its own id; the Python and JavaScript"
        " clients look it up for you.\n"
    )
    body = {"prompt": inputs, **params, "model": model, "stream": True}
    return f"{ROUTER_URL}/{provider}/v1/completions", body, note


def _curl(task: str, target: Target, inputs: Any, params: dict) -> str:
    url, body, note = _http_request(task, target, inputs, params)
    lines = [f"curl {shlex.quote(url)}", "-N"]
    env = _token_env(target)
    if env:
        # Double quotes so the shell expands the variable; the name is a fixed identifier.
        lines.append(f'-H "Authorization: Bearer ${env}"')
    lines.append("-H 'Content-Type: application/json'")
    lines.append(f"-d {shlex.quote(json.dumps(body, indent=2, ensure_ascii=False))}")
    return note + " \\\n    ".join(lines) + "\n"


def _javascript(task: str, target: Target, inputs: Any, params: dict) -> str:
    env = _token_env(target)
    args: dict[str, Any] = {}
    if target.kind == "model":
        client = "client"
        args["model"] = target.model
        if target.provider:
            args["provider"] = target.provider
    else:
        client = f"client.endpoint({json.dumps(_endpoint(task, target))})"
        if task == "chat-completion" and target.model:
            args["model"] = target.model
    if task == "chat-completion":
        args.update({"messages": inputs, **params})
        method, text = "chatCompletionStream", 'chunk.choices[0]?.delta?.content ?? ""'
    else:
        args.update({"inputs": inputs, "parameters": params})
        method, text = "textGenerationStream", "chunk.token.text"
    # JSON is a JavaScript expression, so json.dumps escapes every user string for us.
    obj = json.dumps(args, indent=2, ensure_ascii=False)
    return (
        'import { InferenceClient } from "@huggingface/inference";\n\n'
        f"const client = new InferenceClient({f'process.env.{env}' if env else ''});\n\n"
        f"const stream = {client}.{method}({obj});\n\n"
        "for await (const chunk of stream) {\n"
        f"  process.stdout.write({text});\n"
        "}\n"
    )
