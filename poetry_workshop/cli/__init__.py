"""The `workshop` command: one parser built from a table of command groups (`main`), shared
options (`options`), and a module per group. Parsing and printing only; the work is below."""
