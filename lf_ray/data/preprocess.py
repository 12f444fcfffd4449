"""The preprocess step, on Ray Data: read → convert → tokenize, pack and write in parallel → Parquet artifact.

Small datasets are read and converted in the driver (`loader.py`); from DISTRIBUTED_BYTES of files on, by Ray
tasks, the driver computing only the rows' order (`distributed.py`). Either way a split is cut into parts of
whole preprocessing batches (`preprocessing_batch_size`, LLaMA-Factory's unit of packing). A Ray Data actor
pool (each actor loads the tokenizer once) turns each part into artifact rows, packed batch by batch exactly
as LLaMA-Factory packs, and writes it as one Parquet file straight to the artifact's place (a shared path or
a URI); only each part's statistics come back to the driver, which sums them into the manifest. Part
boundaries and file names depend on the data only, so any number of actors writes the same artifact. The
artifact (`train/`, `eval/`, `manifest.json`) is committed atomically, and a later run with the same
fingerprint (config + data files + tokenizer + lf-ray version) reuses it.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
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
    fingerprint,
    hash_stored,
    hash_tree,
    is_complete,
    read_manifest,
    staged,
    write_manifest,
)
from lf_ray.constants import DATASET_EVAL_DIR, DATASET_TRAIN_DIR, lf_ray_home
from lf_ray.data.distributed import (
    DISTRIBUTED_BYTES,
    SPLITS,
    PlacedSplits,
    data_errors,
    gather_parts,
    load_placed_splits,
    rows_of_part,
    source_bytes,
)
from lf_ray.data.loader import load_canonical_splits
from lf_ray.data.packing import chunk_pretrain, pack_supervised, truncate_pretrain
from lf_ray.data.processors import COLUMNS, EncodeSettings, ProcessorKind, encode_row, processor_kind
from lf_ray.data.registry import check_ranking, dataset_location, get_dataset_attrs
from lf_ray.data.tokenizer_spec import TokenizerSpec, tokenizer_spec
from lf_ray.errors import DataError
from lf_ray.model.new_tokens import new_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lf_ray.config import DataArguments, LfRayConfig
    from lf_ray.data.templates import Template

ROWS_PER_FILE = 50_000  # the most rows in one Parquet file of the artifact
ROWS_PER_GROUP = 1_024  # Parquet row groups: a training worker reads its window of rows and little more
PARTS_PER_SPLIT = 8  # a split is cut into about this many parts (one Parquet file each) when it is big enough
FORMAT_VERSION = 2  # the artifact's row layout; a change invalidates cached artifacts of older lf-ray code
FINGERPRINTED_DATA_KEYS = (
    "template", "cutoff_len", "train_on_prompt", "mask_history", "mix_strategy", "interleave_probs",
    "max_samples", "val_size", "packing", "neat_packing", "tool_format", "default_system", "enable_thinking",
    "preserve_thinking", "preprocessing_batch_size",
)  # fmt: skip
MAX_DROP_EXAMPLES = 5
_IDS = pa.list_(pa.int32())


@dataclass
class PreprocessResult:
    path: str  # a local path or a URI
    manifest: dict[str, Any]
    reused: bool


@dataclass(frozen=True)
class Layout:
    """How one of LLaMA-Factory's preprocessing batches of tokenized rows becomes the artifact's rows.

    LLaMA-Factory tokenizes with `Dataset.map(batched=True, batch_size=preprocessing_batch_size)` and packs
    inside each batch (pt chunks each batch's text, sft knapsacks each batch's sequences), so packing here works
    batch by batch too: that is LF's output row for row, and it lets every batch be packed on any worker.
    """

    kind: ProcessorKind
    cutoff_len: int  # the tokens an encoded row may hold (see `encode_cutoff`)
    packing: bool
    neat_packing: bool
    batch_size: int
    pad_id: int | None
    bos_id: int | None  # set when the tokenizer adds a bos token: pt blocks start with it

    @property
    def columns(self) -> list[str]:
        if self.kind == "supervised" and self.packing:
            return ["input_ids", "attention_mask", "position_ids", "labels"]
        return list(COLUMNS[self.kind]) + (["kto_tags"] if self.kind == "feedback" else [])


def encode_cutoff(data: DataArguments, stage: str) -> int:
    """The tokens one encoded row may hold: `cutoff_len`, less one when packing is asked for.

    LLaMA-Factory 0.9.5 runs `cutoff_len -= 1` when `packing` (or `neat_packing`) is set, so a packed sft row of
    cutoff_len - 1 tokens pads to exactly cutoff_len. pt's packing is on by default and then keeps cutoff_len;
    lf-ray cannot tell pt's default from an explicit `packing: true` (LF would cut that one token shorter)."""
    return data.cutoff_len - 1 if data.packing and stage != "pt" else data.cutoff_len


