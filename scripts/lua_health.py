#!/usr/bin/env python3
"""Runs an Argo CD Lua health script (as Argo CD does: a global `obj`, a returned table) on each
object of a JSON list read from stdin, with Lua from PyPI lupa; prints the results as JSON."""
import json
import sys

import lupa


def to_lua(runtime, value):
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def main() -> int:
    script = open(sys.argv[1], encoding="utf-8").read()
    results = []
    for obj in json.load(sys.stdin):
        runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
        runtime.globals().obj = to_lua(runtime, obj)
        health = runtime.execute(script)
        results.append({"status": health["status"], "message": health["message"]})
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
