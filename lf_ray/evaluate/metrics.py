"""Text-similarity metrics of LLaMA-Factory's sft `predict_with_generate` (BLEU-4, ROUGE-1/2/L) and perplexity.

Parity notes, against LF's `ComputeSimilarity`:

- BLEU-4 is scored like nltk's `sentence_bleu([list(label)], list(pred), smoothing_function=method3)`: a string
  is split into **characters**, as LF does, so the score means the same for English and Chinese. nltk is not
  a dependency; `bleu4` re-implements that exact computation (clipped n-gram precisions, NIST geometric
  smoothing for zero counts, brevity penalty, no unigram match -> 0).
- ROUGE is scored on word tokens: whitespace-separated runs, with every CJK character a token of its own.
  LF segments Chinese with jieba; per-character tokens need no dictionary and are the common jieba-free choice.
  Overlaps are clipped n-gram counts and LCS F1 (Lin, 2004). rouge_chinese counts each distinct n-gram once,
  so the two agree whenever no n-gram repeats within a text.
- Every per-example score is ×100 and rounded to 4 places before averaging, as in LF.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

SIMILARITY_KEYS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")
"""Keys of `similarity_metrics`, LF's names, so dashboards compare the two directly."""

_CJK = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f"
)
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def tokenize_words(text: str) -> list[str]:
    """Whitespace-separated words, except that each CJK character (Han, kana, hangul, fullwidth) is one token."""
    return _TOKEN_RE.findall(text)


def _ngram_counts(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu4(prediction: str | Sequence[str], reference: str | Sequence[str]) -> float:
    """Sentence BLEU-4 ×100 with nltk's smoothing method3; a string is split into characters as LF does.

    Pass lists of tokens instead of strings to score on other units (words, token ids).
    """
    hyp, ref = list(prediction), list(reference)
    if not hyp:
        return 0.0
    numerators, denominators = [], []
    for n in range(1, 5):
        hyp_counts, ref_counts = _ngram_counts(hyp, n), _ngram_counts(ref, n)
        numerators.append(sum(min(count, ref_counts[gram]) for gram, count in hyp_counts.items()))
        denominators.append(max(1, sum(hyp_counts.values())))
    if numerators[0] == 0:  # nltk returns 0 without smoothing when no unigram matches
        return 0.0
    precisions, zero_seen = [], 0
    for numerator, denominator in zip(numerators, denominators, strict=True):
        if numerator == 0:  # method3 (NIST geometric sequence): 1 / (2^k * denominator), k-th zero count
            zero_seen += 1
            precisions.append(1.0 / (2**zero_seen * denominator))
        else:
            precisions.append(numerator / denominator)
    brevity = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return 100.0 * brevity * math.exp(math.fsum(0.25 * math.log(p) for p in precisions))


def _f1(overlap: int, predicted: int, referenced: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / referenced
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 ×100 on `tokenize_words` tokens; an empty side scores 0, as in LF."""
    hyp, ref = tokenize_words(prediction), tokenize_words(reference)
    if not hyp or not ref:
        return {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    scores = {}
    for n in (1, 2):
        hyp_counts, ref_counts = _ngram_counts(hyp, n), _ngram_counts(ref, n)
        overlap = sum((hyp_counts & ref_counts).values())
        scores[f"rouge-{n}"] = 100.0 * _f1(overlap, sum(hyp_counts.values()), sum(ref_counts.values()))
    scores["rouge-l"] = 100.0 * _f1(_lcs_length(hyp, ref), len(hyp), len(ref))
    return scores


def similarity_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean of per-example BLEU-4 and ROUGE scores (each ×100, rounded to 4 places), keyed like LF."""
    if len(predictions) != len(references):
        raise ValueError(
            f"similarity_metrics got {len(predictions)} predictions but {len(references)} references; "
            "pass one reference per prediction."
        )
    if not predictions:
        raise ValueError("similarity_metrics needs at least one prediction; the evaluation set is empty.")
    totals = dict.fromkeys(SIMILARITY_KEYS, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        for key, score in example_scores(prediction, reference).items():
            totals[key] += score
    return {key: total / len(predictions) for key, total in totals.items()}


def example_scores(prediction: str, reference: str) -> dict[str, float]:
    """One example's BLEU-4 and ROUGE scores (×100, rounded to 4 places as LF rounds them before averaging)."""
    example = {"bleu-4": bleu4(prediction, reference), **rouge_scores(prediction, reference)}
    return {key: round(example[key], 4) for key in SIMILARITY_KEYS}


def perplexity(mean_loss: float) -> float:
    """exp(mean token cross-entropy), as transformers' run_clm reports it; inf when the loss overflows."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf
