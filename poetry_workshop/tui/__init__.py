"""The Textual app: the only package that imports Textual.

Everything it does goes through the headless session core (`poetry_workshop.workshop.session`);
model calls run in thread workers whose bodies only post messages back to the screen.
"""
