"""Editing a loaded model: `ElderEditor` (the Python API), the training loop of one edit,
probing (original vs edited output, the router's view), the scoped router's negatives and keys,
state files, and the events an edit yields."""
