"""kiln endpoints: real-time endpoints: create, update, describe, ls, delete, invoke."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from kiln.cli._common import JsonOpt, busy, console, emit, get_client, print_json, to_jsonable
from kiln.core.errors import InvalidArgument

app = typer.Typer(help="Real-time endpoints: models served over HTTP, with variants, blue/green updates and data capture.", no_args_is_help=True)

_COLS = ["name", "state", "generation", "url", "variants", "workers", "updated_at", "failure_reason"]


def _row(ep: Any) -> dict[str, Any]:
    data = to_jsonable(ep)
    data["variants"] = ", ".join(f"{v.name}={v.model}:{v.weight:g}" for v in ep.variants) + (f" (shadow {ep.shadow.name}={ep.shadow.model})" if ep.shadow else "")
    return data


def _parse_variant(text: str) -> dict[str, Any]:
    """``NAME=REF:WEIGHT`` (weight 1 when left out)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise InvalidArgument(f"--variant {text!r}: use NAME=MODEL_REF:WEIGHT, e.g. blue=churn@3:0.9")
    ref, _, weight = rest.partition(":")
    try:
        w = float(weight) if weight else 1.0
    except ValueError:
        raise InvalidArgument(f"--variant {text!r}: the weight {weight!r} is not a number") from None
    return {"name": name, "model": ref, "weight": w}


def _parse_shadow(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    name, sep, ref = text.partition("=")
    if not sep or not name or not ref:
        raise InvalidArgument(f"--shadow {text!r}: use NAME=MODEL_REF, e.g. candidate=churn@4")
    return {"name": name, "model": ref, "weight": 1.0}


def _modes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = {"input": "Input", "output": "Output"}
    out = []
    for part in text.split(","):
        mode = names.get(part.strip().lower())
        if mode is None:
            raise InvalidArgument(f"--capture-modes {text!r}: use input, output or input,output")
        out.append(mode)
    return out


def _show(ep: Any, json: bool) -> None:
    if json:
        print_json(to_jsonable(ep))
    else:
        emit(_row(ep), json=False)
    if ep.state == "Failed":
        raise typer.Exit(1)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The endpoint's name."),
    model: str = typer.Option(None, "--model", help="The model to serve (name, name@3, name@alias): one variant, AllTraffic."),
    variant: list[str] = typer.Option(None, "--variant", help="A production variant NAME=REF:WEIGHT (repeat for A/B or canary)."),
    shadow: str = typer.Option(None, "--shadow", help="A shadow variant NAME=REF: gets a copy of the traffic, its answers are recorded only."),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
    port: int = typer.Option(0, "--port", help="The port to bind on 127.0.0.1 (0: any free port)."),
    capture: float = typer.Option(0.0, "--capture", help="Capture this percent of requests (0: off)."),
    capture_modes: str = typer.Option(None, "--capture-modes", help="What to capture: input, output or input,output."),
    timeout: float = typer.Option(60.0, "--timeout", help="Time limit of one request, in seconds."),
    max_payload_mb: float = typer.Option(6.0, "--max-payload-mb", help="The largest request body (413 beyond)."),
    serverless: bool = typer.Option(False, "--serverless", help="Scale to zero: no worker holds the model while idle; the next request starts one."),
    memory_mb: int = typer.Option(None, "--memory-mb", help="Serverless: the worker's memory limit; multi-model: the loaded models' budget (MB, default 2048)."),
    max_concurrency: int = typer.Option(None, "--max-concurrency", help="Serverless: requests answered at once; more get 429 (default 5)."),
    idle_timeout: float = typer.Option(None, "--idle-timeout", help="Serverless: seconds without a request before the worker is released (default 300)."),
    multi_model: bool = typer.Option(False, "--multi-model", help="Serve registered models chosen per request by X-Amzn-SageMaker-Target-Model."),
    allow: list[str] = typer.Option(None, "--allow", help="Multi-model: a model name or prefix* it may load (repeat; default all)."),
    batch_max: int = typer.Option(None, "--batch-max", help="Micro-batching: flush once this many rows wait (turns it on)."),
    batch_delay_ms: float = typer.Option(None, "--batch-delay-ms", help="Micro-batching: the longest a request waits for others (default 2)."),
    wait: bool = typer.Option(True, help="Wait until the endpoint is InService (or Failed)."),
    json: bool = JsonOpt,
) -> None:
    """Create an endpoint and start its processes; waits until it is InService."""
    if not serverless and (max_concurrency is not None or idle_timeout is not None):
        raise InvalidArgument("--max-concurrency and --idle-timeout go with --serverless")
    if serverless and multi_model:
        raise InvalidArgument("an endpoint is --serverless or --multi-model, not both")
    if memory_mb is not None and not (serverless or multi_model):
        raise InvalidArgument("--memory-mb goes with --serverless or --multi-model")
    if allow and not multi_model:
        raise InvalidArgument("--allow goes with --multi-model")
    sl = None
    if serverless:
        sl = {k: v for k, v in (("memory_mb", memory_mb), ("max_concurrency", max_concurrency), ("idle_timeout_s", idle_timeout)) if v is not None}
    mm = None
    if multi_model:
        mm = {k: v for k, v in (("memory_mb", memory_mb), ("allow", list(allow) if allow else None)) if v is not None}
    client = get_client()
    with busy(f"creating endpoint {name}"):
        ep = client.endpoints.create(
            name, model=model, variants=[_parse_variant(v) for v in variant] if variant else None, shadow=_parse_shadow(shadow),
            workers=workers, port=port, capture_percent=capture, capture_modes=_modes(capture_modes), timeout_s=timeout,
            max_payload_mb=max_payload_mb, serverless=sl, multi_model=mm, batching=_batching(batch_max, batch_delay_ms), wait=wait,
        )
    _show(ep, json)


