"""Weight files: read, strict load, config detection, key remapping."""
from .state import WEIGHT_SUFFIXES, CheckpointError, load_strict, read_state_dict, save_state_dict

__all__ = ["CheckpointError", "read_state_dict", "save_state_dict", "load_strict", "WEIGHT_SUFFIXES"]
