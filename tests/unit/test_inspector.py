"""The token inspector's HTML: chips, colours, alternatives, escaping, best_of, missing data.

Outputs are built by hand with the hub's dataclasses; the HTML is parsed into a small tree
(html.parser) so assertions look at elements and their text, not at string fragments.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser

import pytest
from huggingface_hub import (
    TextGenerationOutput,
    TextGenerationOutputBestOfSequence,
    TextGenerationOutputDetails,
    TextGenerationOutputPrefillToken,
    TextGenerationOutputToken,
)

from components.inspector import (
    NO_DETAILS,
    format_probability,
    probability_class,
    render_inspector,
)

VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None = None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def own_text(self) -> str:
        """Text outside nested elements: a chip's visible label without its hover card."""
        return "".join(c for c in self.children if isinstance(c, str))

    def find_all(self, tag: str | None = None, **attrs: str | bool) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, str):
                continue
            if _matches(child, tag, attrs):
                found.append(child)
            found.extend(child.find_all(tag, **attrs))
        return found

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


def _matches(node: Node, tag: str | None, attrs: dict[str, str | bool]) -> bool:
    if tag is not None and node.tag != tag:
        return False
    for key, want in attrs.items():
        key = key.replace("_", "-")
        if key == "class-":
            if want not in node.classes():
                return False
        elif want is True:
            if key not in node.attrs:
                return False
        elif node.attrs.get(key) != want:
            return False
    return True


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        assert node is not self.root, f"stray </{tag}>"
        self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(markup: str) -> Node:
    builder = TreeBuilder()
    builder.feed(markup)
    builder.close()
    assert builder.current is builder.root, f"unclosed <{builder.current.tag}>"
    return builder.root


def tok(text: str, p: float, *, id: int = 0, special: bool = False) -> TextGenerationOutputToken:
    return TextGenerationOutputToken(id=id, text=text, logprob=math.log(p), special=special)


def make_output(tokens, *, top_tokens=None, prefill=None, best_of=None, seed=42, reason="length"):
    details = TextGenerationOutputDetails(
        finish_reason=reason,
        generated_tokens=len(tokens),
        prefill=prefill or [],
        tokens=tokens,
        top_tokens=top_tokens,
        best_of_sequences=best_of,
        seed=seed,
    )
    return TextGenerationOutput(generated_text="".join(t.text for t in tokens), details=details)


def generated_chips(root: Node) -> list[Node]:
    return root.find_all(data_step=True)


@pytest.mark.parametrize(
    ("p", "bucket"),
    [
        (1.0, "p-high"),
        (0.7, "p-high"),
        (0.69, "p-mid"),
        (0.3, "p-mid"),
        (0.29, "p-low"),
        (0.1, "p-low"),
        (0.099, "p-rare"),
        (1e-9, "p-rare"),
    ],
)
def test_probability_class_buckets(p, bucket):
    assert probability_class(math.log(p)) == bucket


def test_probability_class_of_missing_logprob_is_none():
    assert probability_class(None) == "p-none"
    assert probability_class(float("-inf")) == "p-rare"


@pytest.mark.parametrize(
    ("logprob", "shown"),
    [(0.0, "100.0%"), (math.log(0.5), "50.0%"), (math.log(0.0004), "<0.1%"), (None, "—")],
)
def test_format_probability(logprob, shown):
    assert format_probability(logprob) == shown


def test_one_chip_per_token_coloured_by_bucket():
    probs = [0.9, 0.5, 0.2, 0.05, 0.75]
    output = make_output([tok(f"t{i}", p, id=i) for i, p in enumerate(probs)])
    chips = generated_chips(parse(render_inspector(output)))
    assert [c.attrs["data-step"] for c in chips] == ["0", "1", "2", "3", "4"]
    buckets = [next(b for b in c.classes() if b.startswith("p-")) for c in chips]
    assert buckets == ["p-high", "p-mid", "p-low", "p-rare", "p-high"]
    assert [c.own_text() for c in chips] == ["t0", "t1", "t2", "t3", "t4"]


