"""Decodes captured OTLP/HTTP metric exports with the official Python
`opentelemetry-proto` package and prints what they hold as one JSON object:
the last export's metrics (totals are cumulative), each with its unit, kind
and data points (attributes, count, sum, bucket bounds and counts, value).

Usage: decode_metrics.py FILE...   (each FILE one request body)
"""

import json
import sys

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)


def attrs(kvs):
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


def main():
    metrics = {}
    resource = {}
    scope = None
    for path in sys.argv[1:]:
        req = ExportMetricsServiceRequest()
        with open(path, "rb") as f:
            req.ParseFromString(f.read())
        for rm in req.resource_metrics:
            resource = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                scope = sm.scope.name
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    points = []
                    if kind == "histogram":
                        for p in m.histogram.data_points:
                            points.append({
                                "attributes": attrs(p.attributes),
                                "count": p.count,
                                "sum": p.sum,
                                "bounds": list(p.explicit_bounds),
                                "buckets": list(p.bucket_counts),
                            })
                        temporality = m.histogram.aggregation_temporality
                    elif kind == "sum":
                        for p in m.sum.data_points:
                            value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                            points.append({"attributes": attrs(p.attributes), "value": value})
                        temporality = m.sum.aggregation_temporality
                        kind = "monotonic_sum" if m.sum.is_monotonic else "sum"
                    else:
                        temporality = None
                    # Cumulative: the last export's points are the totals.
                    metrics[m.name] = {
                        "unit": m.unit,
                        "kind": kind,
                        "temporality": temporality,
                        "points": points,
                    }
    print(json.dumps({"resource": resource, "scope": scope, "metrics": metrics}))


if __name__ == "__main__":
    main()
