"""Python heap settings after a model load (no Qt: the worker's job bodies call it)."""


def settle_heap() -> None:
    """Collect once and move every surviving object into the permanent GC generation.

    A model, PyTorch, transformers and matplotlib leave a few million long-lived Python
    objects; a full collection then takes 300-450 ms on a busy two-core machine (measured),
    holding the GIL, which stops the GUI thread mid-frame. Frozen objects are skipped by
    later collections. Called after a model load, when those objects have just been made;
    unfreezing first lets the previous model's cycles go.
    """
    import gc

    gc.unfreeze()
    gc.collect()
    gc.freeze()
