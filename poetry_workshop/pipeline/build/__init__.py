"""The build chain: its plan and saved state, the local and Modal backends, the chain runner,
checksum sync with Modal volumes, the Modal app and its `modal run` entry point."""
