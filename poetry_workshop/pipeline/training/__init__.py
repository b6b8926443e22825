"""From records to a published GGUF: training sets, chat examples with the loss mask, the base
model, the device and dtype, the memory plan, the LoRA trainer and its callbacks, and export
(merge, convert, quantize, validate)."""
