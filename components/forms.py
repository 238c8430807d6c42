"""The generation tabs' forms: their widget values, named, mapped once to the shared
parameter models of ``backends.params``.

``TextGenerationForm`` and ``ChatForm`` hold what a tab's widgets (or its Gradio API
endpoint) say. ``from_widgets`` reads raw widget values (stop sequences one per line, seed
-1 = random); ``parameters`` builds the ``backends.params`` model, leaving a parameter
unset where its widget shows the "off" value (the one table, ``OFF``) and parsing the JSON
a widget holds; ``keywords`` gives the ``InferenceClient`` keyword arguments the request
and "Show code" send. Whatever a form refuses (a bound, JSON that does not parse, a regex
that does not compile) is raised as ``FormErrors``, keyed by the form's field: the tab
shows each reason next to its widget, or the first one in a toast.

Plain Python, no gradio.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from backends.errors import InputValidationError
from backends.params import ChatCompletionParameters, TextGenerationParameters, refusal

# A widget showing its "off" value leaves the parameter unset, so it does nothing (the
# server's default). The one place that says which value is "off".
OFF: dict[str, int | float] = {
    "top_k": 0,  # no top-k filtering
    "top_p": 1,  # no nucleus filtering
    "typical_p": 1,  # no typical filtering
    "repetition_penalty": 1,
    "frequency_penalty": 0,
    "truncate": 0,  # keep the whole prompt
    "best_of": 1,  # one sequence
    "top_n_tokens": 0,  # no alternatives
}
WARPERS = ("temperature", "top_k", "top_p", "typical_p")  # sent only when sampling


class FormErrors(InputValidationError):
    """The values a form refuses: ``errors`` is ``{field: reason}`` (the form's field names,
    which are its widgets'), in the order found; ``field`` is the first. The message (a
    toast, an API error) is ``message``."""

    def __init__(self, errors: dict[str, str], message: str) -> None:
        super().__init__(message, field=next(iter(errors)))
        self.errors = dict(errors)


def parse_stop(text: str | None) -> list[str] | None:
    """Stop sequences from a textbox: one per line; ``\\n`` and ``\\t`` are escapes."""
    if not text:
        return None
    lines = [line for line in text.split("\n") if line != ""]
    stops = [line.replace("\\n", "\n").replace("\\t", "\t") for line in lines]
    return stops or None


def optional_seed(value: float | int | None) -> int | None:
    """A ``gr.Number`` seed: -1 (or empty) means "random"."""
    return None if value is None or value == "" or int(value) < 0 else int(value)


def unset_off(values: dict[str, Any], *, or_above: Collection[str] = ()) -> dict[str, Any]:
    """``values`` with each value ``OFF`` calls "off" as ``None`` (unset); for the names in
    ``or_above`` any value past the off value too."""
    unset = {}
    for name, value in values.items():
        off = OFF.get(name)
        # Only numbers are compared: anything else (a string from the API) is left for
        # the parameter model to refuse, naming the field.
        if off is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            if value == off or (name in or_above and value > off):
                value = None
        unset[name] = value
    return unset


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _keywords(params: BaseModel, order: Collection[str]) -> dict[str, Any]:
    """The fields given to ``params`` (not its defaults), in ``order``."""
    return {name: getattr(params, name) for name in order if name in params.model_fields_set}


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _problems(model: type[BaseModel], values: dict[str, Any]) -> list[dict[str, Any]]:
    """pydantic's errors for ``values`` (unset ones left out), ``[]`` when they are valid."""
    try:
        model.model_validate(_given(values))
    except ValidationError as exc:
        return exc.errors(include_url=False)
    return []


def _reasons(problems: list[dict[str, Any]], rule: str) -> dict[str, str]:
    """pydantic's own reason per refused field (the first), as shown next to a widget; a
    rule across fields has no location: it goes under ``rule``."""
    errors: dict[str, str] = {}
    for err in problems:
        name = str(err["loc"][0]) if err["loc"] else rule
        errors.setdefault(name, err["msg"].removeprefix("Value error, "))
    return errors


