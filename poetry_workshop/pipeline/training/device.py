"""Where training runs and in which number format: CUDA, Apple's GPU (MPS) or the CPU.

The choice is plain logic over a few probes (`Probes`), so every branch can be tested on a
machine that has none of those devices; `probe()` is the only part that asks torch.

- CUDA: the base in bf16 with bf16 mixed precision, fp16 on GPUs without bf16 (T4, V100).
  Gradient checkpointing on: memory is what limits a GPU, and recomputation is cheap there.
  4-bit (QLoRA) is possible only here: bitsandbytes needs CUDA.
- MPS: the base in bf16 where macOS 14+ supports it (transformers' own test), else fp16, and
  no mixed-precision flag: the frozen base is already half precision, peft keeps the LoRA
  weights in fp32, and the Trainer refuses `bf16=True` on MPS before macOS 14. fp32 would
  double the memory of unified RAM the whole machine shares. Checkpointing on, as on CUDA.
- CPU: fp32 and no checkpointing. bf16 matmuls are emulated on most CPUs and checkpointing
  runs every forward twice; both cost far more than they save (trainer.py's docstring).

The merge always runs on the CPU (gguf_export loads the base there): in bf16, which halves
fp32's memory (8B: 16 GB instead of 32 GB), or fp16 where this torch cannot compute in bf16.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_VALUE = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Probes:
    """What the machine offers, as torch reports it."""

    cuda: bool = False
    cuda_bf16: bool = False
    mps: bool = False
    mps_bf16: bool = False  # macOS 14 or newer
    cpu_bf16: bool = True
    gpu_name: str = ""


@dataclass(frozen=True)
class TrainingDevice:
    """The device a run trains on, the dtype the base loads in, and the Trainer's flags."""

    kind: str  # "cuda", "mps" or "cpu"
    dtype: str  # torch dtype name of the base's weights
    mixed_precision: str | None  # "bf16", "fp16" or None: the Trainer flag to set
    gradient_checkpointing: bool
    name: str = ""  # the GPU's name, for messages

    @property
    def can_load_4bit(self) -> bool:
        return self.kind == "cuda"

    @property
    def use_cpu(self) -> bool:
        return self.kind == "cpu"

    def trainer_flags(self) -> dict:
        """The SFTConfig settings that follow from the device (both precision flags are set,
        because trl's SFTConfig turns bf16 on by default)."""
        return {"bf16": self.mixed_precision == "bf16", "fp16": self.mixed_precision == "fp16",
                "gradient_checkpointing": self.gradient_checkpointing}

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def describe(self) -> str:
        where = f"{self.kind} ({self.name})" if self.name else self.kind
        return f"{where}, {self.dtype}"


def choose_training_device(probes: Probes) -> TrainingDevice:
    if probes.cuda:
        half = "bfloat16" if probes.cuda_bf16 else "float16"
        return TrainingDevice("cuda", half, "bf16" if probes.cuda_bf16 else "fp16", True, probes.gpu_name)
    if probes.mps:
        return TrainingDevice("mps", "bfloat16" if probes.mps_bf16 else "float16", None, True, "Apple GPU")
    return TrainingDevice("cpu", "float32", None, False)


def choose_merge_dtype(probes: Probes) -> str:
    """The dtype the merge loads the base in (on the CPU): never fp32, never 4-bit."""
    return "bfloat16" if probes.cpu_bf16 else "float16"


def probe() -> Probes:
    """Ask torch what this machine has (imports torch: about two seconds)."""
    import torch

    cuda = torch.cuda.is_available()
    mps = not cuda and torch.backends.mps.is_available()
    try:
        torch.ones(2, 2, dtype=torch.bfloat16) @ torch.ones(2, 2, dtype=torch.bfloat16)
        cpu_bf16 = True
    except RuntimeError:  # a torch build without bf16 kernels for this CPU
        cpu_bf16 = False
    return Probes(cuda=cuda, cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
                  mps=mps, mps_bf16=mps and torch.backends.mps.is_macos_or_newer(14, 0),
                  cpu_bf16=cpu_bf16, gpu_name=torch.cuda.get_device_name() if cuda else "")


def training_device() -> TrainingDevice:
    return choose_training_device(probe())


def merge_dtype() -> str:
    return choose_merge_dtype(probe())
