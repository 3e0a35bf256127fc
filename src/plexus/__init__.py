"""plexus: cross-validated, tuned, ensembled segmentation of ultrasound nerve images.

The package holds the science; the Snakemake workflow (``Snakefile``,
``workflow/rules``) only wires its stages together through documented files
(see ``docs/contracts.md``).
"""

__version__ = "0.1.0"
