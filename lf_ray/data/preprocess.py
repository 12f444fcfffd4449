"""The preprocess step, on Ray Data: read → convert → tokenize in parallel → pack → Parquet artifact.

Tokenization runs in a `map_batches` actor pool (each actor loads the tokenizer once) with Ray Data's
order preservation on, so output rows keep the input's order whatever the parallelism; packing then runs
once over the whole split. The artifact (`train/`, `eval/`, `manifest.json`) is written atomically, and a
later run with the same fingerprint (config + data files + tokenizer + lf-ray version) reuses it.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lf_ray import __version__, storage
from lf_ray.artifacts import (
    build_manifest,
    committed,
    fingerprint,
    hash_stored,
    hash_tree,
    is_complete,
    read_manifest,
    write_json,
)
from lf_ray.constants import DATASET_EVAL_DIR, DATASET_TRAIN_DIR, MANIFEST_NAME, lf_ray_home
from lf_ray.data.loader import load_canonical_splits
from lf_ray.data.packing import chunk_pretrain, pack_supervised, truncate_pretrain
from lf_ray.data.processors import COLUMNS, EncodeSettings, ProcessorKind, encode_row, processor_kind
from lf_ray.data.registry import dataset_location, get_dataset_attrs
from lf_ray.data.tokenizer_spec import TokenizerSpec, tokenizer_spec
from lf_ray.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lf_ray.config import DataArguments, LfRayConfig
    from lf_ray.data.templates import Template

ROWS_PER_FILE = 50_000
FINGERPRINTED_DATA_KEYS = (
    "template", "cutoff_len", "train_on_prompt", "mask_history", "mix_strategy", "interleave_probs",
    "max_samples", "val_size", "packing", "neat_packing", "tool_format", "default_system", "enable_thinking",
)  # fmt: skip
MAX_DROP_EXAMPLES = 5
_IDS = pa.list_(pa.int32())


@dataclass
class PreprocessResult:
    path: str  # a local path or a URI
    manifest: dict[str, Any]
    reused: bool


def output_schema(kind: ProcessorKind) -> pa.Schema:
    fields = [pa.field(column, _IDS) for column in COLUMNS[kind]]
    if kind == "feedback":
        fields.append(pa.field("kto_tags", pa.bool_()))
    return pa.schema([*fields, ("_origin", pa.string()), ("_drop_reason", pa.string()), ("_truncated", pa.bool_())])


class TokenizeBatch:
    """A Ray Data actor: loads the tokenizer and template once, then encodes batch after batch."""

    def __init__(self, spec: TokenizerSpec, kind: ProcessorKind, settings: EncodeSettings) -> None:
        self.tokenizer, self.template = spec.load()
        self.kind, self.settings = kind, settings
        self.schema = output_schema(kind)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return encode_table(batch, self.template, self.tokenizer, self.kind, self.settings, self.schema)


def encode_table(
    batch: pa.Table,
    template: Template,
    tokenizer: PreTrainedTokenizerBase,
    kind: ProcessorKind,
    settings: EncodeSettings,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """The pure core of a batch: canonical rows in, one tokenized row per input row out."""
    schema = schema or output_schema(kind)
    rows = []
    for row in batch.to_pylist():
        encoded = encode_row(kind, template, tokenizer, row, settings)
        encoded["_origin"] = row["_origin"]
        rows.append({name: encoded.get(name) for name in schema.names})
    return pa.Table.from_pylist(rows, schema=schema)


def tokenize_with_ray(
    table: pa.Table, spec: TokenizerSpec, kind: ProcessorKind, settings: EncodeSettings, actors: int, batch_size: int
) -> pa.Table:
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    blocks = [table.slice(start, batch_size) for start in range(0, table.num_rows, batch_size)]
    dataset = ray.data.from_arrow(blocks).map_batches(
        TokenizeBatch,
        fn_constructor_kwargs={"spec": spec, "kind": kind, "settings": settings},
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
    )
    parts = ray.get(dataset.to_arrow_refs())
    return pa.concat_tables(parts) if parts else output_schema(kind).empty_table()


# --- after tokenization: drops, packing, statistics -------------------------------------------------------


def finish_split(
    table: pa.Table, kind: ProcessorKind, data: DataArguments, tokenizer_ids: dict[str, Any]
) -> tuple[pa.Table, dict[str, Any]]:
    """Remove dropped rows (counting reasons), pack or chunk, and compute the split's statistics.

    Columnar (pyarrow) where it can be; only packing needs the rows as Python lists.
    """
    dropped_mask = pc.is_valid(table.column("_drop_reason"))
    dropped = table.filter(dropped_mask)
    reasons = collections.Counter(dropped.column("_drop_reason").to_pylist())
    examples = [f"{row['_origin']}: {row['_drop_reason']}" for row in dropped.slice(0, MAX_DROP_EXAMPLES).to_pylist()]
    kept = table.filter(pc.invert(dropped_mask))
    truncated = pc.sum(kept.column("_truncated")).as_py() or 0
    columns = list(COLUMNS[kind]) + (["kto_tags"] if kind == "feedback" else [])
    tokens = sum(pc.sum(pc.list_value_length(kept.column(c))).as_py() or 0 for c in columns if "attention" in c)

    if kind == "pretrain" and data.packing:
        bos = tokenizer_ids["bos"] if tokenizer_ids["add_bos"] else None
        rows = chunk_pretrain(kept.select(["input_ids"]).to_pylist(), data.cutoff_len, bos)
        tokens = len(rows) * data.cutoff_len
    elif kind == "pretrain":
        rows = truncate_pretrain(kept.select(["input_ids", "attention_mask"]).to_pylist(), data.cutoff_len)
        truncated = sum(1 for row in rows if row["_truncated"])
        tokens = sum(len(row["input_ids"]) for row in rows)
    elif kind == "supervised" and data.packing:
        lengths = pc.list_value_length(kept.column("input_ids"))
        tokens = pc.sum(pc.if_else(pc.less_equal(lengths, data.cutoff_len), lengths, 0)).as_py() or 0
        pad_id = tokenizer_ids["pad"]
        rows, too_long = pack_supervised(kept.select(columns).to_pylist(), data.cutoff_len, pad_id, data.neat_packing)
        if too_long:
            reasons[f"longer than cutoff_len {data.cutoff_len}, cannot be packed"] += too_long
        columns = ["input_ids", "attention_mask", "position_ids", "labels"]
    else:
        rows = None
    if rows is None:
        out = kept.select(columns).cast(_schema(columns))
    else:
        out = pa.Table.from_pylist([{c: row[c] for c in columns} for row in rows], schema=_schema(columns))
    stats = {
        "rows_in": table.num_rows,
        "rows_out": out.num_rows,
        "tokens": tokens,  # real (non-padding) tokens
        "truncated": truncated,
        "dropped": sum(reasons.values()),
        "drop_reasons": dict(reasons),
        "drop_examples": examples,
        "columns": columns,
    }
    return out, stats


def _schema(columns: list[str]) -> pa.Schema:
    return pa.schema([pa.field(c, pa.bool_() if c == "kto_tags" else _IDS) for c in columns])


def write_split(table: pa.Table, directory: Path) -> list[str]:
    directory.mkdir(parents=True)
    files = []
    count = max(1, -(-table.num_rows // ROWS_PER_FILE))
    for index in range(count):
        name = f"part-{index:05d}-of-{count:05d}.parquet"
        pq.write_table(table.slice(index * ROWS_PER_FILE, ROWS_PER_FILE), directory / name)
        files.append(name)
    return files


# --- the step ------------------------------------------------------------------------------------------------


@dataclass
class PreprocessPlan:
    """What the step would do: printed by `--dry-run`, and the cache check of a real run."""

    path: str  # a local path or a URI
    fingerprint: str
    cached: bool
    inputs: dict[str, Any]


def _tokenizer_identity(model_name_or_path: str) -> str:
    """Builtin models are deterministic per lf-ray version; local ones are hashed; URIs are identified by their
    objects' listing; hub ids are their names."""
    from lf_ray.constants import BUILTIN_PREFIX

    if model_name_or_path.startswith(BUILTIN_PREFIX):
        return f"{model_name_or_path}@{__version__}"
    if storage.is_uri(model_name_or_path):
        return hash_stored(model_name_or_path)
    path = Path(model_name_or_path).expanduser()
    if path.is_dir():
        return _local_identity(path, (".json", ".model", ".txt", ".tiktoken", "merges.txt"))
    return model_name_or_path


