"""Grammar-constrained decoding for the local generator: TGI's ``grammar`` parameter (a JSON
schema or a regex the whole output must match) and the JSON schema behind tool calls.

Built on llguidance. The three installable libraries were measured on the bundled model's
tokenizer (SmolLM2, 49,152 tokens) on 2 CPU cores: one nested JSON schema (object in
object, array, enum, integer and number with minimum/maximum, required) and two regexes
(a phone number, a date); 8 seeds sampled with the real model for each.

==============  ==========  ========================  ===========  ==========================
library         tokenizer   compile JSON / regexes    mask/token   outputs valid (JSON, re)
==============  ==========  ========================  ===========  ==========================
llguidance      0.3 s       1.0 / 1.6 / 1.6 ms        0.04 ms      8/8, 8/8, 8/8
xgrammar        0.1 s       90–210 / 0.2 / 0.3 ms     0.02 ms      8/8, 8/8, 8/8
outlines-core   0.3 s       204 / 52 / 18 ms          0.02 ms      4/8 (no min/max), 8/8, 8/8
==============  ==========  ========================  ===========  ==========================

"compile" includes the first mask; "mask/token" is the median fill of the token bitmask
(model-free replay, best of 15). In the real decode loop mask + apply + advance cost about
0.3–0.5 ms a token for all three, against ~50–70 ms for the forward pass, so speed does not
decide. llguidance does: it validates every schema keyword it cannot honour with a readable
message, keeps ``minimum``/``maximum`` (outlines-core's regex translation drops them: it
produced ``"age": 412`` for ``maximum: 99``), compiles in milliseconds (a request never waits
on it), and is one 3 MB wheel without dependencies (xgrammar pulls triton, 286 MB).

Use: ``compile_grammar`` once per request (raises ``GrammarError`` before any generation),
``new_state()`` per sequence, then each step ``state.mask(logits)`` before sampling and
``state.advance(token)`` after; stop when ``state.is_finished()`` (TGI reports
``finish_reason="eos_token"``). llguidance and torch are imported lazily.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

NO_TOOL = "no_tool"
"""The pseudo-tool TGI adds for ``tool_choice="auto"``: the model answers in ``content``."""

TOOL_PROMPT = (
    "\nGiven the functions available, please respond with a JSON for a function call with its "
    "proper arguments that best answers the given prompt. Respond in the format {name: function "
    "name, parameters: dictionary of argument name and its value}.Do not use variables.\n"
)
"""TGI's default ``tool_prompt`` (appended with the tools when the chat template has none)."""

# As TGI (outlines-core's default): at most one space between JSON tokens. Compact output,
# and a small model cannot spend its whole budget on newlines inside an object. Lenient:
# keywords llguidance cannot enforce (uniqueItems, not, ...) become warnings, not errors.
_JSON_OPTIONS = {"whitespace_pattern": "[ ]?", "lenient": True}
_CACHE_SIZE = 64  # compiled grammars kept per tokenizer (least recently used dropped)
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # OpenAI's rule for function names


class GrammarError(ValueError):
    """An invalid grammar, JSON schema, regex or tool definition, or a token the grammar does
    not allow. The message says what is wrong (map it to a 422 validation error)."""


# -- grammar requests ----------------------------------------------------------------------


def _schema_value(value: Any, field: str) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"`{field}` is not valid JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise GrammarError(f"`{field}` must be a JSON schema object, got {type(value).__name__}.")
    return dict(value)


def _parse_request(grammar: Mapping[str, Any]) -> tuple[str, Any]:
    """``("json", schema dict)`` or ``("regex", pattern)`` from TGI's/OpenAI's shapes."""
    if not isinstance(grammar, Mapping):
        raise GrammarError(f"`grammar` must be an object, got {type(grammar).__name__}.")
    kind = grammar.get("type")
    value = grammar.get("value")
    if kind == "regex":
        if not isinstance(value, str) or not value:
            raise GrammarError("A regex grammar needs `value`: a non-empty regular expression.")
        return "regex", value
    if kind == "json":
        if value is None:
            raise GrammarError("A json grammar needs `value`: a JSON schema.")
        return "json", _schema_value(value, "value")
    if kind == "json_object":  # TGI's alias of json; OpenAI's JSON mode has no schema
        return "json", {"type": "object"} if value is None else _schema_value(value, "value")
    if kind == "json_schema":  # TGI: value={name, schema}; OpenAI: json_schema={name, schema}
        config = value if value is not None else grammar.get("json_schema")
        if not isinstance(config, Mapping) or "schema" not in config:
            raise GrammarError("A json_schema grammar needs `value`: {name, schema}.")
        return "json", _schema_value(config["schema"], "schema")
    raise GrammarError(
        f"Unknown grammar type {kind!r}: use 'json' (a JSON schema) or 'regex'."
        if kind is not None
        else "`grammar` needs a `type`: 'json' (a JSON schema) or 'regex'."
    )


