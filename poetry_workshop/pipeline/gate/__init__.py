"""The quality gate: the rules a record must pass, near-duplicate detection, and the run over
a records file with its table."""
