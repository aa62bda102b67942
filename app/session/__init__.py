"""What the worker thread runs, with no Qt in it: the engine session (load, edit, probe, router
map, history), the evaluation and watch-list sessions, the router map's projections, the
messages shown to the user, and the job types the worker queues."""
