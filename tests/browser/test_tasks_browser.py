"""The task tabs in a real browser: text tasks on the local bundled embedding model, an
image task through a remote (fake) HF Inference endpoint, and a bad upload that gets a
clear message while the tab keeps working."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from playwright.sync_api import Locator, Page, expect

from tests.server.fake_tasks_endpoint import FakeTasksEndpoint
from tests.server.task_payloads import PAYLOADS

pytestmark = pytest.mark.browser

# The first local call loads all-MiniLM-L6-v2 (a few seconds; more on a busy CI box).
RUN_TIMEOUT_MS = 120_000
EXAMPLES = Path(__file__).resolve().parents[2] / "presets" / "examples"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[FakeTasksEndpoint]:
    with FakeTasksEndpoint() as ep:
        yield ep


def open_task(page: Page, group: str, title: str, name: str) -> Locator:
    """Click the top-level tab, then the task's tab; returns the task's panel."""
    page.get_by_role("tab", name=group, exact=True).click()
    page.get_by_role("tab", name=title, exact=True).click()
    panel = page.locator(f"#task-{name}")
    expect(panel).to_be_visible()
    return panel


def table_rows(page: Page, elem_id: str) -> Locator:
    """A ``gr.Dataframe``'s data rows (the grid's rows that have cells, not the header)."""
    return page.locator(f"#{elem_id}").get_by_role("row").filter(has=page.get_by_role("gridcell"))


def test_sentence_similarity_on_the_local_model_puts_the_similar_sentence_first(page: Page):
    panel = open_task(page, "Text tasks", "Sentence similarity", "sentence_similarity")
    expect(panel.locator("#sentence_similarity-note")).to_contain_text("all-MiniLM-L6-v2")
    panel.get_by_label("Source sentence").fill("That is a happy person")
    panel.get_by_label("Sentences to compare").fill(
        "Today is a sunny day\nThat is a very happy person\nThat is a happy dog"
    )
    panel.locator("#sentence_similarity-run").click()
    rows = table_rows(page, "sentence_similarity-out-0")
    expect(rows.first).to_contain_text("That is a very happy person", timeout=RUN_TIMEOUT_MS)
    expect(rows).to_have_count(3)
    expect(rows.last).to_contain_text("Today is a sunny day")
    scores = [float(rows.nth(i).get_by_role("gridcell").last.inner_text()) for i in range(3)]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.8


def test_feature_extraction_on_the_local_model_shows_the_shape(page: Page):
    panel = open_task(page, "Text tasks", "Feature extraction", "feature_extraction")
    panel.get_by_label("Text", exact=True).fill("The cat sits on the mat.")
    panel.locator("#feature_extraction-run").click()
    summary = page.locator("#feature_extraction-out-0")
    expect(summary).to_contain_text(re.compile(r"shape \((1, )?384\)"), timeout=RUN_TIMEOUT_MS)
    expect(summary).to_contain_text("384 dimensions")
    plot = page.locator('#feature_extraction-out-1 [aria-label="Vega visualization"] svg')
    expect(plot).to_be_visible()  # the values, plotted


def _use_remote(page: Page, group_id: str, url: str) -> None:
    group = page.locator(f"#{group_id}")
    group.get_by_role("button", name=re.compile(r"^Connection")).click()
    group.get_by_label("Remote endpoint").check()
    group.get_by_label("Hub model id or endpoint URL").fill(url)


def test_object_detection_through_a_remote_endpoint_draws_the_boxes(
    page: Page, endpoint: FakeTasksEndpoint
):
    panel = open_task(page, "Image", "Object detection", "object_detection")
    # Local mode first: the tab says up front that no local model exists for the task.
    expect(panel.locator("#object_detection-note")).to_contain_text("No local model")
    expect(panel.locator("#object_detection-note")).to_contain_text("Remote endpoint")
    _use_remote(page, "image-tab", endpoint.url("ok", "object_detection"))
    expect(panel.locator("#object_detection-note")).to_contain_text("🌐 Remote:")
    endpoint.reset()
    panel.locator(".gallery-item").first.click()  # the bundled example image
    expect(panel.locator("#object_detection-image img")).to_be_visible()
    panel.locator("#object_detection-run").click()
    rows = table_rows(page, "object_detection-out-1")
    expect(rows).to_have_count(len(PAYLOADS["object_detection"]), timeout=RUN_TIMEOUT_MS)
    expect(rows.first).to_contain_text("cat")
    expect(page.locator("#object_detection-out-0 img")).to_be_visible()  # the drawn image
    # The example file went to the endpoint byte for byte (no re-encoding on the way).
    assert endpoint.posts()[-1].media == (EXAMPLES / "shapes.png").read_bytes()


def test_a_text_file_uploaded_as_an_image_gets_a_clear_message_and_the_tab_keeps_working(
    page: Page, endpoint: FakeTasksEndpoint, tmp_path: Path
):
    panel = open_task(page, "Image", "Image classification", "image_classification")
    _use_remote(page, "image-tab", endpoint.url("ok", "image_classification"))
    fake = tmp_path / "notes.png"
    fake.write_text("These are my notes, not a picture.")
    panel.locator("#image_classification-image input[type=file]").set_input_files(str(fake))
    panel.locator("#image_classification-run").click()
    expect(page.get_by_text("This file is not an image Pillow can read")).to_be_visible()
    expect(page.get_by_text("Upload a PNG, JPEG, WebP, GIF or BMP image")).to_be_visible()
    # Nothing reached the endpoint, and a real image still works afterwards.
    assert not [p for p in endpoint.posts() if p.task == "image_classification"]
    panel.locator(".gallery-item").first.click()
    panel.locator("#image_classification-run").click()
    top = PAYLOADS["image_classification"][0]["label"]
    expect(page.locator("#image_classification-out-0")).to_contain_text(top, timeout=RUN_TIMEOUT_MS)


def test_compare_runs_one_input_through_several_targets_side_by_side(
    page: Page, endpoint: FakeTasksEndpoint, artifacts_dir: Path
):
    """The local model, a remote endpoint (the fake HF endpoint: the Hub's API is not
    reachable from here) and a refused port: two results and one error, side by side."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there
    panel = open_task(page, "Text tasks", "Sentence similarity", "sentence_similarity")
    panel.get_by_label("Source sentence").fill("That is a happy person")
    panel.get_by_label("Sentences to compare").fill(
        "Today is a sunny day\nThat is a very happy person\nThat is a happy dog"
    )
    panel.locator("#sentence_similarity-compare").get_by_text("Compare targets").click()
    remote = endpoint.url("ok", "sentence_similarity")
    panel.get_by_label("Targets (2–4, one per line)").fill(f"local\n{remote}\n{refused}")
    panel.locator("#sentence_similarity-compare-run").click()
    heading = "#sentence_similarity-cmp{}-heading"
    expect(page.locator(heading.format(0))).to_contain_text(" ms", timeout=RUN_TIMEOUT_MS)
    expect(page.locator(heading.format(0))).to_contain_text("A · local")
    expect(page.locator(heading.format(1))).to_contain_text(f"B · {remote}")
    expect(page.locator(heading.format(2))).to_contain_text("🔴")  # alone in its column
    local_rows = table_rows(page, "sentence_similarity-cmp0-out-0")
    expect(local_rows.first).to_contain_text("That is a very happy person")
    expect(table_rows(page, "sentence_similarity-cmp1-out-0")).to_have_count(
        len(PAYLOADS["sentence_similarity"])
    )
    assert endpoint.posts()[-1].task == "sentence_similarity"
    page.locator("#sentence_similarity-compare-results").screenshot(
        path=str(artifacts_dir / "task-compare.png")
    )


def test_each_task_is_an_api_endpoint_named_after_its_inference_client_method(app_url: str):
    client = Client(app_url, verbose=False)
    try:
        table, raw = client.predict(
            "That is a happy person",
            "Today is a sunny day\nThat is a very happy person",
            api_name="/sentence_similarity",
        )
        assert len(raw) == 2 and raw[1] > raw[0]  # InferenceClient's list[float], in order
        assert table["data"][0][0] == "That is a very happy person"  # the table: best first
        # A client gets the reason as an error (the UI shows it as a toast).
        with pytest.raises(AppError, match="No local model for Object detection"):
            client.predict(handle_file(str(EXAMPLES / "shapes.png")), api_name="/object_detection")
    finally:
        client.close()
