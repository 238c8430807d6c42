"""Parameter models with TGI's bounds, shared by the UI, the local API and the engine.

Names are InferenceClient's. Every model forbids unknown keys, so a typo is an error, never
silently ignored. ``validate`` turns pydantic's errors into one ``InputValidationError``
whose message names the parameter and the bound, as TGI's own validation does.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from backends.errors import InputValidationError

MAX_STOP_SEQUENCES = 4  # TGI's --max-stop-sequences default
MAX_SEED = 2**64 - 1
MAX_TEMPERATURE = 100.0  # TGI only needs > 0; past this sampling is uniform noise
MAX_TOP_N_TOKENS = 5  # TGI's --max-top-n-tokens default
MAX_BEST_OF = 4  # TGI's default is 2; sequences run one after another here
WATERMARK_GAMMA = 0.5  # TGI's WATERMARK_GAMMA / WATERMARK_DELTA defaults
WATERMARK_DELTA = 2.0


def samples(
    do_sample: bool,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    typical_p: float | None = None,
) -> bool:
    """TGI's rule: it samples when asked to, or when any warper is set (temperature ≠ 1,
    top_k, top_p < 1, typical_p < 1); otherwise it decodes greedily."""
    return do_sample or (
        (temperature is not None and temperature != 1.0)
        or top_k is not None
        or (top_p is not None and top_p < 1.0)
        or (typical_p is not None and typical_p < 1.0)
    )


def _check_stop(value: list[str] | None) -> list[str] | None:
    if value is not None and any(s == "" for s in value):
        raise ValueError("stop sequences must not be empty strings")
    return value


StopSequences = Annotated[
    list[str] | None, Field(max_length=MAX_STOP_SEQUENCES), AfterValidator(_check_stop)
]


class TextGenerationParameters(BaseModel):
    """``InferenceClient.text_generation`` parameters, with TGI's semantics and bounds."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int | None = Field(default=None, ge=1)
    do_sample: bool = False
    temperature: float | None = Field(default=None, gt=0, le=MAX_TEMPERATURE)
    top_k: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0, lt=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stop: StopSequences = None
    return_full_text: bool = False
    details: bool = False
    typical_p: float | None = Field(default=None, gt=0, lt=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    truncate: int | None = Field(default=None, ge=1)
    top_n_tokens: int | None = Field(default=None, ge=0, le=MAX_TOP_N_TOKENS)
    decoder_input_details: bool = False
    best_of: int | None = Field(default=None, ge=1, le=MAX_BEST_OF)
    watermark: bool = False
    grammar: dict[str, Any] | None = None  # {"type": "json"|"regex", "value": ...}; compiled later

    @property
    def sampling(self) -> bool:
        return samples(self.do_sample, self.temperature, self.top_k, self.top_p, self.typical_p)

    @model_validator(mode="after")
    def _best_of_rules(self) -> TextGenerationParameters:
        # TGI's validation: best_of > 1 needs sampling, no seed (each sequence draws its
        # own), and no streaming (checked by the caller, which knows ``stream``).
        if self.best_of and self.best_of > 1:
            if not self.sampling:
                raise ValueError("you must use sampling when `best_of` is > 1")
            if self.seed is not None:
                raise ValueError("`seed` must not be set when `best_of` > 1")
        return self


class ChatCompletionParameters(BaseModel):
    """``InferenceClient.chat_completion`` parameters (OpenAI bounds, TGI semantics:
    ``temperature=0`` means greedy)."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stop: StopSequences = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_N_TOKENS)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _top_logprobs_needs_logprobs(self) -> ChatCompletionParameters:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("`top_logprobs` needs `logprobs` set to true")
        return self


def _invalid_character(text: str) -> str | None:
    """Why ``text`` cannot be tokenized, or ``None``: a lone UTF-16 surrogate (JSON's
    ``"\\ud800"`` escape decodes to one) has no UTF-8 encoding, so no tokenizer reads it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"holds an invalid character at position {exc.start}: {text[exc.start]!r} is "
            "half of a UTF-16 surrogate pair, not a character"
        )
    return None


def check_text(text: str, field: str) -> str:
    """``text``, or an ``InputValidationError`` naming ``field`` when no tokenizer can read
    it (see ``_invalid_character``)."""
    problem = _invalid_character(text)
    if problem:
        raise InputValidationError(f"`{field}` {problem}", field=field, hint="Send valid text.")
    return text


def _valid_text(text: str) -> str:
    problem = _invalid_character(text)
    if problem:
        raise ValueError(problem)
    return text


class ChatMessage(BaseModel):
    """One message as the chat template takes it."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(pattern="^(system|user|assistant)$")
    content: Annotated[str, AfterValidator(_valid_text)]


ModelT = TypeVar("ModelT", bound=BaseModel)


def _describe(error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    got = error.get("input")
    bounds = {
        "greater_than": f"must be > {ctx.get('gt')}",
        "greater_than_equal": f"must be >= {ctx.get('ge')}",
        "less_than": f"must be < {ctx.get('lt')}",
        "less_than_equal": f"must be <= {ctx.get('le')}",
    }
    if kind in bounds:
        return f"{bounds[kind]} (got {got!r})"
    if kind == "too_long":
        return f"accepts at most {ctx.get('max_length')} items (got {ctx.get('actual_length')})"
    if kind == "extra_forbidden":
        return "is not a known parameter"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')} (got {got!r})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg'].lower()} (got {got!r})"


def refusal(errors: list[dict[str, Any]]) -> InputValidationError:
    """One ``InputValidationError`` naming every error of a pydantic ``ValidationError``
    (``exc.errors()``), e.g. "`top_p` must be < 1 (got 1.5)"; its ``field`` is the first's."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err["loc"]]
        # A rule across fields (model validator) has no location: its message says it.
        parts.append(f"`{'.'.join(loc)}` {_describe(err)}" if loc else _describe(err))
    first = str(errors[0]["loc"][0]) if errors and errors[0]["loc"] else None
    return InputValidationError("; ".join(parts), field=first)


def validate(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """Build ``model`` from ``values`` or raise one ``InputValidationError`` naming every
    offending field (see ``refusal``)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise refusal(exc.errors(include_url=False)) from None
