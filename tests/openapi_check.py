#!/usr/bin/env python3
"""openapi_check — checks circad against its OpenAPI document (used by test_openapi).

usage: openapi_check.py SPEC.json ROUTES.json EXCHANGES.jsonl

SPEC.json       the document circad serves at /v1/openapi.json
ROUTES.json     what circad serves at /v1/openapi/routes: {"routes": [{"method", "path"}]}
EXCHANGES.jsonl one real request per line: {"method", "route", "status", "content_type", "body"}

Fails (exit 1, one line per finding) when
  - the document is not valid OpenAPI 3.1 (its schemas against JSON Schema 2020-12, every $ref
    resolving; openapi-spec-validator too when installed),
  - a route circad registered has no operation in the document, or an operation has no route,
  - an answer's status is not documented for its operation (`default` does not count), its
    media type is not the documented one, or its body does not match the documented schema.
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("SKIP-NEEDED: python3-jsonschema is not installed")
    sys.exit(3)

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
findings = []


def finding(msg):
    findings.append(msg)
    print("FAIL:", msg)


def pointer(doc, ref):
    """The node a local $ref ("#/a/b~1c") names, or None."""
    if not ref.startswith("#/"):
        return None
    node = doc
    for tok in ref[2:].split("/"):
        tok = tok.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and tok in node:
            node = node[tok]
        elif isinstance(node, list) and tok.isdigit() and int(tok) < len(node):
            node = node[int(tok)]
        else:
            return None
    return node


def check_refs(doc, node, where):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and pointer(doc, ref) is None:
            finding(f"unresolvable $ref {ref} at {where}")
        for k, v in node.items():
            check_refs(doc, v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_refs(doc, v, f"{where}/{i}")


def check_document(spec):
    if not str(spec.get("openapi", "")).startswith("3.1"):
        finding("openapi is not 3.1.x")
    for key in ("info", "paths", "components"):
        if key not in spec:
            finding(f"document has no {key}")
    check_refs(spec, spec, "#")
    meta = jsonschema.Draft202012Validator
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        try:
            meta.check_schema(schema)
        except jsonschema.SchemaError as e:
            finding(f"components/schemas/{name} is not a valid JSON Schema: {e.message}")
    try:
        from openapi_spec_validator import validate_spec  # optional, when installed
    except ImportError:
        return
    try:
        validate_spec(spec)
        print("openapi-spec-validator: valid")
    except Exception as e:  # its error classes differ between versions
        finding(f"openapi-spec-validator: {str(e).splitlines()[0]}")


def check_routes(spec, routes):
    served = {(r["method"].upper(), r["path"]) for r in routes["routes"]}
    described = {(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in METHODS}
    for m, p in sorted(served - described):
        finding(f"route {m} {p} is served but not in docs/openapi.yaml")
    for m, p in sorted(described - served):
        finding(f"operation {m} {p} is in docs/openapi.yaml but circad has no such route")
    print(f"routes: {len(served)} served, {len(described)} described")


def deref(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        node = pointer(spec, node["$ref"])
    return node


def validator(spec, schema):
    """Validates against schema with every #/components/... $ref resolving in spec."""
    root = dict(spec)
    root["$defs"] = {"target": schema}
    root["$ref"] = "#/$defs/target"
    return jsonschema.Draft202012Validator(root)


def check_exchange(spec, ex, n):
    what = f"#{n} {ex['method']} {ex['route']} -> {ex['status']}"
    item = spec["paths"].get(ex["route"])
    op = item.get(ex["method"].lower()) if item else None
    if op is None:
        return finding(f"{what}: no such operation")
    resp = deref(spec, op.get("responses", {}).get(str(ex["status"])))
    if resp is None:
        return finding(f"{what}: status not documented")
    content = resp.get("content")
    if not content:
        return
    media = (ex.get("content_type") or "").split(";")[0].strip().lower()
    if media not in content:
        return finding(f"{what}: media type {media!r} is not one of {sorted(content)}")
    schema = content[media].get("schema")
    if schema is None:
        return
    body = ex["body"]
    if media.endswith("json"):
        try:
            body = json.loads(body)
        except ValueError as e:
            return finding(f"{what}: body is not JSON ({e})")
    errors = sorted(validator(spec, schema).iter_errors(body), key=lambda e: list(e.path))
    for e in errors[:5]:
        at = "/".join(str(p) for p in e.absolute_path)
        finding(f"{what}: /{at}: {e.message[:300]}")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    with open(sys.argv[2]) as f:
        routes = json.load(f)
    check_document(spec)
    check_routes(spec, routes)
    covered = set()
    with open(sys.argv[3]) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                ex = json.loads(line)
                check_exchange(spec, ex, n)
                covered.add((ex["method"], ex["route"], ex["status"]))
    print(f"exchanges: {len(covered)} distinct (operation, status) checked")
    print(f"{len(findings)} findings")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
