"""A finished study, used: applied to new images (``plexus predict``, :mod:`plexus.study.apply`) and
scored on a labelled test set (:mod:`plexus.study.heldout`). Both call the tasks' own stages, so this
package sits above :mod:`plexus.tasks`.
"""
