"""Write the embedded synthetic dataset in the Kaggle layout."""
from pathlib import Path

import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.data.fingerprint import refresh
from plexus.data.synthetic import generate_dataset
from plexus.runlog import logged

with logged(snakemake.log[0]):
    s = snakemake.params.settings
    out_dir = Path(snakemake.output.train).parent
    summary = generate_dataset(
        out_dir,
        n_subjects=s["n_subjects"],
        images_per_subject=s["images_per_subject"],
        n_test_subjects=s["n_test_subjects"],
        test_images_per_subject=s["test_images_per_subject"],
        seed=s["seed"],
        threads=snakemake.threads,
    )
    print({k: v for k, v in summary.items() if not isinstance(v, (list, dict))})
    refresh(out_dir, snakemake.output.fingerprint)  # what ingest compares the folder with
