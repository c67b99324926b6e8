"""Compatibility package: plugins written for the original webhook_bridge import from here."""
