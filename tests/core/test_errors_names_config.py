from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiln.core import errors
from kiln.core.config import load_settings
from kiln.core.names import check_alias, check_name, parse_ref
from tests.conftest import TRAVERSAL

ALL_ERRORS = [errors.InvalidArgument, errors.NotFound, errors.AlreadyExists, errors.Conflict, errors.Unauthenticated, errors.PermissionDenied, errors.PayloadTooLarge, errors.ResourceExhausted, errors.Unavailable]


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_every_error_round_trips_through_its_payload(cls: type[errors.KilnError]) -> None:
    exc = cls("what went wrong; what to do", details={"line": 4})
    assert 400 <= exc.http_status < 600 and exc.exit_code > 0
    back = errors.error_from_payload(exc.to_payload(), exc.http_status)
    assert type(back) is cls and back.message == exc.message and back.details == {"line": 4}


def test_statuses_are_distinct_where_they_must_be() -> None:
    assert errors.NotFound.http_status == 404 and errors.InvalidArgument.http_status == 400
    assert errors.Unauthenticated.http_status == 401 and errors.PermissionDenied.http_status == 403


@pytest.mark.parametrize("name", ["a", "sales", "sales-2026", "0abc", "a" * 63, "cancer_pd", "a_b-c_", "a__b"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "-a", "_a", "a" * 64, "a b", "a.b", "a_B", *TRAVERSAL])
def test_invalid_names_and_every_traversal_string_are_refused(name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        check_name(name)
    with pytest.raises(errors.InvalidArgument):
        parse_ref(name)


MAX = 2**63 - 1


@pytest.mark.parametrize(("ref", "version", "alias"), [
    ("s", None, None), ("s@3", 3, None), ("s@latest", None, None), ("s@champion", None, "champion"),
    ("s@1", 1, None), (f"s@{MAX}", MAX, None), (f"s@{'0' * 40}{MAX}", MAX, None),  # the edges of the version range
])
def test_refs(ref: str, version: int | None, alias: str | None) -> None:
    r = parse_ref(ref)
    assert (r.name, r.version, r.alias) == ("s", version, alias)
    assert str(r) == ("s" if version is None and alias is None else f"s@{version or alias}")


# The exact message, so a user sees what was wrong (user input shortened past 80 characters).
@pytest.mark.parametrize(("call", "message"), [
    (lambda: check_name("Bad!"), "invalid resource name 'Bad!': use 1-63 lower-case letters, digits, '_' and '-', starting with a letter or digit"),
    (lambda: check_name("x" * 80, kind="model"), f"invalid model name '{'x' * 80}': use"),
    (lambda: check_name("x" * 81, kind="model"), f"invalid model name '{'x' * 80}... (81 characters)': use"),
    (lambda: check_name(7), "invalid resource name 7: use"),  # type: ignore[arg-type]
    (lambda: parse_ref(7), "invalid resource reference 7"),  # type: ignore[arg-type]
    (lambda: parse_ref("Bad@1", kind="model"), "invalid model name 'Bad': use"),
    (lambda: parse_ref("m@0"), "invalid version in 'm@0': versions start at 1"),
    (lambda: parse_ref(f"m@{MAX + 1}"), f"invalid version in 'm@{MAX + 1}': versions are at most {MAX}"),
    (lambda: parse_ref("m@" + "9" * 30), f"invalid version in 'm@{'9' * 30}': versions are at most {MAX}"),
    (lambda: parse_ref("m@Bad", kind="model"), "invalid model reference 'm@Bad': use NAME, NAME@VERSION or NAME@ALIAS"),
    (lambda: check_alias("latest"), "invalid alias 'latest': use lower-case letters, digits, '-' or '_', starting with a letter (and not 'latest')"),
    (lambda: check_alias("1st"), "invalid alias '1st': use"),
    (lambda: check_alias(7), "invalid alias 7: use"),  # type: ignore[arg-type]
])
def test_name_errors_say_what_was_wrong(call: Any, message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        call()
    assert info.value.message.startswith(message), info.value.message


def test_a_bad_name_is_in_the_details_cut_to_200_characters() -> None:
    for name in ("Bad!", "x" * 300):
        with pytest.raises(errors.InvalidArgument) as info:
            check_name(name)
        assert info.value.details == {"name": name[:200]}
    assert check_alias("prod") == "prod" and check_alias("a_b-2") == "a_b-2"


@pytest.mark.parametrize("ref", ["s@0", "s@-1", "s@", "s@1@2", "s@Champ", "s@١", "s@9223372036854775808", "s@99999999999999999999999"])
def test_bad_refs(ref: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        parse_ref(ref)


def test_settings_from_env_and_toml(tmp_path: Path) -> None:
    toml = tmp_path / "kiln.toml"
    toml.write_text('[kiln]\nport = 9000\nsql_max_rows = 5\n')
    s = load_settings({"KILN_CONFIG": str(toml), "KILN_HOME": str(tmp_path / "h"), "KILN_PORT": "9100"})
    assert s.port == 9100 and s.sql_max_rows == 5 and s.source_file == str(toml)
    assert s.database_url == f"sqlite:///{tmp_path / 'h' / 'kiln.db'}"
    assert s.storage_url == str(tmp_path / "h" / "objects")


@pytest.mark.parametrize(("content", "env", "needle"), [
    ("port = [", {}, "not valid TOML"),
    ("colour = 1", {}, "unknown settings"),
    ("", {"KILN_PORT": "eighty"}, "expected int"),
    ("", {"KILN_AUTH": "maybe"}, "expected bool"),
])
def test_bad_settings_say_what_is_wrong(tmp_path: Path, content: str, env: dict[str, str], needle: str) -> None:
    toml = tmp_path / "kiln.toml"
    toml.write_text(content)
    with pytest.raises(errors.InvalidArgument, match=needle):
        load_settings({"KILN_CONFIG": str(toml), **env})


def test_public_settings_mask_secrets() -> None:
    s = load_settings({"KILN_TOKEN": "kiln_secret", "KILN_DATABASE_URL": "postgresql://u:pw@h/db"})
    shown = s.public()
    assert shown["token"] == "***" and "pw" not in shown["database_url"]
