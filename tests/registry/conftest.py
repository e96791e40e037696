"""Registry tests share the tracking fixtures (workspaces on both backends, faces, CLI)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_kiln_tracking_fixtures", Path(__file__).parent.parent / "tracking" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

globals().update({k: v for k, v in vars(_fixtures).items() if not k.startswith("__")})
