"""Fetching the real data: arXiv bulk sources, PMC OA articles, the DataComp pool and its eval sets.

``sciclip fetch arxiv|pmc|commonpool|evalsets`` download what the paper's ``small`` setup needs, each
resumable (a rerun skips what is complete and verified, continues partial files) and each printing the
amount (and, for requester-pays S3, the transfer cost) before it downloads. Expected sizes:

- arXiv: requester-pays bucket ``s3://arxiv/src/``, one ~0.5 GB tar per ~1,000-3,000 papers of a month
  (``arXiv_src_YYMM_NNN.tar``; all of 2019-2022 is several TB); transfer out of us-east-1 costs about
  $0.09/GB (``--price-per-gb``), nothing within us-east-1.
- PMC OA: the free ``s3://pmc-oa-opendata`` bucket (no credentials, no charge), one folder per article
  version; only the XML, the metadata JSON and the images are fetched (a few MB per article).
- CommonPool ``small``: 12.8M samples; the metadata parquets are ~1.3 GB, the images (512 px JPEGs)
  about 450 GB at ~35 KB each; roughly 10-20% of the URLs fail (dead links).
- Eval sets: DataComp's 38 (+2 fairness) test sets from Hugging Face, about 50 GB.

Modules: :mod:`.transfer` (S3 and HTTP transfers, checksums, costs, shared defaults), :mod:`.hf`
(Hugging Face dataset repos), and one module per source, each with ``cli_configure``/``cli_run``.
"""
