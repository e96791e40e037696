"""Contract test kits: every backend of an interface runs the same tests.

Subclass a kit in a pytest module and provide its fixture; a new backend is done
when it passes. Needs pytest (the ``dev`` extra).
"""

from kiln.testing.metadata_kit import MetadataStoreContract
from kiln.testing.object_store_kit import ObjectStoreContract

__all__ = ["MetadataStoreContract", "ObjectStoreContract"]
