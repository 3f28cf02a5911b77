"""Checking datasets: what shards hold (``inspect``) and whether every byte is right
(``verify``). No TensorFlow."""
