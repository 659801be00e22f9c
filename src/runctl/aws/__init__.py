"""Thin typed wrappers, one per AWS service; boto3 is imported only here (and in remote/)."""
