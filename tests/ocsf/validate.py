"""Validate OCSF records (one JSON object a line on stdin) against the compiled OCSF schema.

Each record is checked against the JSON Schema (draft 2020-12) that `ocsf-json-schema` builds for
its class (`class_uid`), in the schema version it declares (`metadata.version`), with the
profiles it declares (`metadata.profiles`). OCSF has no null values, so a null anywhere is
reported too. Prints one JSON object a line per problem: {"index", "path", "message"}; exits 1
when there is any, 2 when the input itself is unusable, 0 when every record validates.

Run by agent-store/tests/ocsf.rs from the venv `cargo xtask setup` installs
(/opt/agentwatch-test/ocsf).
"""

import json
import sys

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

_validators = {}


def validator(version, class_uid, profiles):
    key = (version, class_uid, tuple(sorted(profiles)))
    if key not in _validators:
        embedded = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
        name = embedded.lookup_class_name_from_uid(class_uid)
        schema = embedded.get_class_schema(class_name=name, profiles=list(profiles))
        Draft202012Validator.check_schema(schema)
        _validators[key] = Draft202012Validator(schema)
    return _validators[key]


def nulls(value, path="$"):
    if value is None:
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from nulls(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from nulls(v, f"{path}[{i}]")


def problems(record):
    meta = record.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), str):
        yield "$.metadata.version", "no declared schema version"
        return
    class_uid = record.get("class_uid")
    if not isinstance(class_uid, int):
        yield "$.class_uid", "no class_uid"
        return
    profiles = meta.get("profiles", [])
    try:
        v = validator(meta["version"], class_uid, profiles)
    except (ValueError, KeyError) as e:
        yield "$", f"no schema for version {meta['version']!r} class {class_uid}: {e}"
        return
    for err in sorted(v.iter_errors(record), key=lambda e: list(e.absolute_path)):
        msg = err.message
        if len(msg) > 300:
            msg = msg[:300] + "..."
        yield err.json_path, msg
    for p in nulls(record):
        yield p, "null value (OCSF has no nulls: omit the attribute)"


def main():
    bad = 0
    for index, line in enumerate(sys.stdin):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            print(json.dumps({"index": index, "path": "$", "message": f"not JSON: {e}"}))
            bad += 1
            continue
        for path, message in problems(record):
            print(json.dumps({"index": index, "path": path, "message": message}))
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
