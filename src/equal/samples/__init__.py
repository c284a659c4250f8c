"""Real sample data built from registry packages: the demo corpus and reference set."""
