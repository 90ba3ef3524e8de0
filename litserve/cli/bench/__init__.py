"""``litserve bench``: an efficient HTTP load generator with latency percentiles."""