def output_schema(kind: ProcessorKind) -> pa.Schema:
    fields = [pa.field(column, _IDS) for column in COLUMNS[kind]]
    if kind == "feedback":
        fields.append(pa.field("kto_tags", pa.bool_()))
    return pa.schema([*fields, ("_origin", pa.string()), ("_drop_reason", pa.string()), ("_truncated", pa.bool_())])


def encode_table(
    batch: pa.Table,
    template: Template,
    tokenizer: PreTrainedTokenizerBase,
    kind: ProcessorKind,
    settings: EncodeSettings,
) -> pa.Table:
    """The pure core of a batch: canonical rows in, one tokenized row per input row out."""
    schema = output_schema(kind)
    rows = []
    for row in batch.to_pylist():
        encoded = encode_row(kind, template, tokenizer, row, settings)
        encoded["_origin"] = row["_origin"]
        rows.append({name: encoded.get(name) for name in schema.names})
    return pa.Table.from_pylist(rows, schema=schema)


def finish_batch(table: pa.Table, layout: Layout) -> tuple[pa.Table, dict[str, Any]]:
    """One preprocessing batch's tokenized rows → the artifact's rows: drop the unusable ones (counting why),
    pack or chunk, and count. Columnar (pyarrow) where it can be; only packing needs Python lists."""
    dropped_mask = pc.is_valid(table.column("_drop_reason"))
    dropped = table.filter(dropped_mask)
    reasons = collections.Counter(dropped.column("_drop_reason").to_pylist())
    examples = [f"{row['_origin']}: {row['_drop_reason']}" for row in dropped.slice(0, MAX_DROP_EXAMPLES).to_pylist()]
    kept = table.filter(pc.invert(dropped_mask))
    truncated = pc.sum(kept.column("_truncated")).as_py() or 0
    columns = layout.columns
    tokens = sum(pc.sum(pc.list_value_length(kept.column(c))).as_py() or 0 for c in columns if "attention" in c)

    rows = None
    if layout.kind == "pretrain" and layout.packing:
        rows = chunk_pretrain(kept.select(["input_ids"]).to_pylist(), layout.cutoff_len, layout.bos_id)
        tokens = len(rows) * layout.cutoff_len
    elif layout.kind == "pretrain":
        rows = truncate_pretrain(kept.select(["input_ids", "attention_mask"]).to_pylist(), layout.cutoff_len)
        truncated = sum(1 for row in rows if row["_truncated"])
        tokens = sum(len(row["input_ids"]) for row in rows)
    elif layout.kind == "supervised" and layout.packing:
        lengths = pc.list_value_length(kept.column("input_ids"))
        tokens = pc.sum(pc.if_else(pc.less_equal(lengths, layout.cutoff_len), lengths, 0)).as_py() or 0
        sequences = kept.select(["input_ids", "labels"]).to_pylist()
        rows, too_long = pack_supervised(sequences, layout.cutoff_len, layout.pad_id, layout.neat_packing)
        if too_long:
            reasons[f"longer than cutoff_len {layout.cutoff_len}, cannot be packed"] += too_long
    schema = _schema(columns)
    out = kept.select(columns).cast(schema) if rows is None else pa.Table.from_pylist(rows, schema=schema)
    stats = {
        "rows_in": table.num_rows,
        "rows_out": out.num_rows,
        "tokens": tokens,  # real (non-padding) tokens
        "truncated": truncated,
        "dropped": sum(reasons.values()),
        "drop_reasons": dict(reasons),
        "drop_examples": examples,
    }
    return out, stats