def _local_identity(path: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """The contents' hash, computed once per process while the files' sizes and times are unchanged."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _hash_with_stats(path, suffixes, stats)


@functools.lru_cache(maxsize=256)
def _hash_with_stats(path: Path, suffixes: tuple[str, ...] | None, stats: tuple) -> str:
    del stats  # part of the cache key only
    return hash_tree(path, suffixes)


def _data_identity(cfg: LfRayConfig) -> dict[str, Any]:
    data = cfg.data
    identity = {}
    for name in [*(data.dataset or []), *(data.eval_dataset or [])]:
        (attr,) = get_dataset_attrs([name], data.dataset_dir)
        content: str = attr.dataset_name
        if attr.load_from == "file":
            location = dataset_location(attr, data.dataset_dir)
            if storage.is_uri(location):
                content = hash_stored(location)
            elif Path(location).exists():
                content = _local_identity(Path(location))
        identity[name] = {"attr": vars(attr), "content": content}
    return identity


def preprocess_settings(cfg: LfRayConfig) -> dict[str, Any]:
    """Everything besides the files' contents that decides the tokenized rows (names the keys on a mismatch)."""
    data = cfg.data
    return {
        "stage": cfg.finetuning.stage,
        "predict_with_generate": bool(cfg.training.get("predict_with_generate")),
        "seed": cfg.training.get("seed", 42),
        "model": cfg.model.model_name_or_path,
        "resize_vocab": cfg.model.resize_vocab,
        "dataset": list(data.dataset or []),
        "eval_dataset": list(data.eval_dataset or []),
        "dataset_dir": data.dataset_dir,
        **{key: getattr(data, key) for key in FINGERPRINTED_DATA_KEYS},
    }


def plan_preprocess(cfg: LfRayConfig) -> PreprocessPlan:
    inputs = {
        "lf_ray": __version__,
        **preprocess_settings(cfg),
        "tokenizer": _tokenizer_identity(cfg.model.model_name_or_path),
        "datasets": _data_identity(cfg),
    }
    digest = fingerprint(inputs)
    path = default_tokenized_path(cfg, digest)
    return PreprocessPlan(path=path, fingerprint=digest, cached=is_complete(read_manifest(path), digest), inputs=inputs)


def default_tokenized_path(cfg: LfRayConfig, digest: str) -> str:
    if cfg.data.tokenized_path:
        return storage.resolve(cfg.data.tokenized_path)
    if cfg.training.get("output_dir"):
        return storage.join(storage.resolve(cfg.training["output_dir"]), "tokenized")
    return str(lf_ray_home() / "datasets" / f"{cfg.finetuning.stage}-{digest[:16]}")


def run_preprocess(cfg: LfRayConfig, workers: int | None = None) -> PreprocessResult:
    """Tokenize the config's datasets into a Parquet artifact, or reuse the one with the same fingerprint."""
    plan = plan_preprocess(cfg)
    if plan.cached and not cfg.data.overwrite_cache:
        return PreprocessResult(plan.path, read_manifest(plan.path) or {}, reused=True)
    if not cfg.data.dataset and not cfg.data.eval_dataset:
        raise DataError("nothing to preprocess: set `dataset` (and/or `eval_dataset`), e.g. dataset: identity")

    stage, data = cfg.finetuning.stage, cfg.data
    timings: dict[str, float] = collections.defaultdict(float)
    with _timed(timings, "read_convert_s"):
        splits = load_canonical_splits(data, stage, cfg.training.get("seed", 42))
    with _timed(timings, "load_tokenizer_s"):  # fails here, before any Ray work, if the template does not fit
        spec = tokenizer_spec(cfg)
        tokenizer, _ = spec.load()
    ids = {
        "pad": tokenizer.pad_token_id,
        "bos": tokenizer.bos_token_id,
        "add_bos": getattr(tokenizer, "add_bos_token", False),
    }

    from lf_ray.cluster import ensure_ray

    ensure_ray(cfg.ray.ray_init_kwargs)
    workers = workers or data.preprocessing_num_workers or _available_cpus()
    settings = EncodeSettings(data.cutoff_len, data.train_on_prompt, data.mask_history)
    predict = bool(cfg.training.get("predict_with_generate"))
    jobs = [
        (DATASET_TRAIN_DIR, splits.train, processor_kind(stage)),
        (DATASET_EVAL_DIR, splits.eval, processor_kind(stage, predict=predict)),
    ]
    split_stats = {}
    with committed(plan.path) as tmp:
        for split_name, table, kind in jobs:
            if table is None:
                continue
            actors = pool_size(table.num_rows, workers, data.preprocessing_batch_size)
            with _timed(timings, "tokenize_s"):
                tokenized = tokenize_with_ray(table, spec, kind, settings, actors, data.preprocessing_batch_size)
            with _timed(timings, "pack_write_s"):
                out, stats = finish_split(tokenized, kind, data, ids)
                _refuse_empty(out, stats, split_name, stage)
                stats["files"] = write_split(out, tmp / split_name)
            stats.update(processor=kind, actors=actors)
            split_stats[split_name] = stats
        manifest = _manifest(plan, spec, splits, split_stats, timings)
        write_json(tmp / MANIFEST_NAME, manifest)
    return PreprocessResult(plan.path, manifest, reused=False)


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[key] += time.perf_counter() - started


def pool_size(rows: int, workers: int, batch_size: int) -> int:
    """Tokenizer actors: as many as asked for, but never more than there are batches to give them."""
    return max(1, min(workers, -(-rows // batch_size)))


def _refuse_empty(out: pa.Table, stats: dict[str, Any], split_name: str, stage: str) -> None:
    if out.num_rows == 0:
        raise DataError(
            f"the {split_name} split is empty after preprocessing ({stats['rows_in']} rows in); "
            f"dropped because: {stats['drop_reasons'] or 'nothing left after packing'}; examples: "
            f"{stats['drop_examples']}. Check that the datasets suit stage `{stage}` and cutoff_len"
        )


def _available_cpus() -> int:
    import ray

    return max(1, int(ray.available_resources().get("CPU", 1)))


def _manifest(plan, spec, splits, split_stats, timings) -> dict[str, Any]:
    rows_in = sum(s["rows_in"] for s in split_stats.values())
    tokens = sum(s["tokens"] for s in split_stats.values())
    # the step's own work; loading the tokenizer (a one-off model build for builtin models) is reported apart
    seconds = timings["read_convert_s"] + timings["tokenize_s"] + timings["pack_write_s"]
    metrics = {
        "rows_in": rows_in,
        "rows_out": sum(s["rows_out"] for s in split_stats.values()),
        "tokens": tokens,  # real (non-padding) tokens
        "truncated": sum(s["truncated"] for s in split_stats.values()),
        "dropped": sum(s["dropped"] for s in split_stats.values()),
    }
    return build_manifest(
        "tokenized_dataset",
        fingerprint=plan.fingerprint,
        inputs=plan.inputs,
        outputs={name: storage.join(plan.path, name) for name in split_stats},
        metrics=metrics,
        timings={
            **{key: round(value, 3) for key, value in timings.items()},
            "processing_s": round(seconds, 3),
            "rows_per_s": round(rows_in / seconds, 1) if seconds else None,
            "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        },
        template=spec.template or "derived from the tokenizer's chat_template",
        model=spec.model_path,
        sources=[vars(source) for source in splits.sources],
        splits=split_stats,
        actors=max(s["actors"] for s in split_stats.values()),
    )
