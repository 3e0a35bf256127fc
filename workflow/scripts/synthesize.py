"""Write the embedded synthetic dataset in the Kaggle layout."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.runlog import logged  # noqa: E402
from plexus.synthetic import generate_dataset  # noqa: E402

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
    )
    print({k: v for k, v in summary.items() if not isinstance(v, (list, dict))})
