from tests.faces.conftest import cli  # noqa: F401 - the CLI runner shared with the faces tests
