"""The one-search look for NHS numbers in free text (the worker asks it of every event's identifiers): the
candidate pattern finds exactly what either of the two free-text patterns finds, and a batch's joined search
finds a candidate exactly when one of its texts holds one, so a batch it clears holds no NHS number."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bcfwatch.core.nhs_number import _FREE_TEXT_CANDIDATE, _FREE_TEXT_NHS, contains_nhs_number, may_contain_nhs_number

# Mostly digits, with runs of every separator between them (so ten digits spelt every way turn up often).
TEXT = st.lists(st.sampled_from([*"0123456789" * 3, " ", ".", "-", "\t", "\n", "  ", " . ", "   ", "----", "|", "a"]),
                max_size=30).map("".join)


@given(text=TEXT)
@settings(max_examples=2_000, deadline=None)
def test_the_candidate_pattern_finds_what_either_free_text_pattern_finds(text: str) -> None:
    assert bool(_FREE_TEXT_CANDIDATE.search(text)) == any(pattern.search(text) for pattern in _FREE_TEXT_NHS)


@given(texts=st.lists(TEXT, max_size=8))
@settings(max_examples=1_000, deadline=None)
def test_a_joined_search_finds_a_candidate_exactly_when_one_text_holds_one(texts: list[str]) -> None:
    assert may_contain_nhs_number(texts) == any(_FREE_TEXT_CANDIDATE.search(text) for text in texts)
    if not may_contain_nhs_number(texts):
        assert not any(contains_nhs_number(text) for text in texts)


def test_an_nhs_number_in_any_spelling_is_found_in_a_batch() -> None:
    for spelt in ("9434765919", "943 476 5919", "943-476-5919", "9 4 3 4 7 6 5 9 1 9", "ref943.476.5919"):
        assert may_contain_nhs_number(["g7-000264576", spelt, "adm-1"])
        assert contains_nhs_number(spelt)
    assert not may_contain_nhs_number(["g7-000264576", "adm-1", "943476591"])