# -- compiled grammars and per-sequence state -----------------------------------------------


class CompiledGrammar:
    """A grammar compiled for one tokenizer; shared by requests, never mutated."""

    def __init__(self, kind: str, source: str, lltokenizer: Any, spec: str) -> None:
        import llguidance
        import torch

        self.kind = kind  # "json" | "regex"
        self.source = source  # the schema (compact JSON) or the regex
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(spec, lltokenizer)
        if is_error:
            what = "JSON schema" if kind == "json" else f"regex {source!r}"
            raise GrammarError(f"Invalid {what}: {_reason(messages[0])}")
        self.warnings = tuple(messages)  # keywords accepted but not enforced
        if self.warnings:
            log.warning("grammar compiled with warnings: %s", "; ".join(self.warnings))
        self.vocab_size = lltokenizer.vocab_size
        self._lltokenizer = lltokenizer
        self._template = llguidance.LLMatcher(lltokenizer, spec, log_level=0)
        if self._template.is_error():
            raise GrammarError(f"Invalid grammar: {_reason(self._template.get_error())}")
        self._shifts = torch.arange(32, dtype=torch.int32)
        self._lock = threading.Lock()  # deep_copy borrows the template

    def new_state(self) -> GrammarState:
        """A fresh matcher at the start of the grammar, for one sequence."""
        with self._lock:
            matcher = self._template.deep_copy()
        return GrammarState(self, matcher)

    def __repr__(self) -> str:
        return f"CompiledGrammar({self.kind}, {self.source[:60]!r})"


class GrammarState:
    """Where one sequence is in its grammar. Not thread-safe: one per sequence."""

    def __init__(self, grammar: CompiledGrammar, matcher: Any) -> None:
        self.grammar = grammar
        self._matcher = matcher

    def allowed(self, width: int):
        """Boolean tensor ``[width]`` (CPU): which token ids may come next. Ids the tokenizer
        does not have (logits wider than its vocabulary) are never allowed."""
        import torch

        words = torch.frombuffer(bytearray(self._matcher.compute_bitmask()), dtype=torch.int32)
        if self._matcher.is_error():
            raise GrammarError(f"Grammar matcher failed: {_reason(self._matcher.get_error())}")
        bits = ((words.unsqueeze(-1) >> self.grammar._shifts) & 1).view(-1).bool()
        n = min(width, self.grammar.vocab_size)
        allowed = torch.zeros(width, dtype=torch.bool)
        allowed[:n] = bits[:n]
        if not bool(allowed.any()):
            raise GrammarError("No token of this model's vocabulary can continue the grammar.")
        return allowed

    def mask(self, logits):
        """``logits`` (``[1, vocab]`` or ``[vocab]``) with every token the grammar forbids at
        this position set to ``-inf`` (a new tensor). EOS is allowed exactly when the output
        so far is complete; once nothing else can follow, EOS is the only token left."""
        allowed = self.allowed(logits.shape[-1]).to(logits.device, non_blocking=True)
        return logits.masked_fill(~allowed, float("-inf"))

    def advance(self, token_id: int) -> None:
        """Consume the chosen token; ``GrammarError`` if the grammar does not allow it (the
        state is then unusable)."""
        token_id = int(token_id)
        if not 0 <= token_id < self.grammar.vocab_size:
            raise GrammarError(f"Token {token_id} is outside the tokenizer's vocabulary.")
        if not self._matcher.consume_token(token_id):
            text = self.grammar._lltokenizer.decode_str([token_id])
            raise GrammarError(f"Token {token_id} ({text!r}) is not allowed by the grammar here.")

    def is_accepting(self) -> bool:
        """The output so far is complete (EOS allowed), though more may still follow."""
        return self._matcher.is_accepting()

    def is_finished(self) -> bool:
        """Complete and nothing but EOS can follow: stop here (finish_reason "eos_token")."""
        return self._matcher.is_stopped() and not self._matcher.is_error()


