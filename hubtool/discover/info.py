"""``hubtool info MODEL``: one checkpoint in depth, and what it can be used for."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hubtool import tasks as trainable
from hubtool.core.cardmeta import model_index_rows
from hubtool.core.hubclient import HubSettings, hub_errors, make_api
from hubtool.discover.search import card_license, row_languages

TEXT_TASKS = (
    "fill-mask",
    "text-classification",
    "token-classification",
    "question-answering",
    "feature-extraction",
    "summarization",
    "translation",
    "text-generation",
)


@dataclass
class ModelView:
    """What ``info`` shows (``--json`` prints these fields)."""

    id: str
    sha: str | None
    last_modified: str | None
    private: bool | None
    gated: Any
    pipeline_tag: str | None
    library: str | None
    license: str | None
    languages: list[str]
    multilingual: bool
    datasets: list[str]
    base_model: list[str]
    base_model_relation: str | None
    parameters: int | None
    parameters_by_dtype: dict[str, int]
    downloads: int | None
    likes: int | None
    architectures: list[str]
    model_type: str | None
    eval_results: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    total_size: int | None = None
    tasks: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def eval_results(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows (task, dataset, split, metric, value) from a card's model-index."""
    keys = ("task", "dataset", "dataset_id", "config", "split", "metric", "value")
    return [{k: row[k] for k in keys} for row in model_index_rows(card)]


def view(info: Any) -> ModelView:
    """The ``info`` view of a ``huggingface_hub.ModelInfo``."""
    card = info.card_data.to_dict() if info.card_data is not None else {}
    if "model-index" not in card and isinstance(getattr(info, "model_index", None), list):
        card["model-index"] = info.model_index
    tags = list(info.tags or [])
    codes, multilingual, _ = row_languages(tags, card)
    config = info.config or {}
    archs = list(config.get("architectures") or [])
    files = [
        {"path": s.rfilename, "size": s.size, "lfs": s.lfs is not None} for s in info.siblings or []
    ]
    sizes = [f["size"] for f in files if f["size"] is not None]
    st = info.safetensors
    license_ = card_license(tags, card)
    datasets = _as_list(card.get("datasets")) or [t[8:] for t in tags if t.startswith("dataset:")]
    tasks = []
    for task in TEXT_TASKS:
        fit = trainable.fit(
            task, info.pipeline_tag, archs, config.get("model_type"), info.library_name
        )
        tasks.append({"task": task, "fit": fit.level, "how": fit.how})
    return ModelView(
        id=info.id,
        sha=info.sha,
        last_modified=info.last_modified.isoformat() if info.last_modified else None,
        private=info.private,
        gated=info.gated,
        pipeline_tag=info.pipeline_tag,
        library=info.library_name,
        license=license_,
        languages=codes,
        multilingual=multilingual,
        datasets=datasets,
        base_model=_as_list(card.get("base_model")),
        base_model_relation=card.get("base_model_relation"),
        parameters=st.total if st else None,
        parameters_by_dtype=dict(st.parameters) if st else {},
        downloads=info.downloads,
        likes=info.likes,
        architectures=archs,
        model_type=config.get("model_type"),
        eval_results=eval_results(card),
        files=files,
        total_size=sum(sizes) if len(sizes) == len(files) and files else None,
        tasks=tasks,
    )


def model_view(settings: HubSettings, repo_id: str, revision: str | None = None) -> ModelView:
    from hubtool.core.hubclient import check_repo_id

    check_repo_id(repo_id, "the model to show", namespace=False)
    api = make_api(settings)
    with hub_errors(settings, f"Reading {repo_id}"):
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    return view(info)
