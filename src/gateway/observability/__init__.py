"""Logs, metrics and (later) the audit trail."""
