"""Grafana as code: dashboards, alert rules and the SQL macro expander that tests them.

The dashboards are built with the official `grafana-foundation-sdk`, once per warehouse
flavour (PostgreSQL, Redshift), and written to `infra/grafana/` by `provisioning`.
"""
