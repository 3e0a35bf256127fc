"""Submission stage: fold-averaged test probabilities -> post-processing decided on OOF -> RLE CSV."""

from __future__ import annotations

import numpy as np

from plexus.io import atomic
from plexus.io.contracts import read_aligned, read_json


def submission_stage(member_means, postprocess_json, csv_path, json_path, batch_size: int = 64) -> dict:
    """Apply ``results/postprocess/{name}.json``'s pipeline once to the members' averaged maps.

    The presence gate (two-head members) uses the presence probability averaged over
    folds (``mean.npz``) and over the members that have one, as in tuning.
    """
    from plexus.postprocess.candidates import PostProcess
    from plexus.postprocess.submission import encode_masks, submission_frame, write_submission

    decided = read_json(postprocess_json)
    pipeline = PostProcess(**decided["pipeline"])
    runs = read_aligned(member_means)
    presences = [r["presence"] for r in runs if "presence" in r]
    presence = np.mean(presences, axis=0) if presences else None
    pixels = encode_masks([r["prob"] for r in runs], pipeline.cutoff, pipeline.min_area, batch_size=batch_size,
                          pipeline=pipeline, presence=presence)
    frame = submission_frame(runs[0]["image_id"], pixels)
    summary = write_submission(frame, csv_path)
    summary.update(pipeline=pipeline.to_dict(), members=decided.get("members"))
    atomic.write_json(json_path, summary)
    print(f"{summary['rows']} rows, {summary['empty']} empty, {summary['bytes']} bytes; {pipeline}")
    return summary
