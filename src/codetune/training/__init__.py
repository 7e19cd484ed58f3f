"""LoRA fine-tuning with a plain training loop: loss on target tokens only, padding per batch.

Why not HF Trainer: we need exact control of batching (length-grouped, no pad-to-max), bf16 autocast
on CPU, real-token throughput accounting and step-level checkpoints that resume bit-for-bit.

    plan.py        encode, batches and pieces of every step (StepPlan), fixed before the first step
    forward.py     the loss of a piece: transformers + PEFT or the fused forward, chosen once
    fused.py       the fused forward for Llama-family models with LoRA on q/k/v/o
    kernels.py     CPU fast paths: bits dropout, fp32 attention, the chunked LM head + loss
    steps.py       step runners: serial, or data-parallel threads with a fixed gradient sum
    checkpoint.py  step checkpoints that resume bit for bit
    result.py      TrainResult, and the adapter saved with it
    loop.py        train(): the above, one optimizer step at a time
"""

from codetune.training.loop import train
from codetune.training.plan import count_tokens, encode
from codetune.training.result import TrainResult, load_train_result, save_adapter

__all__ = ["TrainResult", "count_tokens", "encode", "load_train_result", "save_adapter", "train"]
