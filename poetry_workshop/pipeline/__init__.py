"""The model-building pipeline (generate, gate, prepare, train, export).

Empty of logic for now: the stages arrive with their own issues. Every stage will be a
plain function that runs in-process or on Modal.
"""
