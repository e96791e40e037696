"""A stand-in for ``python -m kiln.serving._supervisor`` (docs/serving-internals.md §1),
used by the endpoint tests only while the real one is not in the tree: it keeps the same
contract (newest ``gen-<n>.json``, ``state.json`` written atomically with pid, port, url,
generation and ready; SIGHUP serves the newest generation once it loaded; SIGTERM exits)
and answers ``/ping`` and ``/invocations`` for packages with ``code/inference.py``
(``model_fn`` + ``predict_fn`` on JSON rows)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def newest(run_dir: Path) -> dict:
    gens = sorted(run_dir.glob("gen-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    return json.loads(gens[-1].read_text())


def load(variant: dict):
    folder = Path(variant["folder"])
    path = folder / "code" / "inference.py"
    spec = importlib.util.spec_from_file_location(f"inference_{variant['name']}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.model_fn(str(folder))


class Serving:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.models = {v["name"]: (v, *load(v)) for v in spec["variants"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", required=True)
    run_dir = Path(parser.parse_args().run_dir)
    current = Serving(newest(run_dir))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200 if self.path == "/ping" else 404, b"{}")

        def do_POST(self) -> None:
            serving = current
            data = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.headers.get("content-type") != "application/json":
                return self._send(415, json.dumps({"error": {"code": "unsupported_media_type", "message": "use application/json"}}).encode())
            target = self.headers.get("x-amzn-sagemaker-target-variant")
            variants = list(serving.models.values())
            if target:
                chosen = serving.models.get(target)
                if chosen is None:
                    return self._send(400, json.dumps({"error": {"code": "invalid_argument", "message": f"no variant {target}"}}).encode())
            else:
                chosen = random.choices(variants, weights=[v[0]["weight"] for v in variants])[0]
            variant, module, model = chosen
            try:
                rows = json.loads(data)
                out = module.predict_fn(rows, model)
            except Exception as exc:  # noqa: BLE001
                return self._send(424, json.dumps({"error": {"code": "model_error", "message": str(exc)}}).encode())
            headers = {"x-amzn-invoked-production-variant": variant["name"]}
            if self.headers.get("x-amzn-sagemaker-custom-attributes"):
                headers["x-amzn-sagemaker-custom-attributes"] = self.headers["x-amzn-sagemaker-custom-attributes"]
            self._send(200, json.dumps(list(out)).encode(), headers=headers)

    server = ThreadingHTTPServer((current.spec["host"], current.spec["port"]), Handler)
    port = server.server_address[1]

    def write_state() -> None:
        state = {"pid": os.getpid(), "port": port, "url": f"http://127.0.0.1:{port}", "generation": current.spec["generation"], "workers": [], "ready": True}
        tmp = run_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, run_dir / "state.json")

    def hup(*_) -> None:
        def swap() -> None:
            nonlocal current
            with lock:
                try:
                    fresh = Serving(newest(run_dir))
                except Exception as exc:  # noqa: BLE001 - the old generation keeps serving
                    print(f"generation failed to load: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                    return
                current = fresh
                write_state()

        threading.Thread(target=swap, daemon=True).start()

    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    write_state()
    server.serve_forever()


if __name__ == "__main__":
    main()
