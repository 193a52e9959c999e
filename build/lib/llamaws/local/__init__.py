"""The local emulator of ``llamactl serve``: ``llamaws serve``."""
