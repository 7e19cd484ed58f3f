"""`codetune export`: a trained LoRA adapter as a plain model others can run.

`merge` finds the adapter's base model, loads both and folds the adapter into the base's weights (a normal
Hugging Face directory, no peft needed to load it). `gguf_export` writes that merged model as one GGUF file
for llama.cpp, Ollama and LM Studio (f16 or q8_0), with `gguf_vocab` supplying the tokenizer metadata: copied
from the base's own GGUF when it came from one (the bundled model did), else built from the HF tokenizer.
"""

from __future__ import annotations

from codetune.errors import CodetuneError


class ExportError(CodetuneError):
    """A model, adapter or output that cannot be exported as asked."""
