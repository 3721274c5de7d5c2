"""Data: patch extraction (``prepare``), the BSDS500 download, and training batch sources."""
