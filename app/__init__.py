"""ELDER Workbench desktop application (PySide6). Start it with `python main.py`.

Layers: `worker` (one QThread owns the model; jobs are generators), `session/` (the job
bodies that call the engine, worker thread only, no Qt), `controller` (the
GUI-thread model that re-publishes job outcomes as Qt signals), and the widgets in `panels`.
"""

__version__ = "0.1.0"
