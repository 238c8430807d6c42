"""``RemoteBackend``: the Backend protocol over ``huggingface_hub.InferenceClient``.

Targets: a Hub model id on an Inference Provider; an endpoint URL (TGI, Inference Endpoint:
``text_generation`` POSTs to the URL, chat to ``<url>/v1/chat/completions``); an
OpenAI-compatible base URL ending in ``/v1`` (chat only, ``model`` goes in the payload).

What huggingface_hub 2.4 does that shapes this module:

* Given no token it sends this machine's saved token (or ``HF_TOKEN``) to any URL, and it
  refuses ``token=False``. A URL typed without a token gets ``authorization: None``, a header
  override it drops before sending.
* A streamed response stays open in the client's ``ExitStack`` until the client closes, so
  each call gets its own client (they share one HTTP session) and closing our generator
  closes it, and the HTTP stream with it.
* A 503 "model is loading" is neither retried nor avoided (no ``x-wait-for-model``):
  ``_with_load_retry`` retries it for up to ``load_wait`` seconds, reporting progress.
* ``health_check``/``get_endpoint_info`` send the saved token and have no timeout, so we
  send their GETs (``/health``, ``/info``) through huggingface_hub's session ourselves.
* InferenceClient takes no HTTP client of its own: in public mode every request is made
  inside ``netguard.guarding(guard)``, which sends it (and each redirect hop) through a
  transport that refuses addresses inside this network and connects to the checked address.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal, TypeVar

import httpx2
from huggingface_hub import InferenceClient
from huggingface_hub import errors as hf
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
from pydantic import SecretStr

from backends import BackendStatus, netguard, register_backend, vision
from backends.errors import (
    AuthenticationError,
    BackendError,
    GenerationError,
    IncompleteGenerationError,
    InputValidationError,
    UnavailableError,
)
from backends.media import check_audio
from backends.params import (
    ChatCompletionParameters,
    ChatMessage,
    TextGenerationParameters,
    validate,
)
from backends.remote.errors import loading_delay, shorten, to_backend_error
from backends.remote.providers import PROVIDERS, providers_for, serves
from backends.tasks import check_inputs, get_task, validate_parameters

log = logging.getLogger(__name__)
ParamsT = TypeVar("ParamsT", ChatCompletionParameters, TextGenerationParameters)


def _chat_finished(chunk: Any) -> bool:
    return bool(chunk.choices) and chunk.choices[0].finish_reason is not None


def _text_finished(event: Any) -> bool:
    return event.generated_text is not None  # TGI sets it on the last event only


def _checked_message(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message, checked: text content as ``ChatMessage``; a content-part list (text
    and ``image_url`` parts, for vision-language models) by ``vision.check_parts``."""
    if isinstance(message.get("content"), list):
        role = message.get("role")
        if role != "user":
            raise InputValidationError(
                f"Only user messages carry images (got a {role!r} message with parts).",
                field="messages",
            )
        return {"role": role, "content": vision.check_parts(message["content"])}
    return validate(ChatMessage, dict(message)).model_dump()


def _params(model: type[ParamsT], values: dict[str, Any]) -> ParamsT:
    """``validate`` the keyword arguments (a method's ``locals()``) that ``model`` declares."""
    return validate(
        model, {k: v for k, v in values.items() if k in model.model_fields and v is not None}
    )


