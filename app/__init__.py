"""ELDER Workbench desktop application (PySide6). Start it with `python main.py`.

Layers: `worker` (one QThread owns the model; jobs are generators), `engine_session` and
`eval_session` (job bodies that call the engine, worker thread only), `controller` (the
GUI-thread model that re-publishes job outcomes as Qt signals), and the widgets in `panels`.
"""

__version__ = "0.1.0"
