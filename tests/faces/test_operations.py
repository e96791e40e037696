"""Every declared operation is mounted as declared, and every one is walked on both
transports by some stage's ``test_ops_parity.py``."""

from __future__ import annotations

import importlib
from pathlib import Path

from kiln.core.config import load_settings
from kiln.core.ops import OPERATIONS
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

TESTS = Path(__file__).parent.parent


def test_every_operation_is_mounted_as_declared(tmp_path: Path) -> None:
    ws = Workspace(load_settings(home=str(tmp_path / "k")))
    spec = create_app(ws).openapi()  # imports every route module, so every declaration
    assert len(OPERATIONS) >= 12
    for op in OPERATIONS.values():
        entry = spec["paths"][op.template][op.method.lower()]
        assert (entry["operationId"], entry["x-kiln-role"]) == (op.name, op.role)
    ws.close()


def test_every_operation_has_a_parity_example(tmp_path: Path) -> None:
    ws = Workspace(load_settings(home=str(tmp_path / "k")))
    create_app(ws)
    covered: set[str] = set()
    for path in sorted(TESTS.glob("*/test_ops_parity.py")):
        module = importlib.import_module(f"tests.{path.parent.name}.test_ops_parity")
        covered |= set(module.EXAMPLES)
    assert sorted(set(OPERATIONS) - covered) == [], "declared operations no parity test walks"
    assert sorted(covered - set(OPERATIONS)) == [], "examples of operations that are not declared"
    ws.close()
