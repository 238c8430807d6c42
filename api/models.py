"""Request bodies of the local API, on the shared parameter models of ``backends.params``.

``GenerateRequest`` is TGI's ``{"inputs", "parameters", "stream"}`` (``parameters`` are
``TextGenerationParameters``), ``ChatRequest`` OpenAI's chat body (``ChatCompletionParameters``
plus ``messages``). Parameters clients may send that this server does not serve (yet)
accept only their "off" value. ``parse_body`` turns pydantic's errors into one TGI
``InputValidationError`` (422 ``validation``), checking in the order a client fixes its
request: the body's shape first, then what is not served, then the parameters' bounds.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from backends.errors import InputValidationError
from backends.params import ChatCompletionParameters, TextGenerationParameters, refusal

_REFUSED = "refused"  # pydantic error type whose message is the whole refusal


def _refuse(message: str, field: str | None) -> PydanticCustomError:
    return PydanticCustomError(_REFUSED, "{message}", {"message": message, "field": field})


def _only_off(*off: Any) -> AfterValidator:
    """A parameter this server does not serve: only its ``off`` values pass."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if value not in off:
            key = info.field_name
            raise _refuse(f"`{key}` is not supported by this server yet (got {value!r})", key)
        return value

    return AfterValidator(check)


OnlyNone = Annotated[Any, _only_off(None)]
OnlyNoneOrOne = Annotated[Any, _only_off(None, 1)]


class GenerateParameters(TextGenerationParameters):
    """TGI's ``parameters``: InferenceClient's, and what TGI clients may send besides."""

    adapter_id: OnlyNone = None  # TGI's LoRA adapters

    def backend_kwargs(self) -> dict[str, Any]:
        """The parameters the client set, as ``Backend.text_generation`` keywords."""
        given = self.model_dump(exclude_unset=True, exclude={"adapter_id"})
        return {key: value for key, value in given.items() if value is not None}


class GenerateRequest(BaseModel):
    """TGI's ``/generate``, ``/generate_stream`` and ``POST /`` body (other keys ignored)."""

    inputs: str = Field(json_schema_extra={"minLength": 1})
    parameters: GenerateParameters | None = None
    stream: bool | None = None  # POST / only: ``/generate_stream`` instead of ``/generate``

    def backend_kwargs(self) -> dict[str, Any]:
        return self.parameters.backend_kwargs() if self.parameters else {}


class _TokenizeParameters(BaseModel):
    """``/tokenize`` reads only ``inputs``; an unserved adapter is still refused."""

    adapter_id: OnlyNone = None


class TokenizeRequest(BaseModel):
    """TGI's ``/tokenize`` body: a ``/generate`` body whose parameters are not used."""

    inputs: str
    parameters: _TokenizeParameters | None = None


def _message_text(content: Any) -> str:
    """OpenAI content: a string or a list of parts; only text parts are served."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise _refuse(
                    f"Only text message parts are supported by this model (got {kind!r})",
                    "messages",
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise _refuse("message `content` must be a string or a list of parts", None)


# What /api/openapi.json says a message's content is (``_message_text`` checks it).
_CONTENT = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                "required": ["type", "text"],
            },
        },
    ]
}


class ChatRequestMessage(BaseModel):
    """One OpenAI message; its role is checked by the backend (the chat template's)."""

    model_config = ConfigDict(json_schema_extra={"required": ["role", "content"]})

    role: Annotated[Any, WithJsonSchema({"enum": ["system", "user", "assistant"]})] = None
    content: Annotated[Any, AfterValidator(_message_text), WithJsonSchema(_CONTENT)] = Field(
        default=None, validate_default=True
    )


class ChatRequest(ChatCompletionParameters):
    """OpenAI's ``/v1/chat/completions`` body (unknown keys are refused)."""

    messages: list[ChatRequestMessage] = Field(json_schema_extra={"minItems": 1})
    model: Any = None  # any value: one model is served
    n: OnlyNoneOrOne = None
    stream: bool | None = None
    stream_options: Any = None  # usage always comes on the last chunk
    logit_bias: OnlyNone = None
    tool_prompt: OnlyNone = None
    user: Any = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # OpenAI: a string or a list

    def backend_messages(self) -> list[dict[str, Any]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def backend_kwargs(self) -> dict[str, Any]:
        """The parameters the client set, as ``Backend.chat_completion`` keywords."""
        keys = set(ChatCompletionParameters.model_fields)
        given = self.model_dump(include=keys, exclude_unset=True)
        return {key: value for key, value in given.items() if value is not None}


ModelT = TypeVar("ModelT", bound=BaseModel)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its local ``$ref``s replaced by their ``$defs`` (none recursive)."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the JSON body of a route that reads it
    with ``parse_body`` (so that refusals keep TGI's error shape, not FastAPI's)."""
    schema = model.model_json_schema()
    body = _inline(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


# What a wrong top-level field is told, whatever pydantic found (missing, wrong type).
_SHAPES = {
    "inputs": "`inputs` must be a string",
    "messages": "`messages` must be a list",
}


def _first_refusal(errors: list[dict[str, Any]]) -> InputValidationError:
    """The error a client should fix first, as TGI's validation error."""
    top = [e for e in errors if len(e["loc"]) == 1]
    for err in top:
        key = err["loc"][0]
        if key in _SHAPES:
            return InputValidationError(_SHAPES[key], field=key)
        if key == "parameters" and err["type"] == "model_type":
            return InputValidationError("`parameters` must be an object", field=key)
    unknown = sorted(str(e["loc"][0]) for e in top if e["type"] == "extra_forbidden")
    if unknown:
        return InputValidationError(f"Unknown parameter(s): {', '.join(unknown)}", field=unknown[0])
    refused = [e for e in errors if e["type"] == _REFUSED]
    # An unserved parameter is named before a message's content (pydantic lists `messages`
    # first: it is a field of the model).
    refused.sort(key=lambda e: e["loc"][0] == "messages")
    if refused:
        return InputValidationError(refused[0]["msg"], field=refused[0]["ctx"]["field"])
    messages = [e for e in errors if e["loc"][:1] == ("messages",)]
    if messages:  # a message that is not an object
        return InputValidationError("each message must be an object", field="messages")
    # The parameters' own bounds, named as the backends name them (without "parameters.").
    inner = [{**e, "loc": e["loc"][1:]} if e["loc"][:1] == ("parameters",) else e for e in errors]
    return refusal(inner)


def parse(model: type[ModelT], body: Any) -> ModelT:
    """``body`` (parsed JSON) as ``model``, or the ``InputValidationError`` to answer."""
    if not isinstance(body, dict):
        raise InputValidationError("The request body must be a JSON object.")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _first_refusal(exc.errors(include_url=False)) from None


async def parse_body(request: Request, model: type[ModelT]) -> ModelT:
    """The request's JSON body as ``model`` (the ``Content-Type`` is not checked)."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputValidationError("The request body must be JSON.") from None
    except RecursionError:  # json's decoder recurses once per nested array or object
        raise InputValidationError("The request body's JSON is nested too deeply.") from None
    return parse(model, body)
