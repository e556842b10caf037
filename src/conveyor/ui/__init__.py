"""The dashboard: `conveyor ui` serves a read-only page of a project's release line.

Stages (what is live, since when, signed by whom, as a timeline), releases waiting for approval (who may approve,
until when, the command that does), builds (lineage, tests, coverage, gates, attestations), models (versions per
environment, each gate metric across builds with the champion marked) and the audit of the signed ledger. It
reads through the same public functions as the CLI's `--json` (`conveyor.release.read_snapshot`, the package
and registry rooms), changes nothing, and draws its charts as SVG on the server.
"""

from conveyor.ui.app import DashboardApp, create_app
from conveyor.ui.server import DEFAULT_HOST, DEFAULT_PORT, is_loopback, serve_dashboard

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DashboardApp", "create_app", "is_loopback", "serve_dashboard"]
