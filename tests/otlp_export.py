"""Exports metrics to Pulse with the real OpenTelemetry Python SDK and its OTLP/HTTP exporter.

Usage: otlp_export.py BASE_URL TOKEN (protobuf|json) SERVICE_NAME
Records a counter (a sum), a histogram and an observable gauge, exports them once, and exits
0 only if the exporter reports success.
"""
import sys

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource

base, token, encoding, service = sys.argv[1:5]
if encoding == "protobuf":
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
else:
    from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter

reader = InMemoryMetricReader()
provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": service}))
meter = provider.get_meter("pulse-otlp-test")

orders = meter.create_counter("orders.created", unit="{orders}")
orders.add(3, {"region": "eu"})
orders.add(2, {"region": "eu"})
latency = meter.create_histogram("http.server.duration", unit="ms")
for ms in (10, 20, 30):
    latency.record(ms, {"http.route": "/cart"})
meter.create_observable_gauge("queue.depth", callbacks=[lambda _options: [Observation(7, {"queue": "orders"})]])

exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers={"Authorization": f"Bearer {token}"})
result = exporter.export(reader.get_metrics_data())
print(f"export result: {result}")
sys.exit(0 if result == MetricExportResult.SUCCESS else 1)
