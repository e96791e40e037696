"""kiln automl-jobs: list, describe, report and candidate scripts of AutoML jobs."""

from kiln.cli.automl import jobs_app as app

__all__ = ["app"]
