"""The read side: which shards paths mean, where records come from, the TensorFlow decode
graph, crops, ``dataset()``, decoding to files, previews. Never imports the pack side."""
