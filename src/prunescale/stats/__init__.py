"""The statistics every number in a report comes from, one small module each (see docs/METHODS.md)."""
