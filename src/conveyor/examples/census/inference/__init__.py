"""Inference code for the census wage model: the model wrapper and the request/response transforms."""