def process_part(
    part: pa.Table, template: Template, tokenizer: PreTrainedTokenizerBase, settings: EncodeSettings, layout: Layout
) -> tuple[pa.Table, dict[str, Any]]:
    """A part of a split (whole preprocessing batches) → its artifact rows and statistics."""
    outs, stats = [], []
    for start in range(0, part.num_rows, layout.batch_size):
        encoded = encode_table(part.slice(start, layout.batch_size), template, tokenizer, layout.kind, settings)
        out, batch_stats = finish_batch(encoded, layout)
        outs.append(out)
        stats.append(batch_stats)
    return pa.concat_tables(outs) if outs else _schema(layout.columns).empty_table(), merge_stats(stats)


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of consecutive parts, summed; drop examples kept in order, the first few."""
    reasons: collections.Counter = collections.Counter()
    for part in parts:
        reasons.update(part["drop_reasons"])
    merged = {key: sum(part[key] for part in parts) for key in ("rows_in", "rows_out", "tokens", "truncated")}
    examples = [example for part in parts for example in part["drop_examples"]][:MAX_DROP_EXAMPLES]
    return {**merged, "dropped": sum(reasons.values()), "drop_reasons": dict(reasons), "drop_examples": examples}


def _schema(columns: list[str]) -> pa.Schema:
    return pa.schema([pa.field(c, pa.bool_() if c == "kto_tags" else _IDS) for c in columns])


class ProcessParts:
    """A Ray Data actor: loads the tokenizer and template once, then turns part after part of the splits into
    artifact rows, writes each part as one Parquet file under `destination` (a shared path or a URI, so any
    node can) and returns only the part's statistics: the rows never travel back to the driver.

    A part arrives as its rows tagged with `_split` (an index into SPLITS) and `_part`, or, from a big dataset
    (see `distributed.py`), as one row holding them."""

    def __init__(
        self, spec: TokenizerSpec, settings: EncodeSettings, layouts: dict[str, Layout], files: dict[str, list[str]]
    ) -> None:
        import ray

        self.tokenizer, self.template = spec.load()
        self.settings, self.layouts, self.files = settings, layouts, files
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, part: pa.Table, destination: str) -> pa.Table:
        split, index = SPLITS[part.column("_split")[0].as_py()], part.column("_part")[0].as_py()
        rows = rows_of_part(part) if "_rows" in part.column_names else part.drop(["_split", "_part"])
        name = self.files[split][index]
        uri = storage.join(destination, split, name)
        stats = write_part(rows, uri, self.tokenizer, self.template, self.settings, self.layouts[split])
        return pa.table({"split": [split], "file": [name], "stats": [json.dumps(stats)], "node": [self.node]})


def write_part(rows: pa.Table, uri: str, tokenizer, template, settings: EncodeSettings, layout: Layout) -> dict:
    """Process one part of a split and write it to `uri` (nothing when no row is left); its statistics."""
    out, stats = process_part(rows, template, tokenizer, settings, layout)
    if out.num_rows:
        write_parquet(out, uri)
    stats["files"] = [uri.rsplit("/", 1)[-1]] if out.num_rows else []
    return stats


def write_parquet(table: pa.Table, uri: str) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=ROWS_PER_GROUP)
    storage.write_bytes(uri, sink.getvalue().to_pybytes())


def part_rows(rows: int, batch_size: int) -> int:
    """Rows per part: whole preprocessing batches, about PARTS_PER_SPLIT parts, at most ROWS_PER_FILE rows
    (rounded to batches). It depends on the data only, so any number of actors writes the same files."""
    batches = -(-rows // batch_size)
    per_part = max(1, min(-(-batches // PARTS_PER_SPLIT), ROWS_PER_FILE // batch_size))
    return per_part * batch_size


def part_files(rows: int, size: int) -> list[str]:
    count = -(-rows // size)
    return [f"part-{index:05d}-of-{count:05d}.parquet" for index in range(count)]


Parts = dict[str, list[tuple[str, pa.Table]]]  # split -> its parts as (file name, rows)


def cut_parts(tables: dict[str, pa.Table], layouts: dict[str, Layout]) -> Parts:
    """Each split's parts as (file name, rows): whole preprocessing batches, boundaries set by the data only."""
    cut = {}
    for split, table in tables.items():
        size = part_rows(table.num_rows, layouts[split].batch_size)
        names = part_files(table.num_rows, size)
        cut[split] = [(name, table.slice(index * size, size)) for index, name in enumerate(names)]
    return cut


def one_part_each(parts: Parts) -> bool:
    return all(len(split_parts) <= 1 for split_parts in parts.values())


def process_here(
    parts: Parts, tokenizer, template, settings, layouts: dict[str, Layout], destination: str
) -> dict[str, dict[str, Any]]:
    """Parts processed one after another in this process, into the same files as the actor pool: for splits of
    one part each, where the pool would be one actor doing the same work after Ray and the actor had started
    (most of a small `lf-ray preprocess`'s wall time)."""
    stats = {}
    for split, split_parts in parts.items():
        done = [
            write_part(rows, storage.join(destination, split, name), tokenizer, template, settings, layouts[split])
            for name, rows in split_parts
        ]
        files = [name for part in done for name in part["files"]]
        stats[split] = {**merge_stats(done), "files": files, "actors": 0, "nodes": 1}
    return stats


