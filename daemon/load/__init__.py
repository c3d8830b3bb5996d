"""The per-file load: claim, read, check, stage, merge through the warehouse, archive."""
