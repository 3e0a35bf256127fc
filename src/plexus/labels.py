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
