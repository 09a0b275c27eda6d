"""The Llama 3 recipe, stage by stage."""
__version__ = "0.1.0"
