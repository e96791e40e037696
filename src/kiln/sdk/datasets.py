"""SDK: datasets."""

from kiln.sdk._base import Namespace


class Datasets(Namespace):
    pass
