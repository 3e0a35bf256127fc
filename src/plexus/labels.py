"""The label-map convention shared by every stage that reads class targets.

A preprocessed class mask (``masks`` in ``train.npz`` of the classes workflow) is a
``uint8`` map of class indices ``0 .. n_classes - 1``. Pixels that a dataset marks
as unlabelled (the config's ``ignore:`` classes, e.g. CamVid's void or VOC's 255)
hold :data:`IGNORE_LABEL` instead: they count in no loss, metric, area, tuning or
bootstrap, and label maps write them as background.
"""

#: Class index of an ignored pixel in a preprocessed label map (never a real class: at most
#: 255 classes are allowed).
IGNORE_LABEL = 255


def region_matrix(regions: dict, class_names):
    """``(R, K)`` bool: row ``r`` marks the classes (of ``class_names``, in order) that region ``r`` of
    ``regions`` (name -> class names, in the config's order) unites. An unknown class is a
    ``ValueError`` naming the region."""
    import numpy as np

    names = list(class_names)
    matrix = np.zeros((len(regions), len(names)), dtype=bool)
    for r, (region, members) in enumerate(regions.items()):
        unknown = [m for m in members if m not in names]
        if unknown:
            raise ValueError(f"regions.{region}: {', '.join(map(repr, unknown))} not a learnt class ({names})")
        matrix[r, [names.index(m) for m in members]] = True
    return matrix
