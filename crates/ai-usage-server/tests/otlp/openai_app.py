"""An app instrumented the usual way: the official OpenAI instrumentation,
the OpenTelemetry SDK and its OTLP/HTTP exporter, configured only through
OTEL_* variables. It calls a local stub of the OpenAI API (a stdlib HTTP
server answering chat completions with usage), and its exporter sends every
batch twice, as an exporter does when an answer times out.

Reads STUB_MODEL, STUB_INPUT_TOKENS, STUB_OUTPUT_TOKENS, CALLS and
SPANS_FILE (where the exported spans are saved, protobuf-encoded, so that
the test can send them once more after a restart). Prints one JSON line.
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = os.environ["STUB_MODEL"]
INPUT_TOKENS = int(os.environ["STUB_INPUT_TOKENS"])
OUTPUT_TOKENS = int(os.environ["STUB_OUTPUT_TOKENS"])
CALLS = int(os.environ.get("CALLS", "3"))


class OpenAIStub(BaseHTTPRequestHandler):
    served = 0

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        OpenAIStub.served += 1
        body = json.dumps({
            "id": f"chatcmpl-stub-{OpenAIStub.served}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": INPUT_TOKENS,
                "completion_tokens": OUTPUT_TOKENS,
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
            },
            "system_fingerprint": request.get("model", ""),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    import openai

    results = []

    class SentTwice(SpanExporter):
        """Sends each batch, then sends it again (a re-send after a timeout)."""

        def __init__(self, inner):
            self.inner = inner

        def export(self, spans):
            first = self.inner.export(spans)
            again = self.inner.export(spans)
            results.append([first.name, again.name, len(spans)])
            path = os.environ.get("SPANS_FILE")
            if path:
                with open(path, "ab") as f:
                    data = encode_spans(spans).SerializeToString()
                    f.write(len(data).to_bytes(4, "big") + data)
            if first == SpanExportResult.SUCCESS and again == SpanExportResult.SUCCESS:
                return SpanExportResult.SUCCESS
            return SpanExportResult.FAILURE

        def shutdown(self):
            self.inner.shutdown()

    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenAIStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    provider = TracerProvider()  # resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    provider.add_span_processor(BatchSpanProcessor(SentTwice(OTLPSpanExporter())))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)

    client = openai.OpenAI(
        api_key="sk-test", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1"
    )
    for i in range(CALLS):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"call {i}"}]
        )
    provider.shutdown()
    server.shutdown()
    print(json.dumps({"exports": results, "stub_calls": OpenAIStub.served}))


if __name__ == "__main__":
    main()