def _reason(message: str) -> str:
    """The useful line of an llguidance message (regex errors come with a caret drawing)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return lines[0] if lines else "unknown error"


# -- compilation with a per-tokenizer cache -----------------------------------------------


class _TokenizerCache:
    def __init__(self) -> None:
        self.lltokenizers: dict[tuple[int, ...], Any] = {}
        self.grammars: OrderedDict[tuple, CompiledGrammar] = OrderedDict()


# A cache, not state: keyed weakly by the tokenizer object, so a model unloaded is dropped.
_CACHES: weakref.WeakKeyDictionary[Any, _TokenizerCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _lltokenizer(tokenizer: Any, cache: _TokenizerCache, eos: tuple[int, ...]) -> Any:
    if eos not in cache.lltokenizers:
        import llguidance.hf

        try:  # ~0.3 s for a 49k vocabulary: once per tokenizer
            cache.lltokenizers[eos] = llguidance.hf.from_tokenizer(
                tokenizer, eos_token=list(eos) or None
            )
        except ValueError as exc:
            raise GrammarError(f"Grammars need a fast (tokenizers) tokenizer: {exc}") from exc
    return cache.lltokenizers[eos]


def compile_grammar(
    tokenizer: Any, grammar: Mapping[str, Any], *, eos_token_ids: Iterable[int] | None = None
) -> CompiledGrammar:
    """Validate and compile ``grammar`` for ``tokenizer`` (cached per tokenizer and grammar).

    Args:
        tokenizer: a transformers fast tokenizer (``LoadedModel.tokenizer``).
        grammar: ``{"type": "json", "value": <schema dict or JSON string>}``,
            ``{"type": "regex", "value": "<regex the whole output must match>"}``; also
            ``json_object`` (TGI's alias of json; without ``value``: any JSON object) and
            ``json_schema`` with ``value`` (TGI) or ``json_schema`` (OpenAI) ``{name, schema}``.
        eos_token_ids: the ids that end generation (``LoadedModel.eos_token_ids``); default
            the tokenizer's ``eos_token_id``.

    Returns:
        A ``CompiledGrammar``; call ``new_state()`` per sequence.

    Raises:
        GrammarError: unknown shape, schema or regex invalid or unsatisfiable.
    """
    kind, value = _parse_request(grammar)
    if kind == "json":
        source = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        source = value
    if eos_token_ids is None:
        eos_token_ids = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    eos = tuple(sorted(set(int(i) for i in eos_token_ids)))
    key = (eos, kind, source)
    with _CACHES_LOCK:
        cache = _CACHES.get(tokenizer)
        if cache is None:
            cache = _CACHES[tokenizer] = _TokenizerCache()
        compiled = cache.grammars.get(key)
        if compiled is not None:
            cache.grammars.move_to_end(key)
            return compiled
        lltokenizer = _lltokenizer(tokenizer, cache, eos)
    # Compiling takes milliseconds; outside the lock so requests do not queue behind it.
    import llguidance

    matcher = llguidance.LLMatcher
    try:
        if kind == "json":
            spec = matcher.grammar_from_json_schema(value, defaults=_JSON_OPTIONS)
        else:
            spec = matcher.grammar_from_regex(value)
    except ValueError as exc:
        raise GrammarError(f"Invalid grammar: {exc}") from exc
    compiled = CompiledGrammar(kind, source, lltokenizer, spec)
    with _CACHES_LOCK:
        cache.grammars[key] = compiled
        while len(cache.grammars) > _CACHE_SIZE:
            cache.grammars.popitem(last=False)
    return compiled


# -- tool calls ----------------------------------------------------------------------------


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` for dicts, ``obj.name`` for huggingface_hub's dataclasses."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _function(tool: Any) -> tuple[str, str, dict]:
    """``(name, description, parameters)`` of one OpenAI-style tool, validated."""
    kind = _field(tool, "type")
    if kind not in (None, "function"):
        raise GrammarError(f"Unsupported tool type {kind!r}: only 'function' tools exist.")
    function = _field(tool, "function")
    if function is None:
        raise GrammarError("Each tool needs a `function` with a `name`.")
    name = _field(function, "name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise GrammarError(f"Invalid tool name {name!r}: use 1 to 64 letters, digits, '_' or '-'.")
    parameters = _field(function, "parameters")
    if parameters is None:
        parameters = _field(function, "arguments")  # TGI's own field name
    if isinstance(parameters, str):
        parameters = _schema_value(parameters, f"{name}.parameters")
    parameters = dict(parameters or {})
    if parameters.get("type", "object") != "object":
        raise GrammarError(f"Tool {name!r}: `parameters` must describe an object.")
    if not isinstance(parameters.get("properties", {}), Mapping):
        raise GrammarError(f"Tool {name!r}: `parameters.properties` must be an object.")
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise GrammarError(f"Tool {name!r}: `parameters.required` must be a list of names.")
    if "_name" in parameters.get("properties", {}):
        raise GrammarError(f"Tool {name!r}: `_name` is reserved for the tool's name.")
    return name, _field(function, "description") or "", parameters


def _function_schema(name: str, description: str, parameters: dict) -> dict:
    """TGI's schema of one call: ``_name`` (the tool's name) first, then its arguments."""
    extra = parameters.get("additionalProperties", False)
    return {
        "description": description,
        "type": "object",
        "properties": {
            "_name": {"type": "string", "const": name},
            **parameters.get("properties", {}),
        },
        "required": ["_name", *parameters.get("required", [])],
        # TGI forbids extra arguments unless the tool allows them.
        "additionalProperties": extra if isinstance(extra, Mapping) else extra in (True, "true"),
    }


def tool_call_schema(tools: Iterable[Any], tool_choice: Any = "auto") -> dict | None:
    """The JSON schema a tool call must follow, as TGI builds it (``ToolGrammar::apply``).

    The model writes ``{"function": {"_name": "<tool name>", <arguments>...}}``: ``_name`` is
    one of the offered names and the other keys follow that tool's ``parameters``. With
    ``tool_choice="auto"`` a ``no_tool`` option is offered too, ``{"function": {"_name":
    "no_tool", "content": "<answer>"}}``. ``parse_tool_call`` reads the result back.

    Args:
        tools: OpenAI-style ``[{"type": "function", "function": {"name", "description",
            "parameters"}}]`` (dicts or huggingface_hub's ``ChatCompletionInputTool``).
        tool_choice: ``"auto"`` (default, also for ``None``), ``"required"``, ``"none"``,
            ``{"type": "function", "function": {"name": ...}}`` or a tool's name.

    Returns:
        The schema (pass it as ``{"type": "json", "value": schema}`` to ``compile_grammar``),
        or ``None`` when no grammar applies (``"none"``, or no tools with ``"auto"``).

    Raises:
        GrammarError: a malformed tool, a duplicate name, an unknown ``tool_choice`` or tool.
    """
    functions = [_function(tool) for tool in tools or []]
    names = [name for name, _, _ in functions]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise GrammarError(f"Duplicate tool names: {', '.join(duplicates)}.")

    choice = "auto" if tool_choice is None else tool_choice
    if not isinstance(choice, str):
        choice = _field(_field(choice, "function") or {}, "name")
        if not isinstance(choice, str):
            raise GrammarError(
                "`tool_choice` must be 'auto', 'required', 'none' or "
                '{"type": "function", "function": {"name": ...}}.'
            )
        specific = True
    else:
        specific = choice not in ("auto", "required", "none")
    if choice == "none" and not specific:
        return None
    if specific:
        selected = [f for f in functions if f[0] == choice]
        if not selected:
            raise GrammarError(f"Tool with name {choice} not found.")
    elif not functions:
        if choice == "required":
            raise GrammarError("`tool_choice` is 'required' but no tools were given.")
        return None
    elif choice == "required":
        selected = functions
    else:
        if NO_TOOL in names:
            raise GrammarError(f"{NO_TOOL!r} is reserved with tool_choice='auto'.")
        no_tool = {
            "type": "object",
            "properties": {"content": {"type": "string", "description": "The response content"}},
            "required": ["content"],
        }
        selected = [
            *functions,
            (NO_TOOL, "Open ended response with no specific tool selected", no_tool),
        ]

    schema: dict[str, Any] = {
        "$functions": {name: _function_schema(name, d, p) for name, d, p in selected},
        "type": "object",
        "properties": {
            "function": {"anyOf": [{"$ref": f"#/$functions/{name}"} for name, _, _ in selected]}
        },
        "required": ["function"],
        "additionalProperties": False,
    }
    # Definitions a tool's properties refer to (#/$defs/X, as pydantic writes them) move to
    # the root, where those references now point.
    for name, _, parameters in selected:
        for section in ("$defs", "definitions"):
            for def_name, definition in (parameters.get(section) or {}).items():
                merged = schema.setdefault(section, {})
                if merged.get(def_name, definition) != definition:
                    raise GrammarError(
                        f"Tool {name!r}: `{section}/{def_name}` differs from another tool's."
                    )
                merged[def_name] = definition
    return schema


def parse_tool_call(text: str) -> tuple[str, dict[str, Any]]:
    """``(name, arguments)`` from a generated ``{"function": {"_name": ..., ...}}``. For
    ``no_tool`` the arguments are ``{"content": <answer>}``.

    Raises:
        ValueError: the text is not a complete tool call (e.g. cut by ``max_tokens``).
    """
    try:
        call = json.loads(text)
        function = dict(call["function"])
        name = function.pop("_name")
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"The generated text is not a complete tool call: {text[:200]!r}") from exc
    if not isinstance(name, str):
        raise ValueError(f"The generated tool call has no name: {text[:200]!r}")
    return name, function