def test_legend_names_every_bucket():
    root = parse(render_inspector(make_output([tok("a", 0.9)])))
    legend = {n.attrs["data-legend"]: n.text() for n in root.find_all(data_legend=True)}
    assert legend == {
        "p-high": "≥ 70%",
        "p-mid": "30–70%",
        "p-low": "10–30%",
        "p-rare": "< 10%",
        "special": "special",
    }


def test_header_shows_finish_reason_count_seed_and_perplexity():
    output = make_output([tok("a", 0.5), tok("b", 0.5)], seed=1234, reason="eos_token")
    head = parse(render_inspector(output)).find_all(class_="tok-head")[0].text()
    assert "eos_token" in head
    assert "Generated tokens: 2" in head
    assert "Seed: 1234" in head
    assert f"Mean logprob: {math.log(0.5):.3f}" in head
    assert "perplexity: 2.00" in head


def test_hover_card_lists_top_alternatives_with_chosen_marked():
    tokens = [tok(" Paris", 0.6, id=7), tok(".", 0.9, id=13)]
    top = [
        [tok(" Paris", 0.6, id=7), tok(" Lyon", 0.25, id=8), tok(" Nice", 0.004, id=9)],
        [tok("!", 0.05, id=14), tok(".", 0.9, id=13)],
    ]
    chips = generated_chips(parse(render_inspector(make_output(tokens, top_tokens=top))))
    for chip, alternatives, chosen_id in zip(chips, top, ["7", "13"], strict=True):
        rows = chip.find_all(data_alt_id=True)
        assert [r.attrs["data-alt-id"] for r in rows] == [str(a.id) for a in alternatives]
        assert [r.find_all("span")[-1].text() for r in rows] == [
            format_probability(a.logprob) for a in alternatives
        ]
        assert [r.attrs["data-alt-id"] for r in rows if "chosen" in r.classes()] == [chosen_id]
    first_rows = [r.text() for r in chips[0].find_all(data_alt_id=True)]
    assert first_rows == ["▶ ␣Paris60.0%", "␣Lyon25.0%", "␣Nice0.4%"]
    card = chips[0].find_all(class_="tok-tip")[0].text()
    assert "id 7" in card and "p 60.0%" in card and f"logprob {math.log(0.6):.3f}" in card


def test_chosen_token_outside_the_top_n_is_said_so():
    tokens = [tok("x", 0.01, id=5)]
    top = [[tok("a", 0.5, id=1), tok("b", 0.3, id=2)]]
    chip = generated_chips(parse(render_inspector(make_output(tokens, top_tokens=top))))[0]
    assert "chosen token not in the top 2" in chip.text()
    assert not [r for r in chip.find_all(data_alt_id=True) if "chosen" in r.classes()]


def test_model_and_user_text_is_escaped():
    evil = "<script>alert(1)</script>"
    prompt = "He said \"hi\" & 'bye' <b>bold</b>"
    markup = render_inspector(
        make_output([tok(evil, 0.5), tok('"><img src=x>', 0.5)]), prompt=prompt
    )
    root = parse(markup)
    assert evil not in markup
    assert prompt not in markup
    assert not root.find_all("script") and not root.find_all("img")
    assert [c.own_text() for c in generated_chips(root)] == [
        "<script>alert(1)</script>",
        '"><img␣src=x>',
    ]
    assert root.find_all(data_prompt=True)[0].text() == prompt
    assert "bold" not in [n.text() for n in root.find_all("b")]


def test_prefill_tokens_greyed_with_logprobs_first_is_dash():
    prefill = [
        TextGenerationOutputPrefillToken(id=1, text="Hello", logprob=None),
        TextGenerationOutputPrefillToken(id=2, text=" there", logprob=math.log(0.25)),
    ]
    root = parse(render_inspector(make_output([tok("!", 0.9)], prefill=prefill), prompt="ignored"))
    chips = root.find_all(data_prefill=True)
    assert [c.own_text() for c in chips] == ["Hello", "␣there"]
    assert all("tok-prefill" in c.classes() for c in chips)
    first, second = (c.find_all(class_="tok-tip")[0].text() for c in chips)
    assert "p — · logprob —" in first
    assert f"p 25.0% · logprob {math.log(0.25):.3f}" in second
    assert not root.find_all(data_prompt=True), "prefill replaces the plain prompt"


