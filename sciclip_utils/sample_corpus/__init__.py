"""The generated sample corpus: realistic arXiv, PMC, web-pool and eval-set data for the whole study on a CPU.

Not a pipeline stage: it stands in for the real inputs. :mod:`.generate` writes the corpus
(``sciclip sample-corpus OUT``); the other modules are its generators (figures, natural images, caption
text, arXiv papers, PMC articles, eval sets), byte-deterministic packing (:mod:`.io`) and the previews the
first notebook shows (:mod:`.preview`).
"""

from sciclip_utils.sample_corpus.generate import SIZES, CorpusSummary, generate_sample_corpus

__all__ = ["SIZES", "CorpusSummary", "generate_sample_corpus"]
