"""ELDER Workbench engine: everything that is not a screen (no Qt here)."""
