"""Insight: what the history says, computed once for the API and the CLI alike.

Error groups and their trends (errors.py), performance analysis (analysis.py), export
(export.py) and replay (replay.py). Each reads through the store protocol, so every
figure is the same on every backend.
"""
