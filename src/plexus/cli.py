"""The ``plexus`` console command.

``plexus predict --results results --ensemble main --images DIR_OR_SHEET --out OUT [--device auto]``
applies a finished study to new images (:func:`plexus.study.apply.apply_study`): the ensemble's
(or a model's) networks and the decision the study kept, written as the workflow writes its test
set's: ``OUT/submission/{ensemble}.csv`` and ``.json``, ``OUT/labelmaps/{ensemble}/``. Progress goes to
stderr; a problem (an unknown ensemble, a missing network, images that do not fit) is one line on
stderr and exit status 1, raised before any network runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plexus", description="plexus: segmentation studies as a workflow.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    predict = commands.add_parser(
        "predict", help="apply a finished study to new images",
        description="Apply a finished study's ensemble, with the decision it kept (TTA, cutoff and area, gate, "
                    "post-processing, regions or instances), to a folder or sheet of images. Writes "
                    "OUT/submission/ENSEMBLE.csv and .json and OUT/labelmaps/ENSEMBLE/ as the workflow writes "
                    "them for the study's test set.")
    predict.add_argument("--results", type=Path, default=Path("results"),
                         help="the finished study's results folder (default: results)")
    predict.add_argument("--ensemble", required=True, help="an ensemble of the study (or one of its models)")
    predict.add_argument("--images", type=Path, required=True,
                         help="a folder of images (ids: the file stems), a sample sheet (its test rows), or a "
                              "folder in the study's raw layout (its test images)")
    predict.add_argument("--out", type=Path, required=True, help="the folder to write into")
    predict.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    predict.add_argument("--threads", type=int, default=1,
                         help="torch threads (default 1, as the workflow's prediction jobs; on a CPU another "
                              "count may change the last bits of the probabilities)")
    predict.add_argument("--masks", type=Path, default=None,
                         help="score a labelled set: a folder of the images' masks (ID.png or ID_mask.png, any "
                              "image type) or a sample sheet (its test rows' mask cells); writes OUT/heldout.csv and "
                              ".md as the workflow's results/tables/heldout.* (the masks never reach the prediction)")
    predict.add_argument("--keep-probs", action="store_true",
                         help="keep each member's fold and mean probabilities in OUT/test_probs/")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "predict":
        return _predict(args)
    return 2  # argparse refuses unknown commands before this


def _predict(args) -> int:
    from plexus.study.apply import apply_study, one_line

    if args.threads < 1:
        print("plexus predict: error: --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        apply_study(args.results, args.ensemble, args.images, args.out, device=args.device, threads=args.threads,
                    keep_probs=args.keep_probs, masks=args.masks)
    except KeyboardInterrupt:
        print("plexus predict: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, KeyError) as error:
        # the study's, the images' and the data checks' errors name the file and the problem
        print(f"plexus predict: error: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
