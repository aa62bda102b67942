"""The window's panels (Qt widgets, GUI thread): edit form, probe, router view and map, history,
watch list, evaluation, training plot. They subscribe to the controller's signals and call its
methods; none of them runs the model (that is the worker's, through app/session)."""
