from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from workflow_contracts.asset import (
    AssetFileError,
    WorkflowAsset,
    asset_json_schema,
    load_asset,
    load_catalog,
)

SCHEMA_FILE = (
    Path(__file__).resolve().parents[2]
    / "contracts/workflow_contracts/schemas/workflow-asset.schema.json"
)
MINIMAL = {"id": "a", "title": "A", "execution": {"image": "img:1"}}


def test_committed_schema_matches_the_model() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == json.loads(json.dumps(asset_json_schema(), sort_keys=True))


def test_every_dummy_asset_validates_against_the_committed_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assets_dir = SCHEMA_FILE.parents[3] / "dummy-job/assets"
    files = sorted(assets_dir.glob("*.yaml"))
    assert files
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
        load_asset(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "../evil"}, "pattern"),
        ({"inputs": [{"id": "n", "kind": "literal"}]}, "needs a 'type'"),
        ({"inputs": [{"id": "f", "kind": "file", "type": "string"}]}, "for literal inputs"),
        (
            {
                "inputs": [
                    {"id": "n", "kind": "literal", "type": "integer", "constraints": {"x": 1}}
                ]
            },
            "unsupported constraints",
        ),
        ({"outputs": [{"id": "o"}, {"id": "o"}]}, "duplicate ids"),
        ({"unexpected": True}, "Extra inputs"),
        ({"inputs": [{"id": "f", "kind": "file", "max_size": 0}]}, "greater than 0"),
    ],
)
def test_invalid_assets_are_refused_with_a_reason(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WorkflowAsset.model_validate({**MINIMAL, **change})


def test_literal_schema_carries_constraints_and_default() -> None:
    asset = WorkflowAsset.model_validate(
        {
            **MINIMAL,
            "inputs": [
                {
                    "id": "n",
                    "kind": "literal",
                    "type": "integer",
                    "constraints": {"minimum": 1},
                    "default": 3,
                }
            ],
        }
    )
    assert asset.inputs[0].value_schema() == {"type": "integer", "minimum": 1, "default": 3}


def test_catalog_refuses_duplicate_ids_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(MINIMAL))
    (tmp_path / "two.json").write_text(json.dumps(MINIMAL))
    with pytest.raises(AssetFileError, match="defined twice"):
        load_catalog(tmp_path)
    (tmp_path / "two.json").write_text("{not json")
    with pytest.raises(AssetFileError, match=r"two\.json"):
        load_catalog(tmp_path)
