from __future__ import annotations

import math

import pytest

from lf_ray.evaluate.metrics import (
    SIMILARITY_KEYS,
    bleu4,
    perplexity,
    rouge_scores,
    similarity_metrics,
    tokenize_words,
)

SENTENCE = "the quick brown fox jumps over the lazy dog"
_CAT = ("the cat sat on the mat", "the cat is on the mat")


def test_bleu4_identical_is_100_and_disjoint_is_0():
    assert bleu4(SENTENCE, SENTENCE) == pytest.approx(100.0)
    assert bleu4("abc", "xyz") == 0.0
    assert bleu4("", "xyz") == 0.0


def test_bleu4_one_zero_count_uses_method3_smoothing():
    # characters; p1=3/4 p2=2/3 p3=1/2, p4=0/1 -> 1/(2*1); no brevity penalty
    assert bleu4("abcd", "abce") == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25)


def test_bleu4_successive_zero_counts_halve_again():
    # p1=3/4 p2=1/3, p3=0/2 -> 1/(2*2), p4=0/1 -> 1/(4*1): the k-th zero count gets 1/(2^k * denominator)
    assert bleu4("abxd", "abcd") == pytest.approx(100 * (3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25)
    assert bleu4("abxd", "abcd") == pytest.approx(35.35533906)


def test_bleu4_brevity_penalty_for_a_short_prediction():
    # p1=p2=p3=1, p4 has no 4-gram: 0/max(1,0) -> 1/2; brevity exp(1 - 4/3)
    assert bleu4("abc", "abcd") == pytest.approx(100 * math.exp(1 - 4 / 3) * 0.5**0.25)


def test_bleu4_is_on_characters_like_lf_but_accepts_token_lists():
    assert bleu4("我爱北京", "我爱北京天安门") == bleu4(list("我爱北京"), list("我爱北京天安门"))
    words = SENTENCE.split()
    assert bleu4(words, words) == pytest.approx(100.0)
    assert bleu4(["a", "b", "c", "d"], ["a", "b", "c", "e"]) == pytest.approx(bleu4("abcd", "abce"))


def test_tokenize_words_splits_cjk_per_character():
    assert tokenize_words("I love 北京 2024!") == ["I", "love", "北", "京", "2024!"]
    assert tokenize_words("我爱北京") == ["我", "爱", "北", "京"]
    assert tokenize_words("こんにちは世界") == list("こんにちは世界")
    assert tokenize_words("  \n ") == []


def test_rouge_identical_disjoint_and_empty():
    assert rouge_scores(SENTENCE, SENTENCE) == {"rouge-1": 100.0, "rouge-2": 100.0, "rouge-l": 100.0}
    assert rouge_scores("red green", "blue yellow") == {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    assert rouge_scores("", SENTENCE) == {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    assert rouge_scores(SENTENCE, "   ") == {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}


def test_rouge_partial_overlap_hand_computed():
    scores = rouge_scores("the cat sat on the mat", "the cat is on the mat")
    # unigrams: the x2, cat, on, mat overlap = 5 of 6 each side; bigrams: "the cat", "on the", "the mat" = 3 of 5;
    # LCS "the cat on the mat" = 5 of 6
    assert scores["rouge-1"] == pytest.approx(100 * 5 / 6)
    assert scores["rouge-2"] == pytest.approx(60.0)
    assert scores["rouge-l"] == pytest.approx(100 * 5 / 6)


def test_rouge_counts_are_clipped_and_lcs_respects_order():
    # "the" appears 3 times in the prediction but once in the reference: only 1 counts
    scores = rouge_scores("the the the", "the cat")
    p, r = 1 / 3, 1 / 2
    assert scores["rouge-1"] == pytest.approx(100 * 2 * p * r / (p + r))
    # same bag of words, reversed order: ROUGE-1 is 100, ROUGE-L only the LCS of length 1
    reversed_scores = rouge_scores("c b a", "a b c")
    assert reversed_scores["rouge-1"] == pytest.approx(100.0)
    assert reversed_scores["rouge-2"] == 0.0
    assert reversed_scores["rouge-l"] == pytest.approx(100 / 3)


def test_rouge_chinese_per_character():
    scores = rouge_scores("我爱北京", "我爱上海")
    assert scores["rouge-1"] == pytest.approx(50.0)
    assert scores["rouge-2"] == pytest.approx(100 / 3)
    assert scores["rouge-l"] == pytest.approx(50.0)


def test_similarity_metrics_averages_with_lf_keys():
    result = similarity_metrics([SENTENCE, "red"], [SENTENCE, "box"])  # "red"/"box" share no character
    assert tuple(result) == SIMILARITY_KEYS == ("bleu-4", "rouge-1", "rouge-2", "rouge-l")
    assert result == pytest.approx({"bleu-4": 50.0, "rouge-1": 50.0, "rouge-2": 50.0, "rouge-l": 50.0})


def test_similarity_metrics_rounds_each_example_to_4_places_like_lf():
    result = similarity_metrics(["abcd", _CAT[0]], ["abce", _CAT[1]])
    # "abcd" vs "abce" is one unigram token each side, disjoint for ROUGE
    assert result["bleu-4"] == pytest.approx((round(bleu4("abcd", "abce"), 4) + round(bleu4(*_CAT), 4)) / 2)
    assert result["rouge-1"] == pytest.approx((0.0 + round(100 * 5 / 6, 4)) / 2)


def test_similarity_metrics_rejects_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        similarity_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one prediction"):
        similarity_metrics([], [])


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert perplexity(1e6) == math.inf
