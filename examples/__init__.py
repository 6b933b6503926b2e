"""Examples of user code for mmc-sweep: a model of your own (`custom_model.py`) and a sweep that uses it."""
