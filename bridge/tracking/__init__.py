"""Execution tracking: record lifecycle, error classification, truncation, live metrics."""