def _batching(batch_max: int | None, batch_delay_ms: float | None) -> dict[str, Any] | None:
    if batch_max is None and batch_delay_ms is None:
        return None
    return {k: v for k, v in (("max_batch", batch_max), ("max_delay_ms", batch_delay_ms)) if v is not None}


@app.command("update")
def update(
    name: str = typer.Argument(..., help="The endpoint's name."),
    model: str = typer.Option(None, "--model", help="Serve this model instead (one variant, AllTraffic)."),
    variant: list[str] = typer.Option(None, "--variant", help="The new production variants NAME=REF:WEIGHT."),
    shadow: str = typer.Option(None, "--shadow", help="A new shadow variant NAME=REF."),
    no_shadow: bool = typer.Option(False, "--no-shadow", help="Remove the shadow variant."),
    workers: int = typer.Option(None, "--workers", help="Worker processes."),
    capture: float = typer.Option(None, "--capture", help="Capture this percent of requests (0: off)."),
    capture_modes: str = typer.Option(None, "--capture-modes", help="What to capture: input, output or input,output."),
    timeout: float = typer.Option(None, "--timeout", help="Time limit of one request, in seconds."),
    max_payload_mb: float = typer.Option(None, "--max-payload-mb", help="The largest request body."),
    batch_max: int = typer.Option(None, "--batch-max", help="Micro-batching: flush once this many rows wait (turns it on)."),
    batch_delay_ms: float = typer.Option(None, "--batch-delay-ms", help="Micro-batching: the longest a request waits for others."),
    no_batching: bool = typer.Option(False, "--no-batching", help="Turn micro-batching off."),
    wait: bool = typer.Option(True, help="Wait until the new generation serves (or rolled back)."),
    json: bool = JsonOpt,
) -> None:
    """Update an endpoint blue/green: the old models answer until the new ones are ready."""
    client = get_client()
    with busy(f"updating endpoint {name}"):
        ep = client.endpoints.update(
            name, model=model, variants=[_parse_variant(v) for v in variant] if variant else None, shadow=_parse_shadow(shadow),
            remove_shadow=no_shadow, workers=workers, capture_percent=capture, capture_modes=_modes(capture_modes), timeout_s=timeout,
            max_payload_mb=max_payload_mb, batching=_batching(batch_max, batch_delay_ms), remove_batching=no_batching, wait=wait,
        )
    _show(ep, json)


@app.command("describe")
def describe(name: str = typer.Argument(..., help="The endpoint's name."), json: bool = JsonOpt) -> None:
    """Show an endpoint: state, URL, variants, settings and failure reason."""
    ep = get_client().endpoints.get(name)
    if json:
        print_json(to_jsonable(ep))
    else:
        emit(_row(ep), json=False)


@app.command("ls")
def ls(state: str = typer.Option(None, help="Only endpoints in this state."), json: bool = JsonOpt) -> None:
    """List endpoints."""
    eps = get_client().endpoints.list(state=state)
    emit([_row(e) for e in eps], json=json, columns=_COLS)


@app.command("metrics")
def metrics(
    name: str = typer.Argument(..., help="The endpoint's name."),
    since: float = typer.Option(None, help="Only datapoints at or after this time (epoch seconds)."),
    limit: int = typer.Option(100, help="At most this many, the newest."),
    json: bool = JsonOpt,
) -> None:
    """Show an endpoint's metric datapoints per variant (invocations, errors, latencies)."""
    points = get_client().endpoints.metrics(name, since=since, limit=limit)
    rows = [{"at": p.at, "variant": p.variant, **p.values} for p in points]
    emit(rows, json=json)


@app.command("delete")
def delete(name: str = typer.Argument(..., help="The endpoint's name."), json: bool = JsonOpt) -> None:
    """Delete an endpoint and stop every process it started."""
    with busy(f"deleting endpoint {name}"):
        ep = get_client().endpoints.delete(name)
    if json:
        print_json(to_jsonable(ep))
    else:
        console.print(f"endpoint {name}: deleted")


@app.command("invoke")
def invoke(
    name: str = typer.Argument(..., help="The endpoint's name."),
    body: str = typer.Option(..., "--body", help="The request body, or @FILE to send a file's bytes (@- for stdin)."),
    content_type: str = typer.Option("application/json", "--content-type", help="The body's content type."),
    accept: str = typer.Option(None, "--accept", help="The answer's content type."),
    target_variant: str = typer.Option(None, "--target-variant", help="Send the request to this variant."),
    target_model: str = typer.Option(None, "--target-model", help="The model of a multi-model endpoint."),
    inference_id: str = typer.Option(None, "--inference-id", help="An id recorded with captured data."),
    custom_attributes: str = typer.Option(None, "--custom-attributes", help="Passed to the model's handlers (at most 1024 characters)."),
    json: bool = JsonOpt,
) -> None:
    """Send one request to an endpoint and print its answer."""
    if body.startswith("@"):
        source = body[1:]
        data = sys.stdin.buffer.read() if source == "-" else _read(source)
    else:
        data = body.encode()
    got = get_client().endpoints.invoke(
        name, data, content_type=content_type, accept=accept, target_variant=target_variant, target_model=target_model,
        inference_id=inference_id, custom_attributes=custom_attributes,
    )
    if json:
        print_json({"content_type": got.content_type, "invoked_variant": got.invoked_variant, "body": got.text, "custom_attributes": got.custom_attributes})
        return
    sys.stdout.buffer.write(got.body)
    if not got.body.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read --body file {path!r}: {exc.strerror}") from None
