"""Independent checks of weir's admin listener, run by crates/weir/tests/api.rs.

  check.py spec SPEC.json                 validate the OpenAPI document (openapi-spec-validator)
  check.py responses SPEC.json DIR        validate every DIR/<Schema>-<n>.json against
                                          components.schemas.<Schema> (jsonschema, 2020-12)
  check.py metrics FILE                   parse FILE as OpenMetrics text (prometheus_client)
                                          and print {"name{label=value,...}": value} as JSON

Exits non-zero with the reason on the first failure.
"""
import json
import pathlib
import sys


def spec(path):
    from openapi_spec_validator import validate
    document = json.loads(pathlib.Path(path).read_text())
    validate(document)
    print(f"openapi {document.get('openapi')}: valid, {len(document['paths'])} paths")


def responses(path, folder):
    import jsonschema
    document = json.loads(pathlib.Path(path).read_text())
    checked = 0
    for file in sorted(pathlib.Path(folder).glob("*.json")):
        schema_name = file.stem.rsplit("-", 1)[0]
        if schema_name not in document["components"]["schemas"]:
            sys.exit(f"{file.name}: no schema {schema_name} in the document")
        schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
        validator = jsonschema.Draft202012Validator(schema)
        instance = json.loads(file.read_text())
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            sys.exit(f"{file.name}: {errors[0].message} at {list(errors[0].path)}")
        checked += 1
    print(f"{checked} responses match the document")


def metrics(path):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    values = {}
    for family in text_string_to_metric_families(pathlib.Path(path).read_text()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    print(json.dumps(values))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"spec": spec, "responses": responses, "metrics": metrics}[command](*args)
