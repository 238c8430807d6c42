"""Sign in with Hugging Face and the secrets rule, with two browser sessions and two
recording endpoints on loopback.

Off a Space, Gradio's ``gr.LoginButton`` signs in with a stand-in profile (its mocked OAuth
routes, which ask the Hub's ``whoami``): ``HF_ENDPOINT`` points the app at ``hub`` — a
recording fake of the Hub and of an OpenAI-compatible server (the real Hub is unreachable
here) — so the configured Hub's origin is a Hugging Face target, where a signed-in
visitor's token may go. ``other`` is any other host. The app runs in public mode with both
opened by ``PLAYGROUND_ALLOWED_ENDPOINTS``, and with a server token in ``HF_TOKEN`` that no
visitor's request may ever carry.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import AppServer, start_app
from tests.server import fake_endpoint

pytestmark = pytest.mark.browser

SERVER_TOKEN = "hf_server_own_secret_do_not_lend"
TYPED_TOKEN = "hf_typed_by_visitor_b"
# What Gradio's stand-in sign-in puts in the session (a real Space: the visitor's token).
OAUTH_TOKEN = "mock-oauth-token-for-local-dev"
REPLY = "".join(fake_endpoint.REPLY)
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def hub() -> Iterator[fake_endpoint.FakeEndpoint]:
    endpoint = fake_endpoint.start()
    yield endpoint
    fake_endpoint.stop(endpoint)


@pytest.fixture(scope="module")
def other() -> Iterator[fake_endpoint.FakeEndpoint]:
    endpoint = fake_endpoint.start()
    yield endpoint
    fake_endpoint.stop(endpoint)


@pytest.fixture(scope="module")
def signin_app(hub, other, artifacts_dir) -> Iterator[AppServer]:
    env = {
        "HF_ENDPOINT": hub.root,
        "HF_TOKEN": SERVER_TOKEN,
        "PLAYGROUND_ALLOWED_ENDPOINTS": f"{hub.root},{other.root}",
    }
    with start_app(artifacts_dir / "app-server-signin.log", ("--public", "--oauth"), env) as app:
        yield app


def _visitor_requests(endpoint: fake_endpoint.FakeEndpoint) -> list:
    """What visitors' chats sent (not Gradio's own whoami at start-up)."""
    return [r for r in endpoint.posts() if "/chat/completions" in r.path]


def _authorization(request) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get("authorization")


def _chat(page: Page, url: str, token: str = "") -> None:
    """Point the chat tab at ``url`` (with ``token`` typed, if any) and send one message."""
    chat_tab = page.locator("#chat-tab")
    if not chat_tab.get_by_label("Hub model id or endpoint URL").is_visible():
        chat_tab.get_by_text("Connection", exact=True).click()
        chat_tab.get_by_label("Remote endpoint").check()
    chat_tab.get_by_label("Hub model id or endpoint URL").fill(url)
    chat_tab.get_by_label("Token", exact=True).fill(token)
    chat_tab.get_by_label("Token", exact=True).press("Tab")
    bots = page.get_by_role("log", name="chatbot conversation").get_by_test_id("bot")
    before = bots.count()
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill("Hello?")
    box.press("Enter")
    expect(bots).to_have_count(before + 1, timeout=TIMEOUT_MS)
    expect(bots.last).to_have_text(REPLY, timeout=TIMEOUT_MS)


def _new_page(chromium_browser, app: AppServer) -> Page:
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app.url)
    return page


def test_sign_in_token_goes_to_hugging_face_only_and_sessions_never_share_secrets(
    chromium_browser, signin_app, hub, other, artifacts_dir
) -> None:
    signed = _new_page(chromium_browser, signin_app)
    guest = _new_page(chromium_browser, signin_app)
    try:
        # Visitor A signs in (the button says who they are afterwards).
        signed.get_by_role("button", name="Sign in with Hugging Face").click()
        expect(signed.get_by_role("button", name=re.compile(r"Logout \(visitor\)"))).to_be_visible(
            timeout=TIMEOUT_MS
        )
        expect(signed.locator("#mode-line")).to_contain_text("Public mode")
        _chat(signed, hub.url("ok"))
        [to_hub] = _visitor_requests(hub)
        assert _authorization(to_hub) == f"Bearer {OAUTH_TOKEN}"
        _chat(signed, other.url("ok"))  # another host: the sign-in stays home
        [to_other] = _visitor_requests(other)
        assert _authorization(to_other) is None
        signed.screenshot(path=str(artifacts_dir / "signin-signed-in.png"), full_page=True)

        # Visitor B never signed in: nothing is lent to them, not A's token, not the server's.
        hub.reset()
        other.reset()
        expect(guest.get_by_role("button", name="Sign in with Hugging Face")).to_be_visible()
        _chat(guest, hub.url("ok"))
        [guest_to_hub] = _visitor_requests(hub)
        assert _authorization(guest_to_hub) is None
        _chat(guest, other.url("ok"), token=TYPED_TOKEN)  # a typed token goes where typed
        [guest_to_other] = _visitor_requests(other)
        assert _authorization(guest_to_other) == f"Bearer {TYPED_TOKEN}"

        # A Hub model id without a token: refused before any request, with what to do.
        hub.reset()
        guest.locator("#chat-tab").get_by_label("Hub model id or endpoint URL").fill("org/model")
        guest.locator("#chat-tab").get_by_label("Token", exact=True).fill("")
        box = guest.get_by_placeholder("Type a message and press Enter")
        box.fill("Hi")
        box.press("Enter")
        expect(guest.get_by_text(re.compile("does not lend its own"))).to_be_visible()
        guest.screenshot(path=str(artifacts_dir / "signin-guest-refused.png"), full_page=True)

        # Secrets: never in the other session's page, the page config or the server log.
        assert TYPED_TOKEN not in signed.content()
        assert OAUTH_TOKEN not in guest.content()
        with urllib.request.urlopen(f"{signin_app.url}config", timeout=10) as response:
            config = response.read().decode()
        log = signin_app.log_text()
        for secret in (TYPED_TOKEN, OAUTH_TOKEN, SERVER_TOKEN):
            assert secret not in config
            assert secret not in log
        for request in [*hub.requests, *other.requests]:
            if request.path != "/api/whoami-v2":  # Gradio's own start-up check, not a visitor
                assert SERVER_TOKEN not in str(request.headers)
    finally:
        signed.context.close()
        guest.context.close()
