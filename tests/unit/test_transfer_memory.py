"""What a download may hold in memory: the writer's queue and one read per request in flight,
together under part size x concurrency for every tuning the config allows."""

from __future__ import annotations

import pytest

from runctl.aws.s3_transfer import MB, TransferSettings


@pytest.mark.parametrize("chunk_mb", [5, 8, 16, 64])
@pytest.mark.parametrize("concurrency", [1, 2, 16, 64])
def test_download_buffers_stay_under_part_size_times_concurrency(
    chunk_mb: int, concurrency: int
) -> None:
    settings = TransferSettings.from_megabytes(
        multipart_threshold_mb=16, multipart_chunksize_mb=chunk_mb, max_concurrency=concurrency
    )
    config = settings.transfer_config()
    queued = config.max_io_queue_size * config.io_chunksize
    reading = config.max_request_concurrency * config.io_chunksize
    assert queued <= max(chunk_mb * MB, 4 * config.io_chunksize)
    assert queued + reading <= chunk_mb * MB * concurrency + 4 * config.io_chunksize
