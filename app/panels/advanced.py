"""The "Advanced" ELDER settings: per-edit training settings and the deferral switch."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QSpinBox, QWidget,
)

from elder_engine import DEFAULT_PROFILE, get_profile, profile_names

TRAINING_KEYS = ("learning_rate", "max_steps", "early_stop_loss", "guide_lambda", "max_batch")


class AdvancedSettings(QWidget):
    """Training settings go with each edit (EditRequest.settings); deferral and epsilon act
    on the engine at once (`inference_changed`)."""

    inference_changed = Signal(dict)
    training_changed = Signal(dict)
    profile_requested = Signal(str)      # the user picked another engine profile

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.profile = QComboBox()
        self.profile.addItems(list(profile_names()))
        self.profile.setCurrentText(DEFAULT_PROFILE)
        self.profile.setToolTip("The engine's ELDER profile. Picking another one reloads the model with it "
                                "(each profile keeps its own history) and fills the training settings below.")
        self.learning_rate = QDoubleSpinBox(decimals=6, minimum=1e-6, maximum=1.0, singleStep=1e-5)
        self.max_steps = QSpinBox(minimum=1, maximum=2000)
        self.early_stop = QCheckBox("stop below CE")
        self.early_stop_loss = QDoubleSpinBox(decimals=3, minimum=0.001, maximum=20.0, singleStep=0.05)
        self.guide_lambda = QDoubleSpinBox(decimals=4, minimum=0.0, maximum=100.0, singleStep=0.001)
        self.max_batch = QSpinBox(minimum=1, maximum=64)
        self.deferral = QCheckBox("defer when no edit is near")
        self.epsilon = QSpinBox(minimum=0, maximum=1024)
        self.scope = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05)
        self.architecture = QLabel("—")
        self.architecture.setProperty("role", "hint")
        self.architecture.setWordWrap(True)

        tips = {
            self.learning_rate: "Adam learning rate of an edit (paper: 1e-4)",
            self.max_steps: "Training iterations per edit (paper: 50)",
            self.early_stop_loss: "Stop an edit once the target's cross-entropy is below this",
            self.guide_lambda: "λ: weight of the guided loss that pushes the router to the edit's preset experts",
            self.max_batch: "Prompt plus training paraphrases per step, at most",
            self.epsilon: "Experts fire only when the query's code is within this Hamming distance of an edit's",
            self.scope: "Keyed routing: an edit's experts fire only when the query's key similarity reaches this",
        }
        for widget, tip in tips.items():
            widget.setToolTip(tip)

        early = QHBoxLayout()
        early.setContentsMargins(0, 0, 0, 0)
        early.addWidget(self.early_stop)
        early.addWidget(self.early_stop_loss, 1)
        form = QFormLayout(self)
        form.setContentsMargins(14, 2, 0, 2)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(6)
        form.addRow("Profile", self.profile)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Max steps", self.max_steps)
        form.addRow("Early stop", early)
        form.addRow("Guide λ", self.guide_lambda)
        form.addRow("Max batch", self.max_batch)
        form.addRow("Deferral", self.deferral)
        form.addRow("ε (Hamming)", self.epsilon)
        form.addRow("Scope (similarity)", self.scope)
        form.addRow("Layers", self.architecture)

        self.fill_from_profile(DEFAULT_PROFILE)
        self.profile.activated.connect(lambda _i: self.profile_requested.emit(self.profile.currentText()))
        self.early_stop.toggled.connect(self.early_stop_loss.setEnabled)
        for widget in (self.learning_rate, self.guide_lambda, self.early_stop_loss):
            widget.valueChanged.connect(self._training_changed)
        for widget in (self.max_steps, self.max_batch):
            widget.valueChanged.connect(self._training_changed)
        self.early_stop.toggled.connect(self._training_changed)
        self.deferral.toggled.connect(self._inference_changed)
        self.epsilon.editingFinished.connect(self._inference_changed)
        self.scope.editingFinished.connect(self._inference_changed)
        self._quiet = False

    # ------------------------------------------------------------------ values
    def fill_from_profile(self, name: str) -> None:
        config = get_profile(name)
        self.set_training({k: getattr(config, k) for k in TRAINING_KEYS})

    def set_training(self, values: dict) -> None:
        self._quiet = True
        try:
            if "learning_rate" in values:
                self.learning_rate.setValue(float(values["learning_rate"]))
            if "max_steps" in values:
                self.max_steps.setValue(int(values["max_steps"]))
            if "guide_lambda" in values:
                self.guide_lambda.setValue(float(values["guide_lambda"]))
            if "max_batch" in values:
                self.max_batch.setValue(int(values["max_batch"]))
            if "early_stop_loss" in values:
                stop = values["early_stop_loss"]
                self.early_stop.setChecked(stop is not None)
                self.early_stop_loss.setEnabled(stop is not None)
                if stop is not None:
                    self.early_stop_loss.setValue(float(stop))
        finally:
            self._quiet = False
        self._training_changed()

    def training(self) -> dict:
        return {
            "learning_rate": self.learning_rate.value(),
            "max_steps": self.max_steps.value(),
            "early_stop_loss": self.early_stop_loss.value() if self.early_stop.isChecked() else None,
            "guide_lambda": self.guide_lambda.value(),
            "max_batch": self.max_batch.value(),
        }

    def set_profile(self, name: str, fill: bool = False) -> None:
        """Show `name` as the engine's profile (no signal); `fill` also loads its training settings."""
        self.profile.blockSignals(True)
        self.profile.setCurrentText(name)
        self.profile.blockSignals(False)
        if fill:
            self.fill_from_profile(name)

    def show_engine(self, config: dict, blocks: Optional[list[int]] = None) -> None:
        """Show the loaded engine's profile, deferral settings and layer layout."""
        self.set_profile(str(config.get("profile", DEFAULT_PROFILE)))
        keyed = config.get("routing", "router") == "keyed"
        scoped = config.get("routing", "router") == "scoped"
        self.epsilon.setEnabled(not keyed and not scoped)
        # the scoped router calibrates a threshold per edit: there is no global one to set
        self.scope.setEnabled(keyed or bool(config.get("key_scope")))
        self.deferral.blockSignals(True)
        self.scope.blockSignals(True)
        self.scope.setValue(float(config.get("scope_threshold", 0.5)))
        self.scope.blockSignals(False)
        self.epsilon.blockSignals(True)
        self.deferral.setChecked(bool(config.get("deferral", True)))
        bits = int(config.get("num_edit_layers", 6)) * int(config.get("num_experts", 4))
        self.epsilon.setMaximum(bits + 1)
        self.epsilon.setValue(int(config.get("epsilon", 12)))
        self.deferral.blockSignals(False)
        self.epsilon.blockSignals(False)
        where = f" (blocks {blocks[0]}–{blocks[-1]})" if blocks else ""
        routing = (f"keyed routing, similarity ≥ {config.get('scope_threshold')}" if keyed
                   else "scoped router on block " + str(config.get("scope_block")) + " states, one expert per edit, "
                        "thresholds calibrated per edit" if scoped
                   else f"N = {config.get('num_experts')} experts, top-k = {config.get('top_k')}")
        self.architecture.setText(
            f"L = {config.get('num_edit_layers')} MoLoRA layers{where}, {routing}, rank {config.get('rank')}, "
            f"α = {config.get('lora_alpha'):g}")

    def _training_changed(self, *_args) -> None:
        if not self._quiet:
            self.training_changed.emit(self.training())

    def inference(self) -> dict:
        return {"deferral": self.deferral.isChecked(), "epsilon": self.epsilon.value(),
                "scope_threshold": round(self.scope.value(), 4)}

    def _inference_changed(self, *_args) -> None:
        self.inference_changed.emit(self.inference())
