"""Creating processing jobs: the request is checked here, before anything runs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.jobs._code import code_key
from kiln.jobs._inputs import resolve_source
from kiln.jobs._models import Job
from kiln.jobs._service import JobService

__all__ = ["ProcessingService", "check_environment", "check_relative"]

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_environment(environment: Mapping[str, Any] | None) -> dict[str, str]:
    """User environment variables: plain names, string values, none of Kiln's own."""
    out: dict[str, str] = {}
    for key, value in (environment or {}).items():
        if not isinstance(key, str) or not _ENV_KEY.fullmatch(key):
            raise InvalidArgument(f"environment variable name {str(key)[:40]!r} is invalid: letters, digits and '_'")
        if key.upper().startswith(("KILN_", "SM_", "SAGEMAKER_")):
            raise InvalidArgument(f"environment variable {key} is set by Kiln; pick another name")
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidArgument(f"environment variable {key} must be a string")
        out[key] = str(value)
    return out


def check_relative(path: str, *, what: str) -> str:
    """A path inside the job's code folder: relative, no '..', no NUL."""
    if not isinstance(path, str) or not path or "\x00" in path or path.startswith(("/", "\\")) or ".." in re.split(r"[\\/]", path):
        raise InvalidArgument(f"{what} {str(path)[:80]!r} must be a path inside the source folder (relative, without '..')")
    return path


class ProcessingService:
    """Processing jobs."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def create(
        self,
        *,
        name: str | None = None,
        code: str | None = None,
        entry_point: str | None = None,
        command: Sequence[str] | None = None,
        arguments: Sequence[str] = (),
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        environment: Mapping[str, Any] | None = None,
        max_run_s: float | None = None,
        max_retries: int = 0,
        experiment: str | None = None,
    ) -> Job:
        """Start a processing job: a script (``entry_point`` in the uploaded ``code``) or a
        ``command``, with named inputs (datasets or files) and named outputs (datasets).

        Raises:
            InvalidArgument: nothing to run, a bad name, path, argument or variable.
            NotFound: an input dataset or the code archive does not exist.
        """
        self.ctx.require("editor")
        JobService(self.ws, self.ctx).executor.warm()  # the runner's parent warms up while the request is checked
        if not entry_point and not command:
            raise InvalidArgument("a processing job runs a script (entry_point, with code) or a command; give one")
        if entry_point:
            check_relative(entry_point, what="entry_point")
            if not code:
                raise InvalidArgument("entry_point needs its code: pass source_dir (the SDK and CLI upload it)")
        if code is not None and not self.ws.store.exists(code_key(code)):
            raise InvalidArgument(f"no code archive {code[:12]}…; upload the source first")
        if command is not None and (isinstance(command, str) or not all(isinstance(c, str) and c for c in command)):
            raise InvalidArgument("command is a list of strings, e.g. [\"python3\", \"-c\", \"...\"]")
        if isinstance(arguments, str) or not all(isinstance(a, (str, int, float)) for a in arguments):
            raise InvalidArgument("arguments is a list of strings")
        ins = {check_name(k, kind="input"): resolve_source(self.ws, self.ctx, v, what=f"input {k}").as_dict() for k, v in (inputs or {}).items()}
        outs = {check_name(k, kind="output"): check_name(v, kind="dataset") for k, v in (outputs or {}).items()}
        if experiment is not None:
            check_name(experiment, kind="experiment")
        spec = {
            "code": code, "entry_point": entry_point, "command": list(command) if command else None,
            "arguments": [str(a) for a in arguments], "inputs": ins, "outputs": outs,
            "environment": check_environment(environment), "experiment": experiment,
        }
        base = (entry_point or (command or ["processing"])[0]).rsplit("/", 1)[-1].split(".", 1)[0].lower()
        base = re.sub(r"[^a-z0-9_-]", "-", base).strip("-_") or "processing"
        return JobService(self.ws, self.ctx).submit(
            kind="processing", spec=spec, name=name, base_name=base, time_limit_s=max_run_s, max_attempts=int(max_retries) + 1,
        )
