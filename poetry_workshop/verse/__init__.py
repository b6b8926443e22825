"""Measures of a text, with no model: LLM-isms, syllables, rhyme and stanza shape, what a brief
asks for, quotations in a critique and the shape of a critique or a revision. The gate and
the eval share them."""
