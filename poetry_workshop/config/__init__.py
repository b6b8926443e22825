"""Settings: the TOML files under config/, the user file, the environment and flags, layered
and checked against typed schemas (`schema`) by the loader (`loader`)."""