def test_whitespace_is_visible_and_newlines_break_the_line():
    tokens = [tok(" ", 0.9), tok("\n", 0.9), tok("\tx", 0.9), tok("", 0.9)]
    root = parse(render_inspector(make_output(tokens)))
    chips = generated_chips(root)
    assert [c.own_text() for c in chips] == ["␣", "↵", "⇥x", "∅"]
    flow = root.find_all(data_flow="generated")[0]
    elements = [c for c in flow.children if not isinstance(c, str)]
    after_newline = elements[elements.index(chips[1]) + 1]
    assert after_newline.tag == "br"
    assert len(flow.find_all("br")) == 1
    assert '"\\n"' in chips[1].find_all(class_="tok-tip-text")[0].text()


def test_special_tokens_are_styled_apart():
    tokens = [tok("Hi", 0.9), tok("</s>", 0.8, special=True)]
    chips = generated_chips(parse(render_inspector(make_output(tokens, reason="eos_token"))))
    assert ["tok-special" in c.classes() for c in chips] == [False, True]
    assert chips[1].own_text() == "</s>"
    assert "special" in chips[1].find_all(class_="tok-tip")[0].text()


def test_step_table_has_one_row_per_token():
    tokens = [tok("a", 0.9, id=10), tok("b", 0.2, id=11)]
    top = [[tok("a", 0.9, id=10), tok("z", 0.05, id=12)], []]
    root = parse(render_inspector(make_output(tokens, top_tokens=top)))
    table = root.find_all("details")[-1]
    rows = [[td.text() for td in tr.find_all("td")] for tr in table.find_all("tr", data_row=True)]
    assert rows == [
        ["0", "a", "10", "90.0%", f"{math.log(0.9):.3f}", "a 90.0% z 5.0%"],
        ["1", "b", "11", "20.0%", f"{math.log(0.2):.3f}", "—"],
    ]


def test_best_of_sequences_side_by_side_with_totals_and_chosen_marked():
    main = [tok("A", 0.8), tok("B", 0.5)]
    other = TextGenerationOutputBestOfSequence(
        finish_reason="eos_token",
        generated_text="C",
        generated_tokens=1,
        prefill=[],
        tokens=[tok("C", 0.1)],
    )
    root = parse(render_inspector(make_output(main, best_of=[other])))
    columns = root.find_all(class_="tok-compare")[0].find_all(data_seq=True)
    assert [c.attrs["data-chosen"] for c in columns] == ["true", "false"]
    assert [c.attrs["data-total"] for c in columns] == [
        f"{math.log(0.8) + math.log(0.5):.3f}",
        f"{math.log(0.1):.3f}",
    ]
    heads = [c.find_all(class_="tok-seq-head")[0].text() for c in columns]
    assert heads[0].startswith("chosen") and "length" in heads[0]
    assert "chosen" not in heads[1] and "eos_token" in heads[1]
    assert [len(c.find_all(data_seq_step=True)) for c in columns] == [2, 1]
    assert len(generated_chips(root)) == 2, "compare columns do not add main-flow chips"


def test_no_best_of_means_no_compare_view():
    root = parse(render_inspector(make_output([tok("A", 0.8)])))
    assert not root.find_all(class_="tok-compare")


@pytest.mark.parametrize(
    "output",
    [
        TextGenerationOutput(generated_text="plain <text>", details=None),
        {"generated_text": "plain <text>"},
        None,
    ],
)
def test_missing_details_gives_a_message_not_an_exception(output):
    markup = render_inspector(output)
    root = parse(markup)
    message = root.find_all(data_empty="details")[0].text()
    assert NO_DETAILS.lower() == "no details returned by this endpoint"
    assert message.startswith(NO_DETAILS)
    assert not generated_chips(root)
    assert "<text>" not in markup


def test_details_without_optional_fields_still_render():
    details = TextGenerationOutputDetails(
        finish_reason=None, generated_tokens=None, prefill=None, tokens=[tok("a", 0.5)]
    )
    root = parse(render_inspector(TextGenerationOutput(generated_text="a", details=details)))
    assert len(generated_chips(root)) == 1
    assert "Generated tokens: 1" in root.find_all(class_="tok-head")[0].text()
