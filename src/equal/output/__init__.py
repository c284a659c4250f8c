"""Writing the instruction-tuning data set with provenance."""

from equal.output.formats import FORMATS, to_record, write_dataset

__all__ = ["FORMATS", "to_record", "write_dataset"]
