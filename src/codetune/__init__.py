"""codetune: fine-tune small causal LMs for code with LoRA and measure what it buys, with error bars."""

__version__ = "0.1.0"
