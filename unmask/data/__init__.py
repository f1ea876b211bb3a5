"""Data: readers for real datasets a user supplies (Market-1501, CelebA, LFW, insightface ``.bin``)
and the P×K sampler for batch-hard mining. Nothing here downloads."""
