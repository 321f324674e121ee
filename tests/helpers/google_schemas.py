"""Google's published API schemas, as shipped in google-api-python-client's discovery documents.

`validate(value, "TemplateMetadata", "dataflow")` checks a JSON value against a schema of a
discovery document: no unknown field, the JSON type of every field, enum values, and the
fields whose description starts with "Required." present.
"""

from __future__ import annotations

import functools
import json
import os

import googleapiclient

DOCUMENTS = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents")
API_FILES = {"dataflow": "dataflow.v1b3.json", "cloudbuild": "cloudbuild.v1.json"}

_JSON_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


@functools.cache
def document(api: str) -> dict:
    with open(os.path.join(DOCUMENTS, API_FILES[api])) as handle:
        return json.load(handle)


def schema(api: str, name: str) -> dict:
    return document(api)["schemas"][name]


def required_fields(api: str, name: str) -> set[str]:
    return {field for field, spec in schema(api, name)["properties"].items()
            if spec.get("description", "").startswith("Required.")}


def validate(value, name: str, api: str = "dataflow") -> list[str]:
    """All the ways `value` breaks the schema `name`; empty when it conforms."""
    return _check(value, {"$ref": name}, api, name)


def _check(value, spec: dict, api: str, where: str) -> list[str]:
    if "$ref" in spec:
        ref = spec["$ref"]
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({ref}), got {type(value).__name__}"]
        properties = schema(api, ref)["properties"]
        errors = [f"{where}.{key}: unknown field of {ref}" for key in value if key not in properties]
        errors += [f"{where}.{key}: required field of {ref} missing"
                   for key in sorted(required_fields(api, ref)) if key not in value]
        for key, item in value.items():
            if key in properties:
                errors += _check(item, properties[key], api, f"{where}.{key}")
        return errors
    kind = spec.get("type")
    if kind in ("integer", "number"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if spec.get("format") in ("int32", "int64", "uint32", "uint64") and isinstance(value, str):
            ok = value.lstrip("-").isdigit()  # 64-bit integers travel as JSON strings
        return [] if ok else [f"{where}: expected {kind}, got {value!r}"]
    if kind in _JSON_TYPES and not isinstance(value, _JSON_TYPES[kind]):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if "enum" in spec and value not in spec["enum"]:
        return [f"{where}: {value!r} is not one of {spec['enum']}"]
    if kind == "array":
        return [error for index, item in enumerate(value)
                for error in _check(item, spec["items"], api, f"{where}[{index}]")]
    if kind == "object" and "additionalProperties" in spec:
        return [error for key, item in value.items()
                for error in _check(item, spec["additionalProperties"], api, f"{where}.{key}")]
    return []
