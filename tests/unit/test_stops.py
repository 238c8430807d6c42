"""Stop-sequence detection, chat hold-back, and incremental decoding."""

from __future__ import annotations

import pytest

from backends.local.engine.sequence import IncrementalDecoder
from backends.local.engine.stopping import StoppingCriteria, hits_stop
from backends.local.outputs import StopHoldback

# -- StopHoldback (chat: the stop text is never shown) -------------------------------------


def _feed_all(holdback: StopHoldback, deltas: list[str]) -> list[str]:
    return [holdback.feed(d) for d in deltas] + [holdback.finish()]


def test_without_stops_everything_passes_through():
    assert _feed_all(StopHoldback(()), ["Hel", "lo"]) == ["Hel", "lo", ""]


def test_partial_prefix_is_held_back_then_released_when_disproven():
    holdback = StopHoldback(("User:",))
    assert holdback.feed("Hi. Us") == "Hi. "  # "Us" could start "User:"
    assert holdback.feed("e") == ""  # "Use" still could
    assert holdback.feed("ful") == "Useful"  # no longer can
    assert holdback.finish() == ""


def test_text_is_cut_at_the_stop_and_nothing_after_is_released():
    holdback = StopHoldback(("User:",))
    assert [holdback.feed(d) for d in ["Sure.", "\nUs", "er: next"]] == ["Sure.", "\n", ""]
    assert holdback.finish() == ""


def test_stop_inside_one_delta():
    assert _feed_all(StopHoldback(("###",)), ["a ### b"]) == ["a ", ""]


def test_earliest_of_several_stops_wins():
    holdback = StopHoldback(("END", "\n\n"))
    assert holdback.feed("one\n\ntwo END") == "one"


def test_longest_possible_prefix_among_stops_is_kept():
    holdback = StopHoldback(("ab", "xyzab"))
    assert holdback.feed("..xyza") == ".."  # "xyza" may become "xyzab"
    assert holdback.feed("b") == ""  # and "ab" ends it: nothing of the stop shown


def test_held_back_text_is_released_at_the_end_of_the_stream():
    holdback = StopHoldback(("User:",))
    assert holdback.feed("The end. Use") == "The end. "
    assert holdback.finish() == "Use"


# -- hits_stop (text generation: the engine stops once a stop sequence is complete) -------


@pytest.mark.parametrize(
    ("text", "delta", "stops", "hit"),
    [
        ("Paris is", " nice", (" nice",), True),
        ("hel", "lo", ("llo",), True),  # completed across the delta boundary
        ("", "a\n\nb", ("\n\n",), True),  # inside the delta
        ("hel", "l", ("llo",), False),  # not complete yet
        ("hello world", " again", ("hello",), False),  # already in older text: not new
        ("abc", "", ("c",), False),  # nothing new
        ("x", "yz", ("nope", "xyz"), True),  # any of several
    ],
)
def test_hits_stop(text, delta, stops, hit):
    assert hits_stop(text, delta, stops) is hit


# -- IncrementalDecoder on the real tokenizer ----------------------------------------------

MULTIBYTE = "héllo 🌍 日本"


@pytest.mark.model
@pytest.mark.parametrize("context", ["", "Say it in many scripts:"])
def test_incremental_decoding_round_trips_multibyte_text(tokenizer, context):
    context_ids = tokenizer(context, add_special_tokens=False).input_ids if context else []
    ids = tokenizer(MULTIBYTE, add_special_tokens=False).input_ids
    decoder = IncrementalDecoder(tokenizer, context_ids)
    deltas = [decoder.step(token_id) for token_id in ids]
    text = "".join(deltas) + decoder.flush()
    assert text == tokenizer.decode(ids)
    assert text == MULTIBYTE
    assert not any("\ufffd" in delta for delta in deltas)
    # The emoji and the CJK characters span several byte-level tokens: some steps must
    # have held their bytes back, or this test would not exercise the hard case.
    assert "" in deltas


@pytest.mark.model
def test_flush_releases_an_incomplete_character_at_the_end(tokenizer):
    ids = tokenizer("🌍", add_special_tokens=False).input_ids
    assert len(ids) > 1
    decoder = IncrementalDecoder(tokenizer, [])
    held = [decoder.step(token_id) for token_id in ids[:-1]]
    assert held == [""] * len(held)
    assert decoder.flush() == tokenizer.decode(ids[:-1])
    assert decoder.flush() == ""


# -- StoppingCriteria: the finish reason of one token, rules in TGI's order ------------------


def test_stopping_criteria_reasons_in_order():
    rules = StoppingCriteria(eos_ids={2}, stop=("END",), budget=3)
    assert rules.finish_reason(7, 1, "abc", "d") is None
    assert rules.finish_reason(2, 1, "abc", "") == "eos_token"
    assert rules.finish_reason(7, 1, "the E", "ND") == "stop_sequence"
    assert rules.finish_reason(7, 3, "abc", "d") == "length"
    # EOS on the last allowed token is still an EOS; a stop on it is still a stop.
    assert rules.finish_reason(2, 3, "abc", "") == "eos_token"
    assert rules.finish_reason(7, 3, "E", "ND") == "stop_sequence"
    assert StoppingCriteria(eos_ids=(), stop=(), budget=5).finish_reason(1, 4, "", "x") is None
