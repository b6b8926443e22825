"""The workshop loop, headless: sessions of drafts and critiques, the revision tree in SQLite,
the prompts and persona that steer the two roles, transcripts, and the studio that wires them."""
