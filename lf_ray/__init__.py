"""lf-ray: LLaMA-Factory-style fine-tuning as a workflow DAG on Ray."""

__version__ = "0.1.0"
