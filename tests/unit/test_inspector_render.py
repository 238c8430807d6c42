"""The token inspector's HTML: one chip per token, probability buckets, alternatives,
prefill, best_of columns, escaping, and a clear message when an endpoint sent no details."""

from __future__ import annotations

from html.parser import HTMLParser

from huggingface_hub import (
    TextGenerationOutput,
    TextGenerationOutputBestOfSequence,
    TextGenerationOutputDetails,
    TextGenerationOutputPrefillToken,
    TextGenerationOutputToken,
)

from components.inspector import probability_class, render_inspector


class _Attrs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def elements_with(html: str, attribute: str) -> list[dict]:
    parser = _Attrs()
    parser.feed(html)
    return [attrs for _, attrs in parser.tags if attribute in attrs]


def token(text: str, logprob: float, token_id: int = 1) -> TextGenerationOutputToken:
    return TextGenerationOutputToken(id=token_id, logprob=logprob, special=False, text=text)


def output(tokens, *, top=None, prefill=None, others=None) -> TextGenerationOutput:
    return TextGenerationOutput(
        generated_text="".join(t.text for t in tokens),
        details=TextGenerationOutputDetails(
            finish_reason="length",
            generated_tokens=len(tokens),
            prefill=prefill or [],
            tokens=tokens,
            seed=42,
            top_tokens=top,
            best_of_sequences=others,
        ),
    )


def test_one_chip_per_generated_token_with_its_bucket():
    tokens = [token(" sure", -0.01), token(" maybe", -1.0), token(" odd", -4.0)]
    html = render_inspector(output(tokens))
    chips = [a for a in elements_with(html, "data-step") if a.get("class", "").startswith("tok")]
    steps = {a["data-step"] for a in chips}
    assert steps == {"0", "1", "2"}  # steps count generated tokens from 0
    assert probability_class(-0.01) != probability_class(-4.0)
    for t in tokens:
        assert probability_class(t.logprob) in html
    assert "42" in html and "length" in html  # seed and finish reason in the header


def test_alternatives_are_listed_with_probabilities():
    tokens = [token(" Paris", -0.25, 7042)]
    top = [[token(" Paris", -0.25, 7042), token(" London", -2.0, 4528)]]
    html = render_inspector(output(tokens, top=top))
    assert "London" in html and "77.9%" in html  # exp(-0.25) = 0.7788


def test_model_text_is_escaped():
    evil = token("<script>alert(1)</script>", -0.1)
    html = render_inspector(output([evil]), prompt='say "hi" <b>')
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_prefill_and_best_of_sequences():
    prefill = [
        TextGenerationOutputPrefillToken(id=1, logprob=None, text="The"),
        TextGenerationOutputPrefillToken(id=2, logprob=-3.0, text=" sky"),
    ]
    other = TextGenerationOutputBestOfSequence(
        finish_reason="length", generated_text=" green", generated_tokens=1, prefill=[],
        tokens=[token(" green", -3.0)], seed=7,
    )  # fmt: skip
    html = render_inspector(output([token(" blue", -0.5)], prefill=prefill, others=[other]))
    assert len(elements_with(html, "data-prefill")) >= 2
    assert "best_of: 2 sequences" in html and "chosen" in html and "green" in html


def test_missing_details_say_so_instead_of_failing():
    html = render_inspector(TextGenerationOutput(generated_text="plain", details=None))
    assert "details" in html.lower() and "plain" in html
    assert render_inspector(None)
