"""The offline catalog (Data Exchange): real public datasets that ship inside packages,
and bundles that move a dataset with all its versions between workspaces."""

from kiln.lake.catalog._service import CatalogEntry, CatalogService

__all__ = ["CatalogEntry", "CatalogService"]
