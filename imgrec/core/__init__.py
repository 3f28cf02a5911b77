"""The bottom layer: errors, optional dependencies, storage (local paths or URLs), spooled
sequences, progress callbacks. Imports nothing else of imgrec."""
