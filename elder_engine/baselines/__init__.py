"""Baseline editing methods, run in the same harness as ELDER: sequential LoRA (peft), FT-L
(constrained fine-tuning) and GRACE (a key-value codebook). Each edits the same FFN module of
the same blocks ELDER wraps (`elder.resolve_targets`)."""

from .common import BaselineConfig, BaselineEditor
from .ft_l import FtlEditor, FtlSettings
from .grace import GraceEditor, GraceSettings
from .lora import LoraEditor, LoraSettings

BASELINES = {"lora": LoraEditor, "ft-l": FtlEditor, "grace": GraceEditor}

__all__ = ["BASELINES", "BaselineConfig", "BaselineEditor", "FtlEditor", "FtlSettings", "GraceEditor",
           "GraceSettings", "LoraEditor", "LoraSettings"]
