"""CSV downloads that are safe to open in a spreadsheet."""

from __future__ import annotations

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    """Stop spreadsheet formula injection from values people typed (a leading quote)."""
    return "'" + value if value[:1] in _FORMULA_PREFIXES else value
