"""Parses a Prometheus text exposition from standard input with the official Python
client's parser and prints every sample as JSON: [[name, {labels}, value], ...]. A
malformed exposition is an error (exit status 1). Used by tests/api/ops/metrics.rs."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append([sample.name, sample.labels, sample.value])
print(json.dumps(samples))
