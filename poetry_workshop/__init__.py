"""Poetry Workshop: a local-first poetry studio where an Educator and a Poet work with a person.

The package is layered; each layer imports only the ones below it (the contracts are in
pyproject.toml, checked by import-linter in the tests):

    cli, tui          the two front ends: the `workshop` command and the Textual app
    evaluation        the workshop eval: metrics, the Claude judge, reports
    pipeline          building the models: teaching data, the gate, training, export, the build chain
    verse             measures of a text: LLM-isms, syllables and rhyme, briefs, quotations
    workshop          the loop: sessions, the revision tree store, prompts, persona, transcripts
    inference         local models through llama.cpp: engine, backend, GGUF files, model choice
    config            typed, layered settings
    errors, locations, files, names    the base every layer shares

ARCHITECTURE.md walks through it.
"""

__version__ = "0.1.0"
