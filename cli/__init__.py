"""The ``llamaws`` command line."""
