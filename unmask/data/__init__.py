"""The data layer: every dataset and sampler, with one batch-key contract (:mod:`unmask.data.batch`).

* :mod:`unmask.data.batch`: the keys a batch may hold (``masked``, ``target``, ``mask``, ``image``,
  ``identity``, ``camera``, ``attributes``, ``w_plus``), their shapes and a checker.
* :mod:`unmask.data.world`: datasets over the teaching world, rendered on demand (unmasking pairs,
  identity images, re-id views, verification pairs).
* :mod:`unmask.data.pairs`: the trainers' paired sources (world, pooled world, folders of aligned faces)
  and the GAN's clean faces.
* :mod:`unmask.data.identity`: image sources held in memory, the one :class:`~unmask.data.identity.ReIDSet`,
  the one :class:`~unmask.data.identity.PairSet` and the one verification protocol.
* :mod:`unmask.data.readers`: readers for real datasets a user supplies (Market-1501, CelebA, LFW,
  insightface ``.bin``); nothing here downloads.
* :mod:`unmask.data.sampler`: the P×K sampler for batch-hard mining.
"""