def process_tables(
    parts: Parts, spec, settings, layouts: dict[str, Layout], destination: str, workers: int
) -> dict[str, dict[str, Any]]:
    """Parts of splits held by the driver, processed and written by the actor pool."""
    import ray.data

    files = {split: [name for name, _ in split_parts] for split, split_parts in parts.items()}
    blocks = [
        rows.append_column("_split", pa.array([SPLITS.index(split)] * len(rows), pa.int8())).append_column(
            "_part", pa.array([index] * len(rows))
        )
        for split, split_parts in parts.items()
        for index, (_, rows) in enumerate(split_parts)
    ]
    dataset = ray.data.from_arrow(blocks)  # one block per part: preprocessing batches never straddle two calls
    actors = max(1, min(workers, len(blocks)))
    processed = dataset.map_batches(
        ProcessParts, batch_size=None, **_pool_args(spec, settings, layouts, files, destination, actors)
    )
    return _collect(processed, files, actors)


def process_placed(
    placed: PlacedSplits, spec, settings, layouts: dict[str, Layout], destination: str, workers: int
) -> dict[str, dict[str, Any]]:
    """Splits still in the object store (big datasets): each part's rows grouped on one worker and processed."""
    files = {split: part_files(rows, placed.part_rows[split]) for split, rows in placed.sizes.items()}
    actors = max(1, min(workers, sum(len(names) for names in files.values())))
    with data_errors():
        parts = gather_parts(placed, kto=layouts[DATASET_TRAIN_DIR].kind == "feedback")
    processed = parts.map_batches(
        ProcessParts, batch_size=1, **_pool_args(spec, settings, layouts, files, destination, actors)
    )
    with data_errors():
        return _collect(processed, files, actors)


def _pool_args(spec, settings, layouts, files, destination: str, actors: int) -> dict[str, Any]:
    import ray.data

    return {
        "fn_constructor_args": (spec, settings, layouts, files),
        "fn_kwargs": {"destination": destination},
        "batch_format": "pyarrow",
        "compute": ray.data.ActorPoolStrategy(size=actors),
        "num_cpus": 1,
    }


def _collect(processed: Any, files: dict[str, list[str]], actors: int) -> dict[str, dict[str, Any]]:
    """Each split's statistics: its parts' summed in file order."""
    rows = processed.take_all()
    results = {(row["split"], row["file"]): json.loads(row["stats"]) for row in rows}
    nodes = len({row["node"] for row in rows})
    stats = {}
    for split, names in files.items():
        parts = [results[(split, name)] for name in names]
        files_written = [f for part in parts for f in part["files"]]
        stats[split] = {**merge_stats(parts), "files": files_written, "actors": actors, "nodes": nodes}
    return stats


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
        check_ranking(attr, cfg.finetuning.stage)
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
    data, tokens = cfg.data, new_tokens(cfg)
    return {
        "stage": cfg.finetuning.stage,
        "predict_with_generate": bool(cfg.training.get("predict_with_generate")),
        "seed": cfg.training.get("seed", 42),
        "model": cfg.model.model_name_or_path,
        "model_revision": cfg.model.model_revision,
        "split_special_tokens": cfg.model.split_special_tokens,
        "resize_vocab": cfg.model.resize_vocab,
        "new_tokens": {"plain": list(tokens.plain), "special": list(tokens.special)},
        "dataset": list(data.dataset or []),
        "eval_dataset": list(data.eval_dataset or []),
        "dataset_dir": data.dataset_dir,
        **{key: getattr(data, key) for key in FINGERPRINTED_DATA_KEYS},
    }


