"""The pack side: discovery, scan, shard plan, encode, journal, lock, the one driver, its
executors, converters of other tools' datasets, and TFDS metadata."""
