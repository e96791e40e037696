"""AutoML's tests use the CLI fixture of the faces' tests."""

from tests.faces.conftest import cli  # noqa: F401 - the cli fixture
