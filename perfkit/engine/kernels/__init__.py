"""Kernel closed forms: seconds of one kernel call from its shape and the chip's peaks (fitted per system)."""
from . import attention

#: kernel family -> the module holding its closed form and PARAMS bounds.
FAMILIES = {
    "context_attention": attention,
    "generation_attention": attention,
    "context_mla": attention,
    "generation_mla": attention,
}
