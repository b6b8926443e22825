"""Local models: GGUF files read and checked, one llama.cpp model per role on its own thread,
which file serves which role, and the starter model."""
