"""REST: /v1/catalog (the offline catalog of public datasets)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from kiln.lake._models import DatasetVersion
from kiln.lake.catalog import CatalogEntry, CatalogService
from kiln.server._roles import KilnRoute
from kiln.server.deps import service

router = APIRouter(prefix="/v1/catalog", tags=["catalog"], route_class=KilnRoute)

Svc = CatalogService


class CatalogImport(BaseModel):
    name: str | None = None


@router.get("", response_model=list[CatalogEntry])
def list_entries(available: bool | None = None, svc: Svc = service(CatalogService)) -> list[CatalogEntry]:
    return svc.list(available=available)


@router.get("/{entry_id}", response_model=CatalogEntry)
def show(entry_id: str, svc: Svc = service(CatalogService)) -> CatalogEntry:
    return svc.get(entry_id)


@router.post("/{entry_id}/import", response_model=DatasetVersion, status_code=201)
def import_entry(entry_id: str, body: CatalogImport | None = None, svc: Svc = service(CatalogService)) -> DatasetVersion:
    """Make a catalog entry a Kiln dataset; its source and lineage name the entry."""
    return svc.import_(entry_id, name=(body or CatalogImport()).name)
