#!/usr/bin/env python3
"""Lints or renders charts/simfleet with Helm's own engine (PyPI helm-python-sdk), for tests.

    chart.py lint   CHART [VALUES_JSON]   -> the lint report as JSON
    chart.py render CHART [VALUES_JSON] [NAMESPACE] -> {template path: manifest} as JSON
"""
import json
import sys

import helm_python as helm


def main() -> int:
    command, chart = sys.argv[1], sys.argv[2]
    values = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    if command == "lint":
        report = helm.lint(chart, values, strict=True, namespace="simfleet-system")
        print(json.dumps(report))
        return 0
    if command == "render":
        namespace = sys.argv[4] if len(sys.argv) > 4 else "simfleet-system"
        loaded = helm.Chart.load(chart)
        loaded.validate_schema(values)
        manifests = loaded.render(values, name="simfleet", namespace=namespace, is_install=True)
        print(json.dumps(manifests))
        return 0
    print(f"unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