def plan_preprocess(cfg: LfRayConfig) -> PreprocessPlan:
    inputs = {
        "lf_ray": __version__,
        "format": FORMAT_VERSION,
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


def run_preprocess(cfg: LfRayConfig, *, distributed: bool | None = None) -> PreprocessResult:
    """Tokenize the config's datasets into a Parquet artifact, or reuse the one with the same fingerprint.

    `distributed`: read the source files with Ray tasks rather than in this process (default: when they hold
    DISTRIBUTED_BYTES or more, or with `streaming: true`); the artifact is the same either way."""
    plan = plan_preprocess(cfg)
    if plan.cached and not cfg.data.overwrite_cache:
        return PreprocessResult(plan.path, read_manifest(plan.path) or {}, reused=True)
    if not cfg.data.dataset and not cfg.data.eval_dataset:
        raise DataError("nothing to preprocess: set `dataset` (and/or `eval_dataset`), e.g. dataset: identity")

    stage, data, seed = cfg.finetuning.stage, cfg.data, cfg.training.get("seed", 42)
    timings: dict[str, float] = collections.defaultdict(float)
    with _timed(timings, "load_tokenizer_s"):  # fails here, before any Ray work, if the template does not fit
        spec = tokenizer_spec(cfg)
        tokenizer, template = spec.load()

    if distributed is None:
        size = source_bytes(data)
        distributed = size is not None and (data.streaming or size >= DISTRIBUTED_BYTES)
    cutoff = encode_cutoff(data, stage)
    settings = EncodeSettings(cutoff, data.train_on_prompt, data.mask_history)
    kinds = {
        DATASET_TRAIN_DIR: processor_kind(stage),
        DATASET_EVAL_DIR: processor_kind(stage, predict=bool(cfg.training.get("predict_with_generate"))),
    }
    layouts = {
        split: Layout(
            kind=kind,
            cutoff_len=cutoff,
            packing=bool(data.packing),
            neat_packing=data.neat_packing,
            batch_size=data.preprocessing_batch_size,
            pad_id=tokenizer.pad_token_id,
            bos_id=tokenizer.bos_token_id if getattr(tokenizer, "add_bos_token", False) else None,
        )
        for split, kind in kinds.items()
    }
    with _timed(timings, "read_convert_s"), data_errors():
        if distributed:
            _start_ray(cfg)
            splits = load_placed_splits(
                data, stage, seed, functools.partial(part_rows, batch_size=data.preprocessing_batch_size)
            )
        else:
            splits = load_canonical_splits(data, stage, seed)
    with staged(plan.path) as destination:
        with _timed(timings, "process_s"):
            if isinstance(splits, PlacedSplits):
                workers = data.preprocessing_num_workers or _available_cpus()
                split_stats = process_placed(splits, spec, settings, layouts, destination, workers)
            else:
                tables = {DATASET_TRAIN_DIR: splits.train, DATASET_EVAL_DIR: splits.eval}
                parts = cut_parts({split: table for split, table in tables.items() if table is not None}, layouts)
                if one_part_each(parts):
                    split_stats = process_here(parts, tokenizer, template, settings, layouts, destination)
                else:
                    _start_ray(cfg)
                    workers = data.preprocessing_num_workers or _available_cpus()
                    split_stats = process_tables(parts, spec, settings, layouts, destination, workers)
        for split, stats in split_stats.items():
            _refuse_empty(stats, split, stage)
            stats.update(columns=layouts[split].columns, processor=kinds[split])
        manifest = _manifest(plan, spec, splits, split_stats, timings, distributed)
        write_manifest(destination, manifest)
    return PreprocessResult(plan.path, manifest, reused=False)


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[key] += time.perf_counter() - started


def _refuse_empty(stats: dict[str, Any], split_name: str, stage: str) -> None:
    if stats["rows_out"] == 0:
        raise DataError(
            f"the {split_name} split is empty after preprocessing ({stats['rows_in']} rows in); "
            f"dropped because: {stats['drop_reasons'] or 'nothing left after packing'}; examples: "
            f"{stats['drop_examples']}. Check that the datasets suit stage `{stage}` and cutoff_len"
        )


def _start_ray(cfg: LfRayConfig) -> None:
    from lf_ray.cluster import ensure_ray

    ensure_ray(cfg.ray.ray_init_kwargs)


def _available_cpus() -> int:
    import ray

    return max(1, int(ray.available_resources().get("CPU", 1)))


def _manifest(plan, spec, splits, split_stats, timings, distributed: bool) -> dict[str, Any]:
    rows_in = sum(s["rows_in"] for s in split_stats.values())
    tokens = sum(s["tokens"] for s in split_stats.values())
    # the step's own work; loading the tokenizer (a one-off model build for builtin models) is reported apart
    seconds = timings["read_convert_s"] + timings["process_s"]
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
        nodes=max(s["nodes"] for s in split_stats.values()),  # that wrote parts
        read="distributed" if distributed else "driver",
    )
