"""Pipelines: a YAML (or Python) graph of steps, planned with fingerprints, run as Ray tasks, recorded.

spec.py      YAML / `Pipeline` builder -> validated graph (pure)
plan.py      each step's layered config, fingerprint, artifact folder, cache state (pure)
steps.py     what each step type calls (the same entry points as the CLI commands)
executor.py  the Ray tasks, step logs, manifests, MLflow lineage
store.py     run records (`run.json`) and `lf-ray runs`
"""
