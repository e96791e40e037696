"""Data profile and insights reports: self-contained HTML and JSON from one statistics pass.

    result = profile(table, title="Sales", target="churned")
    result.to_json()        # dict: overview, columns, alerts, correlations, ...
    result.to_html()        # str: one page, inline CSS + SVG, no network
"""

from kiln.prep.report._analysis import Alert, AlertThresholds
from kiln.prep.report._profile import ProfileResult, profile

__all__ = ["Alert", "AlertThresholds", "ProfileResult", "profile"]
