"""Findings in the formats other systems read (OCSF)."""
