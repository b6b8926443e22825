"""Poetry Workshop: a local-first poetry studio where an Educator and a Poet work with a person.

The package is a headless core (config, engine, session, store) with front ends on top
(the command line and batch runner now; the Textual app later). Nothing in the core
imports a front end.
"""

__version__ = "0.1.0"
