"""One image set of a dataset in a layout of its own, as a sample sheet: DSB2018's instance masks
(merged label maps, class-index targets, RGB copies of the images where needed), or 3-D volumes cut
into 2-D slices with the index that puts them back."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged

with logged(snakemake.log[0]):
    o, p = snakemake.output, snakemake.params
    if p.format == "volumes":
        from plexus.data.volumes import convert_stage

        convert_stage(p.settings["data"], p.part, sheet_tsv=o.sheet, images_dir=o.images, index_json=o.index,
                      background=p.settings["background"])
    else:
        from plexus.data.dsb2018 import nuclei_sheet_stage

        nuclei_sheet_stage(p.raw, group=p.settings["group"], boundary=p.settings["boundary"], sheet_tsv=o.sheet,
                           labels_dir=o.get("labels"), targets_dir=o.get("targets"), images_dir=o.images,
                           part=p.part)
