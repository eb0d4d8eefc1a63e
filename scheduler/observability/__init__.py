"""Logs, metrics and alerts: what the operator sees of a running scheduler."""
