"""Evaluation: generation metrics (BLEU-4, ROUGE, perplexity) and MMLU-style multiple-choice benchmarks."""
