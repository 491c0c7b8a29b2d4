"""Results on disk: the only code that finds, reads, validates and writes results, samples and metadata files."""