@register_backend("remote")
class RemoteBackend:
    """A Hub model on an Inference Provider, a TGI / Inference Endpoint URL, or an
    OpenAI-compatible ``/v1`` base URL, through ``InferenceClient``.

    Args:
        model: A Hub model id; or, with an OpenAI-compatible ``base_url``, the payload's
            model name. A URL here is taken as ``base_url``.
        base_url: An endpoint URL (TGI, Inference Endpoint) or a base URL ending in ``/v1``.
        provider: For a model id: one of ``PROVIDERS`` (default "auto"). Ignored for URLs.
        token: The session's token. Without one, nothing is sent to a URL target; a model id
            uses the token saved on this server, as InferenceClient does.
        timeout: Seconds to wait for the server (connect, and between streamed bytes).
        load_wait: Seconds to keep retrying while the server says the model is loading.
        on_progress: Called with a message on each model-loading retry.
        guard: Public mode's ``netguard.Guard``: every request (and redirect hop) to an
            address inside this network is refused with ``InputValidationError``. Default:
            the process's (``netguard.public_guard()``, ``None`` outside public mode).
        token_owner: Whose token ``status`` says is used ("your", or "the operator's" for
            the default endpoint).

    Raises:
        InputValidationError: No target, a malformed URL, or an unknown provider.
    """

    name = "remote"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        provider: str | None = None,
        token: str | None = None,
        timeout: float | None = 60.0,
        load_wait: float = 120.0,
        on_progress: Callable[[str], None] | None = None,
        guard: netguard.Guard | None | Literal["public"] = "public",
        token_owner: str = "your",
    ) -> None:
        if base_url is None and model and model.startswith(("http://", "https://")):
            base_url, model = model, None
        if base_url is not None:
            if not base_url.startswith(("http://", "https://")):
                raise InputValidationError(
                    f"`base_url` must start with http:// or https:// (got {base_url!r})",
                    field="base_url",
                )
            base_url = base_url.rstrip("/")
            provider = "hf-inference"  # InferenceClient routes every URL through it
        elif not model:
            raise InputValidationError(
                "Give a Hub model id or an endpoint URL.",
                field="model",
                hint="e.g. HuggingFaceTB/SmolLM3-3B, or http://localhost:8080 for a TGI server.",
            )
        elif (provider := provider or "auto") not in PROVIDERS:
            raise InputValidationError(
                f"Unknown provider {provider!r}.",
                field="provider",
                hint=f"Pick one of {PROVIDERS}.",
            )
        self.model = model
        self.base_url = base_url
        self.provider = provider
        self.timeout = timeout
        self.load_wait = load_wait
        self.on_progress = on_progress
        self.guard = netguard.public_guard() if guard == "public" else guard
        self.openai_compatible = base_url is not None and base_url.endswith("/v1")
        self.target = base_url or f"{model} on {provider}"
        self._token = SecretStr(token) if token else None
        self._token_owner = token_owner
        self._loading_note: str | None = None

    def __repr__(self) -> str:
        token = "<set>" if self._token else None
        return f"RemoteBackend({self.target!r}, model={self.model!r}, token={token})"

    # -- client ----------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        """What InferenceClient is built with. Holds the token: never log it."""
        token = self._token.get_secret_value() if self._token else None
        kwargs: dict[str, Any] = {
            "provider": self.provider,
            "token": token,
            "timeout": self.timeout,
        }
        if self.base_url is not None:
            kwargs["base_url"] = self.base_url
            if token is None:  # huggingface_hub drops None headers: no saved token leaks
                kwargs["headers"] = {"authorization": None}
        else:
            kwargs["model"] = self.model
        return kwargs

    def _client(self) -> InferenceClient:
        if self.base_url is None and self._token is None and self.guard is not None:
            # A Hub id without a token makes InferenceClient reach for this server's own
            # token (HF_TOKEN, the saved login): on a public server that is the operator's.
            raise AuthenticationError(
                f"{self.model} on {self.provider} needs a Hugging Face token, and this public "
                "server does not lend its own.",
                hint="Sign in with Hugging Face (the button at the top), or paste your hf_… "
                "token in the Connection panel.",
            )
        return InferenceClient(**self._client_kwargs())

    def _guarded(self) -> AbstractContextManager[None]:
        """The block's requests go through the public-mode guard, if any."""
        return netguard.guarding(self.guard)

    def _error(self, exc: BaseException) -> BackendError:
        return to_backend_error(exc, target=self.target, timeout=self.timeout)

    def _progress(self, message: str) -> None:
        log.info(message)
        self._loading_note = message
        if self.on_progress is not None:
            self.on_progress(message)

    def _with_load_retry(self, call: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.load_wait
        try:
            for attempt in itertools.count():
                try:
                    return call()
                except hf.HfHubHTTPError as exc:
                    delay = loading_delay(exc, attempt)
                    left = deadline - time.monotonic()
                    if delay is None or left <= 0:
                        raise
                    delay = min(delay, left)
                self._progress(
                    f"{self.target}: the model is loading; retry {attempt + 1} in {delay:.1f} s…"
                )
                time.sleep(delay)
        finally:
            self._loading_note = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One non-streamed InferenceClient call, its errors mapped."""
        with self._client() as client, self._guarded():
            try:
                return self._with_load_retry(lambda: getattr(client, method)(*args, **kwargs))
            except Exception as exc:
                raise self._error(exc) from exc

    def _stream(
        self,
        method: str,
        kwargs: dict[str, Any],
        finished: Callable[[Any], bool],
        convert: Callable[[Any], Any] = lambda item: item,
    ) -> Iterator[Any]:
        """Open the stream on the first ``next()``; ``close()`` closes the HTTP response.

        A failure after the first chunk raises once the chunks before it are yielded."""
        client, opened, received, done = self._client(), False, 0, False
        try:
            with self._guarded():  # the connection (and any redirect) opens in this call
                items = self._with_load_retry(lambda: getattr(client, method)(**kwargs))
            opened = True
            for item in items:
                done = done or finished(item)
                received += 1
                yield convert(item)
            if not done:
                raise IncompleteGenerationError(
                    f"The stream from {self.target} ended before the generation finished "
                    f"({received} chunks).",
                    hint="The text so far is kept; retry for the rest.",
                )
        except BackendError:
            raise
        except Exception as exc:
            if opened and isinstance(exc, httpx2.TransportError):
                cause = (
                    f"no data for {self.timeout:g} s"
                    if isinstance(exc, httpx2.TimeoutException)
                    else shorten(str(exc)) or type(exc).__name__
                )
                raise IncompleteGenerationError(
                    f"The stream from {self.target} broke off after {received} chunks: {cause}",
                    hint="The text so far is kept; retry for the rest.",
                ) from exc
            raise self._error(exc) from exc
        finally:
            client.close()

    # -- informational ---------------------------------------------------------------------

    def status(self) -> BackendStatus:
        """Returns: ``BackendStatus`` "ready" with the target described (no network call),
        or "loading" while the server says the model is loading."""
        if self._loading_note:
            return BackendStatus("loading", self._loading_note)
        if self.base_url is None:
            if self._token:
                auth = f"{self._token_owner} token"
            elif self.guard is not None:  # public: never the server's own (see ``_client``)
                auth = "no token (sign in or paste one)"
            else:
                auth = "this server's saved token, if any"
            return BackendStatus("ready", f"{self.model} via {self.provider}, with {auth}")
        kind = "OpenAI-compatible API" if self.openai_compatible else "Endpoint"
        model = f", model {self.model}" if self.model else ""
        auth = f"{self._token_owner} token" if self._token else "no token"
        return BackendStatus("ready", f"{kind} {self.base_url}{model}, with {auth}")

    def _get(self, route: str) -> httpx2.Response:
        root = self.base_url.removesuffix("/v1")  # TGI serves /health and /info at its root
        token = self._token.get_secret_value() if self._token else False
        with self._guarded():
            return get_session().get(
                f"{root}/{route}", headers=build_hf_headers(token=token), timeout=self.timeout
            )

    def health_check(self) -> bool:
        """Returns: for a URL, whether ``GET /health`` answers 200 (False if unreachable);
        for a model id, True (providers have no health route: a call is the only test)."""
        if self.base_url is None:
            return True
        try:
            return self._get("health").status_code == 200
        except (httpx2.HTTPError, OSError) as exc:
            log.info("health check of %s failed: %s", self.target, exc)
            return False

    def get_endpoint_info(self) -> dict[str, Any]:
        """Returns: the endpoint's TGI/TEI ``/info`` JSON (model id, dtype, limits, …).

        Raises:
            UnavailableError: A provider target, or a server that does not serve ``/info``.
            BackendError: Any other failure, mapped by ``to_backend_error``.
        """
        hint = "Only TGI and TEI endpoints describe themselves (GET /info)."
        if self.base_url is None:
            raise UnavailableError(f"{self.target}: endpoint info is not available.", hint=hint)
        try:
            response = self._get("info")
            hf_raise_for_status(response)
            return response.json()
        except hf.HfHubHTTPError as exc:
            if exc.response.status_code in (404, 405):
                raise UnavailableError(f"{self.target} does not serve /info.", hint=hint) from exc
            raise self._error(exc) from exc
        except json.JSONDecodeError as exc:
            raise UnavailableError(f"{self.target}/info is not JSON.", hint=hint) from exc
        except Exception as exc:
            raise self._error(exc) from exc

    # -- other tasks -----------------------------------------------------------------------

    def run_task(
        self,
        name: str,
        inputs: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        *,
        model: str | None = None,
    ) -> Any:
        """``InferenceClient.<name>(**inputs, **parameters)`` with the parameters checked first
        (see ``backends.tasks``); ``model`` replaces this backend's Hub model id (ignored for
        a URL target, which serves one model)."""
        spec = get_task(name)
        if self.base_url is None and providers_for(spec.hub_task) == ["auto"]:
            # InferenceClient would look the model up on the Hub, then refuse the task anyway.
            raise InputValidationError(
                f"No Inference Provider serves {spec.hub_task} through huggingface_hub.",
                field="model",
                hint="Give the URL of an endpoint that serves the model, or use the local backend.",
            )
        self._check_task(spec.hub_task)
        kwargs = {**check_inputs(name, inputs), **validate_parameters(name, parameters or {})}
        if model and self.base_url is None and model != self.model:
            kwargs["model"] = model
        method = name
        if self.base_url is not None and name == "tabular_regression":
            # huggingface_hub 2.4 routes tabular-regression to no provider (not even
            # hf-inference), so InferenceClient refuses it for a URL. tabular_classification
            # sends the same request ({"parameters": {}, "table": ...}) and parses the same
            # reply (a JSON list).
            method = "tabular_classification"
        result = self._call(method, **kwargs)
        if spec.output == "audio":
            self._check_audio_reply(result)
        return result

    def _check_audio_reply(self, data: bytes) -> None:
        """InferenceClient hands back any bytes as audio: an HTML error page must not reach
        the player as a broken file."""
        try:
            check_audio(data)
        except InputValidationError as exc:
            raise GenerationError(
                f"{self.target} answered with something that is not audio "
                f"({shorten(repr(data[:40]), 60)}).",
                hint="Check that the endpoint serves a text-to-speech model.",
            ) from exc

    # -- generation ------------------------------------------------------------------------

    def _check_task(self, task: str) -> None:
        if self.base_url is None and self.provider != "auto":
            if not serves(self.provider, task):
                raise InputValidationError(
                    f"Provider {self.provider!r} does not serve {task}.",
                    field="provider",
                    hint=f"Pick one of {providers_for(task)}.",
                )

    def chat_completion(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        stream: bool = False,
    ):
        """Like ``InferenceClient.chat_completion``.

        Args:
            messages: ``{"role", "content"}`` dicts (system / user / assistant); a user
                message's content may be OpenAI content parts with ``image_url`` data URLs
                (``backends.vision``), for vision-language models.
            max_tokens, temperature, top_p, seed, stop: OpenAI's; ``ChatCompletionParameters``
                checks them before any network call. stream: Return an iterator of chunks.

        Returns:
            A ``ChatCompletionOutput``, or an iterator of ``ChatCompletionStreamOutput``
            (it connects on the first ``next()``; ``close()`` closes the HTTP stream).

        Raises:
            InputValidationError: Bad parameters or messages, before any network call.
            BackendError: A subclass per failure (``to_backend_error``); a broken stream
                raises ``IncompleteGenerationError`` after the chunks it delivered.
        """
        params = _params(ChatCompletionParameters, locals())
        if not messages:
            raise InputValidationError("`messages` cannot be empty", field="messages")
        checked = [_checked_message(m) for m in messages]
        self._check_task("conversational")
        kwargs = {
            "messages": checked,
            "model": self.model if self.base_url else None,  # a URL target's payload model
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": None if params.top_p == 1 else params.top_p,  # 1 = no nucleus filtering
            "seed": params.seed,
            "stop": params.stop,
            "frequency_penalty": params.frequency_penalty,
            "presence_penalty": params.presence_penalty,
            "logprobs": params.logprobs or None,
            "top_logprobs": params.top_logprobs,
            "response_format": params.response_format,
            "tools": params.tools,
            "tool_choice": params.tool_choice,
        }
        if not stream:
            return self._call("chat_completion", **kwargs)
        return self._stream("chat_completion", {**kwargs, "stream": True}, _chat_finished)

    def text_generation(
        self,
        prompt: str,
        *,
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        typical_p: float | None = None,
        repetition_penalty: float | None = None,
        frequency_penalty: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        truncate: int | None = None,
        return_full_text: bool = False,
        details: bool = False,
        decoder_input_details: bool = False,
        top_n_tokens: int | None = None,
        best_of: int | None = None,
        watermark: bool = False,
        grammar: dict[str, Any] | None = None,
        stream: bool = False,
    ):
        """Like ``InferenceClient.text_generation`` (TGI's ``POST /``).

        Args:
            prompt: The text to continue. max_new_tokens … details: TGI's parameters,
                checked by ``TextGenerationParameters`` before any network call.
            stream: Return an iterator (it connects on the first ``next()``).

        Returns:
            A string, a ``TextGenerationOutput`` (``details=True``), or an iterator of
            strings / ``TextGenerationStreamOutput``.

        Raises:
            InputValidationError: Bad parameters, an empty prompt, or a ``/v1`` target.
            BackendError: As for ``chat_completion``.
        """
        params = _params(TextGenerationParameters, locals())
        if not prompt:
            raise InputValidationError("`inputs` cannot be empty", field="inputs")
        if self.openai_compatible:
            raise InputValidationError(
                f"{self.target} is an OpenAI-compatible base URL: it has no text-generation route.",
                field="base_url",
                hint="Use chat, or give a TGI server's root URL (without /v1).",
            )
        self._check_task("text-generation")
        # `model` names the target again: InferenceClient caches "unsupported parameters" per
        # model, and None would share one cache entry between every URL.
        kwargs = {**params.model_dump(), "prompt": prompt, "model": self.base_url or self.model}
        if not stream:
            return self._call("text_generation", **kwargs)
        # Always ask for objects: the last event's `generated_text` says the stream finished.
        convert = (lambda out: out) if details else (lambda out: out.token.text)
        kwargs |= {"details": True, "stream": True}
        return self._stream("text_generation", kwargs, _text_finished, convert)
