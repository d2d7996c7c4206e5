"""Decontamination: drop training samples whose image is a near-duplicate of an evaluation image.

- :mod:`.descriptors`: image descriptors (``dct`` offline, ``isc`` DataComp's ISC21 network);
- :mod:`.search`: nearest evaluation image per training image;
- :mod:`.stage`: :func:`decontaminate` and :func:`decontamination_plan` (a profile's inputs and outputs);
- :mod:`.calibration`: thresholds from web-style near-duplicates of an image population of its own;
- :mod:`.cli`: ``sciclip decontaminate``.

Eval sets are found by :mod:`sciclip_utils.evalsets`, shared with evaluation.
"""

from sciclip_utils.decontam.calibration import Calibration, calibrate, calibration_images, web_near_duplicate
from sciclip_utils.decontam.descriptors import (
    DCT_THRESHOLD,
    ISC_CHECKPOINT,
    ISC_THRESHOLD,
    DCTDescriptor,
    Descriptor,
    ISCDescriptor,
    build_isc_network,
    decode_image,
    get_descriptor,
    load_isc_state_dict,
)
from sciclip_utils.decontam.search import nearest
from sciclip_utils.decontam.stage import (
    SCORE_COLUMNS,
    DecontaminationPlan,
    DecontaminationReport,
    decontaminate,
    decontamination_plan,
)

__all__ = [
    "DCT_THRESHOLD", "ISC_CHECKPOINT", "ISC_THRESHOLD", "SCORE_COLUMNS", "Calibration", "DCTDescriptor",
    "DecontaminationPlan", "DecontaminationReport", "Descriptor", "ISCDescriptor", "build_isc_network",
    "calibrate", "calibration_images", "decode_image", "decontaminate", "decontamination_plan",
    "get_descriptor", "load_isc_state_dict", "nearest", "web_near_duplicate",
]  # fmt: skip
