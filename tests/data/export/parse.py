"""Parse an exported file with PyYAML and print it as JSON (a list of documents).

With --compose-schema SCHEMA, also validate the (single) document against the Compose
specification's JSON schema and exit 1 on the first error.
"""
import json
import sys

import yaml

args = sys.argv[1:]
schema = None
if args[0] == "--compose-schema":
    schema = args[1]
    args = args[2:]
with open(args[0], encoding="utf-8") as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
if schema is not None:
    import jsonschema

    with open(schema, encoding="utf-8") as f:
        s = json.load(f)
    validator = jsonschema.Draft7Validator(s)
    errors = sorted(validator.iter_errors(docs[0]), key=lambda e: list(e.path))
    for e in errors:
        print("schema error at", "/".join(map(str, e.path)), ":", e.message, file=sys.stderr)
    if errors:
        sys.exit(1)
print(json.dumps(docs))
