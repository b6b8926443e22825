"""From records to a published GGUF: training sets, chat examples with the loss mask, the base
model, the LoRA trainer and its callbacks, and export (merge, convert, quantize, validate)."""
