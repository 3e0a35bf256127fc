"""Write the embedded synthetic dataset of the generic workflow (multiclass or multichannel) and its sheet."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.data import synthetic_semantic
from plexus.data.fingerprint import refresh
from plexus.runlog import logged

GENERATORS = {"multiclass": synthetic_semantic.generate_multiclass,
              "multichannel": synthetic_semantic.generate_multichannel}

with logged(snakemake.log[0]):
    p = snakemake.params
    sheet = GENERATORS[p.kind](p.raw, **p.settings)
    print(f"{p.kind}: {(sheet['split'] == 'train').sum()} train and {(sheet['split'] == 'test').sum()} test images")
    # what the manifest compares the folder with (the sheet is a tracked input of its own)
    refresh(p.raw, snakemake.output.fingerprint, subfolders=None, exclude=("sheet.tsv",))
