"""The on-disk format: TFRecord framing and index files, the record schema, the manifest and
the options it records, statistics, file names, and the checks of one record."""