@dataclass(frozen=True)
class TextGenerationForm:
    """The text-generation tab's values, named as its widgets
    (``generation_params.ParameterPanel``). A value left ``None`` is not sent."""

    max_new_tokens: int | None = None
    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    seed: int | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: list[str] | None = None
    return_full_text: bool = False
    truncate: int | None = None
    best_of: int | None = None
    watermark: bool = False
    top_n_tokens: int | None = None
    decoder_input_details: bool = False
    grammar_type: str | None = "none"  # "none", "json" (a JSON schema) or "regex"
    grammar_value: str | None = ""

    @classmethod
    def from_widgets(cls, **raw: Any) -> TextGenerationForm:
        """The panel's raw widget values, by name (every one of them)."""
        return cls(
            max_new_tokens=int(raw["max_new_tokens"]),
            do_sample=bool(raw["do_sample"]),
            temperature=float(raw["temperature"]),
            top_k=_int(raw["top_k"]),
            top_p=float(raw["top_p"]),
            typical_p=float(raw["typical_p"]),
            seed=optional_seed(raw["seed"]),
            repetition_penalty=float(raw["repetition_penalty"]),
            frequency_penalty=_float(raw["frequency_penalty"]),
            stop=parse_stop(raw["stop"]),
            return_full_text=bool(raw["return_full_text"]),
            truncate=_int(raw["truncate"]),
            best_of=_int(raw["best_of"]),
            watermark=bool(raw["watermark"]),
            top_n_tokens=_int(raw["top_n_tokens"]),
            decoder_input_details=bool(raw["decoder_input_details"]),
            grammar_type=raw["grammar_type"],
            grammar_value=raw["grammar_value"],
        )

    def _grammar(self) -> dict[str, Any] | None:
        """The grammar widgets as TGI's ``{"type", "value"}``. Raises ``FormErrors`` for
        a schema that is not JSON or a regex that does not compile."""
        kind, value = self.grammar_type, self.grammar_value or ""
        if not kind or kind == "none":
            return None
        if kind == "json":
            try:
                return {"type": "json", "value": json.loads(value)}
            except json.JSONDecodeError as exc:
                reason = f"invalid JSON: {exc}"
        else:
            try:
                re.compile(value)
                return {"type": "regex", "value": value}
            except re.error as exc:
                reason = f"invalid regex: {exc}"
        raise FormErrors({"grammar_value": reason}, f"`grammar_value`: {reason}")

    def _values(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(warpers, sent)``: the sampling values (off ones unset), and what the request
        carries; with ``do_sample`` off no warper is sent (greedy decoding)."""
        warpers = unset_off({name: getattr(self, name) for name in WARPERS})
        sampling = bool(self.do_sample)
        sent = unset_off(
            {
                "max_new_tokens": self.max_new_tokens,
                "do_sample": sampling,
                **{name: (value if sampling else None) for name, value in warpers.items()},
                "repetition_penalty": self.repetition_penalty,
                "frequency_penalty": self.frequency_penalty,
                "seed": self.seed,
                "stop": self.stop,
                "return_full_text": bool(self.return_full_text),
                "truncate": self.truncate,
                "best_of": self.best_of,
                "watermark": bool(self.watermark),
                "top_n_tokens": self.top_n_tokens,
                "decoder_input_details": bool(self.decoder_input_details),
            }
        )
        return warpers, sent

    def parameters(self) -> TextGenerationParameters:
        """The request's parameters. Raises ``FormErrors`` for every value TGI would refuse
        (sampling values are checked even when greedy decoding leaves them out, as TGI
        does); its message names the first, e.g. "`temperature`: Input should be …"."""
        warpers, sent = self._values()
        model = TextGenerationParameters
        # A rule across fields (best_of's) has no location: it belongs to best_of.
        errors = _reasons(_problems(model, warpers), "best_of")
        errors |= _reasons(_problems(model, sent), "best_of")
        try:
            grammar = self._grammar()
        except FormErrors as exc:
            errors |= exc.errors
        if errors:
            name, reason = next(iter(errors.items()))
            raise FormErrors(errors, f"`{name}`: {reason}")
        return model.model_validate(_given({**sent, "grammar": grammar}))

    def keywords(self) -> dict[str, Any]:
        """``text_generation`` keyword arguments (what the request and "Show code" send), in
        the panel's order; unset parameters are left out. Raises ``FormErrors``."""
        params = self.parameters()
        return _keywords(params, [*self._values()[1], "grammar"])

    def errors(self) -> dict[str, str]:
        """``{field: reason}`` for each value refused, to show next to its widget."""
        try:
            self.parameters()
        except FormErrors as exc:
            return exc.errors
        return {}


@dataclass(frozen=True)
class ChatForm:
    """The chat tab's parameter values, named as its widgets. A value left ``None`` is not
    sent; ``format_value`` (a JSON schema or a regex) and ``tools_text`` (a JSON list) are
    the text the widgets hold, read by ``parameters``."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    format_kind: str | None = "text"  # "text", "json_schema" or "regex"
    format_value: str | None = ""
    tools_text: str | None = ""
    tool_choice: str | None = "none"  # "none", "auto" or "required"

    @classmethod
    def from_widgets(cls, **raw: Any) -> ChatForm:
        """The tab's raw widget values, by name (every one of them)."""
        return cls(
            max_tokens=int(raw["max_tokens"]),
            temperature=float(raw["temperature"]),
            top_p=float(raw["top_p"]),
            seed=optional_seed(raw["seed"]),
            stop=parse_stop(raw["stop"]),
            format_kind=raw["format_kind"],
            format_value=raw["format_value"],
            tools_text=raw["tools_text"],
            tool_choice=raw["tool_choice"],
        )

    @property
    def uses_tools(self) -> bool:
        return bool(self.tool_choice) and self.tool_choice != "none"

    def _values(self) -> dict[str, Any]:
        """What the request carries. Raises ``FormErrors`` for JSON that does not parse."""
        errors: dict[str, str] = {}

        def parse(field: str, what: str) -> Any:
            try:
                return json.loads(getattr(self, field) or "")
            except json.JSONDecodeError as exc:
                errors[field] = f"The {what} is not valid JSON: {exc}"

        values: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": self.stop,
        }
        if self.format_kind == "json_schema":
            schema = parse("format_value", "JSON schema")
            values["response_format"] = {"type": "json", "value": schema}
        elif self.format_kind == "regex":
            values["response_format"] = {"type": "regex", "value": self.format_value}
        if self.uses_tools:  # tools are only sent when the model may call one
            values |= {"tools": parse("tools_text", "tools"), "tool_choice": self.tool_choice}
        if errors:
            raise FormErrors(errors, next(iter(errors.values())))
        # OpenAI's top_p bound is <= 1; the chat tab (and its /chat API) has always taken
        # any top_p from 1 up as "off".
        return unset_off(values, or_above={"top_p"})

    def parameters(self) -> ChatCompletionParameters:
        """The request's parameters. Raises ``FormErrors`` for JSON that does not parse, or
        (with the message a backend gives, e.g. "`stop` accepts at most 4 items (got 5)")
        for values out of bounds."""
        values = self._values()
        problems = _problems(ChatCompletionParameters, values)
        if problems:  # the message a backend gives (it checks the same model)
            raise FormErrors(_reasons(problems, "top_logprobs"), refusal(problems).message)
        return ChatCompletionParameters.model_validate(_given(values))

    def keywords(self) -> dict[str, Any]:
        """``chat_completion`` keyword arguments (what the request and "Show code" send);
        unset parameters are left out. Raises ``FormErrors``."""
        params = self.parameters()
        return _keywords(params, ChatCompletionParameters.model_fields)
