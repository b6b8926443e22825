"""The Claude API: calls with one retry policy and structured output, Message Batches, and
the ledger of what every call cost."""
