"""``POST /api/validate-yaml``: check a card's front matter as the Hub does (spec §2.5.1)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from hubtool.core import boundedyaml
from hubtool.core.cardmeta import split_front_matter

# The Hub's closed list of license ids.
LICENSES = frozenset(
    """
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear
c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0
cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0
cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl
ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0
odc-by odbl openmdw-1.0 openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr
deepfloyd-if-license fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2
llama3.3 llama4 gemma unknown other
""".split()
)

# ISO 639-1 codes; three-letter (639-2/639-3) codes are accepted by shape.
ISO_639_1 = frozenset(
    """
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da
de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz
ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln
lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi
pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti
tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
""".split()
)
_LANG_SHAPE = re.compile(r"^([a-z]{2,3})(?:[-_][A-Za-z0-9]{2,8})*$")

NO_METADATA_WARNING = {
    "message": "empty or missing yaml metadata in repo card",
    "help": "https://huggingface.co/docs/hub/model-cards#model-card-metadata",
}


def valid_language(code: str) -> bool:
    if code == "multilingual":
        return True
    m = _LANG_SHAPE.match(code)
    return m is not None and (len(m.group(1)) == 3 or m.group(1) in ISO_639_1)


def validate_card(content: str, repo_type: str = "model") -> tuple[list[str], list[dict[str, Any]]]:
    """(errors, warnings) for a card's text."""
    raw, _ = split_front_matter(content)
    if raw is None or not raw.strip():
        return [], [NO_METADATA_WARNING]
    try:
        data = boundedyaml.safe_load(raw)
    except yaml.YAMLError as exc:
        return [f"Invalid YAML in README.md: {exc}".replace("\n", " ")], []
    if not isinstance(data, dict):
        return ['"value" must be of type object'], []
    errors = _license_errors(data.get("license")) + _language_errors(data.get("language"))
    if repo_type == "model" and "model-index" in data:
        errors += _model_index_errors(data["model-index"])
    return errors, []


def _license_errors(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    bad = [v for v in values if not isinstance(v, str) or v not in LICENSES]
    if not bad:
        return []
    return [f'"license" must be one of [{", ".join(sorted(LICENSES))}]']


def _language_errors(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    bad = [v for v in values if not isinstance(v, str) or not valid_language(v)]
    return [
        f'"language" has an invalid code: {b!r} (use ISO 639-1, 639-2 or 639-3 codes)' for b in bad
    ]


def _model_index_errors(index: Any) -> list[str]:
    if not isinstance(index, list):
        return ['"model-index" must be an array']
    errors: list[str] = []
    for i, entry in enumerate(index):
        where = f'"model-index[{i}]"'
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append(f"{where}.name is required and must be a string")
            continue
        results = entry.get("results")
        if not isinstance(results, list):
            errors.append(f"{where}.results must be an array")
            continue
        for j, result in enumerate(results):
            errors += _result_errors(f"{where}.results[{j}]", result)
    return errors


def _result_errors(where: str, result: Any) -> list[str]:
    if not isinstance(result, dict):
        return [f"{where} must be an object"]
    errors = []
    task = result.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("type"), str):
        errors.append(f"{where}.task.type is required")
    dataset = result.get("dataset")
    if not isinstance(dataset, dict) or not all(
        isinstance(dataset.get(k), str) for k in ("type", "name")
    ):
        errors.append(f"{where}.dataset.type and .name are required")
    metrics = result.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        errors.append(f"{where}.metrics must be a non-empty array")
    else:
        for k, metric in enumerate(metrics):
            if (
                not isinstance(metric, dict)
                or not isinstance(metric.get("type"), str)
                or ("value" not in metric)
            ):
                errors.append(f"{where}.metrics[{k}] needs a type and a value")
    return errors
