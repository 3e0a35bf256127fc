"""Submission stage: fold-averaged test probabilities -> post-processing decided on OOF -> RLE CSV."""

from __future__ import annotations

import numpy as np

from plexus.io import atomic
from plexus.io.contracts import read_aligned, read_json, read_manifest


def submission_stage(member_means, postprocess_json, csv_path, json_path, batch_size: int = 64,
                     manifest_csv=None) -> dict:
    """Apply ``results/postprocess/{name}.json``'s pipeline once to the members' averaged maps.

    The presence gate (two-head members) uses the presence probability averaged over
    folds (``mean.npz``) and over the members that have one, as in tuning. A ``tta``
    pipeline reads the flip-averaged arrays; a ``crf`` one the test images of the manifest.
    """
    from plexus.postprocess.candidates import PostProcess
    from plexus.postprocess.submission import encode_masks, submission_frame, write_submission

    decided = read_json(postprocess_json)
    pipeline = PostProcess(**decided["pipeline"])
    suffix = "_tta" if pipeline.tta else ""
    runs = read_aligned(member_means)
    missing = [str(path) for path, run in zip(member_means, runs) if f"prob{suffix}" not in run]
    if missing:
        raise ValueError(f"{', '.join(missing)}: no 'prob{suffix}' array for the decided pipeline; "
                         "rerun the test predictions with predict.tta set")
    presences = [r[f"presence{suffix}"] for r in runs if f"presence{suffix}" in r]
    presence = np.mean(presences, axis=0) if presences else None
    image_paths = None
    if pipeline.crf:
        manifest = read_manifest(manifest_csv).set_index("image_id")
        image_paths = manifest.loc[runs[0]["image_id"].astype(str), "image_path"].astype(str).tolist()
    pixels = encode_masks([r[f"prob{suffix}"] for r in runs], pipeline.cutoff, pipeline.min_area,
                          batch_size=batch_size, pipeline=pipeline, presence=presence, image_paths=image_paths,
                          crf_settings=decided.get("crf_settings"))
    frame = submission_frame(runs[0]["image_id"], pixels)
    summary = write_submission(frame, csv_path)
    summary.update(pipeline=pipeline.to_dict(), members=decided.get("members"))
    atomic.write_json(json_path, summary)
    print(f"{summary['rows']} rows, {summary['empty']} empty, {summary['bytes']} bytes; {pipeline}")
    return summary
