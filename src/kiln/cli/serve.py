"""kiln serve: one model over HTTP in the foreground, as ``mlflow models serve`` does.

The model is resolved through the registry (hashes checked on download), or taken from
a local package folder; the serving processes are the endpoint's own (a supervisor in
this process, workers beside it), with SageMaker's, MLflow's and the V2 protocol on one
port. Ctrl-C drains the workers and stops.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import typer

from kiln.cli._common import err_console, get_client
from kiln.core.errors import InvalidArgument, PermissionDenied

app = typer.Typer()


def _trusted(runs_code: bool, trusted_by: str | None, what: str, trust_code: bool) -> bool:
    """Whether the package's code may run: the registry's one rule (``code_may_run``, as
    ``ModelService.start_worker`` and endpoints decide it), or this user's own
    ``--trust-code`` for a server that runs in their own shell, as ``models.load(trust_pickle=True)`` is theirs."""
    from kiln.core.config import load_settings
    from kiln.registry._service import code_may_run

    return code_may_run(
        ref=what, runs_code=runs_code, trusted_by=trusted_by, model_code=load_settings().model_code if runs_code and not trust_code else "",
        own=trust_code, own_flag="--trust-code",
    )


@app.command("serve")
def serve(
    model_ref: str = typer.Argument(None, help="A registered model: name, name@3 or name@alias.", show_default=False),
    folder: Path = typer.Option(None, "--folder", help="Serve a local model package folder instead of a registered model.", show_default=False),
    port: int = typer.Option(8080, "--port", "-p", help="Port to listen on (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes the model on every interface)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, max=64, help="Worker processes (each holds the model)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Run the package's code (pickle, code/inference.py) even if no admin trusted it."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds one request may take in the model."),
    max_payload_mb: float = typer.Option(6.0, "--max-payload-mb", help="Largest request body, in MB."),
) -> None:
    """Serve a model over HTTP in the foreground (SageMaker, MLflow and V2 protocols); Ctrl-C stops."""
    from kiln.serving._spec import EndpointSpec, VariantSpec
    from kiln.serving._supervisor import Supervisor

    if (model_ref is None) == (folder is None):
        raise InvalidArgument("kiln serve takes a MODEL_REF or --folder PATH (one of them)")
    if not 0 < max_payload_mb <= 100:
        raise InvalidArgument("--max-payload-mb must be more than 0 and at most 100")
    run_dir = Path(tempfile.mkdtemp(prefix="kiln-serve-"))
    try:
        if folder is not None:
            package, ref, name, trusted = _local(folder, trust_code)
        else:
            client = get_client()
            version = client.models.get_version(model_ref)
            ref, name = version.ref, version.name
            trusted = _trusted(version.runs_code, version.trusted_by, ref, trust_code)
            package = run_dir / "model"
            client.models.download(ref, package)  # every file's sha256 checked
        spec = EndpointSpec(
            name=name, variants=(VariantSpec(model_ref=ref, folder=str(package), trusted=trusted),), workers=workers,
            host=host, port=port, timeout_s=timeout, max_payload_bytes=int(max_payload_mb * (1 << 20)), run_dir=str(run_dir),
        )
        (run_dir / "gen-1.json").write_text(spec.model_dump_json(indent=2))
        supervisor = Supervisor(run_dir, on_status=_say)
        supervisor.bind()
        err_console.print(f"Serving {ref} at {supervisor.url} with {workers} worker(s): POST /invocations, /v2/models/{name}/infer; Ctrl-C stops", highlight=False)
        code = supervisor.run()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    raise typer.Exit(code)


def _say(status: str, error: str | None) -> None:
    if status == "ready":
        err_console.print("Ready.", highlight=False)
    elif status == "stopping":
        err_console.print("Stopping: finishing the requests in flight (Ctrl-C again to kill).", highlight=False)
    elif status == "failed":
        err_console.print(f"[red]error:[/red] {error}", highlight=False)


def _local(folder: Path, trust_code: bool) -> tuple[Path, str, str, bool]:
    """A local package folder: its manifest (or one detected), hashes checked; its trust is the caller's flag."""
    from kiln.registry._build import prepare_folder, runs_code
    from kiln.registry._package import read_manifest, verify_folder

    if not folder.is_dir():
        raise InvalidArgument(f"{str(folder)!r} is not a folder")
    manifest = read_manifest(folder)
    if manifest is None:
        manifest = prepare_folder(folder)
    else:
        verify_folder(folder, manifest, exact=False)
    code = runs_code(manifest)
    if code and not trust_code:
        raise PermissionDenied(f"{str(folder)!r} holds code (a pickle or code/inference.py); serving it runs that code: pass --trust-code if you trust it")
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in folder.resolve().name.lower()).strip("-_") or "model"
    return folder.resolve(), f"{name}@local", name[:63], code

