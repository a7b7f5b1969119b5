"""Sub-commands of the ``edge-se`` command line, one module each (discovered automatically)."""
