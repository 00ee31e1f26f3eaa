"""Scoring: one Dice and the metrics built on it, lesion matching, student/teacher comparison.

Detection as the field scores it (LUNA16):

* :mod:`~napari_lungkd.scoring.hits`: ``ScoredCandidate``, ``Reference``, ``IrrelevantFinding``,
  ``ScanCase``; ``score_scan(case, rule="auto")`` -> ``ScanScore`` (the hit rule);
  ``candidates_from_mask(mask, probability=None)``;
* :mod:`~napari_lungkd.scoring.froc`: ``froc(scans, fp_rates, rule, bootstrap, seed)`` ->
  ``FrocResult`` (sensitivity at 1/8..8 FP per scan, CPM, bootstrap, Dice of found nodules);
  ``froc_curve``, ``bootstrap_froc``; :mod:`~napari_lungkd.scoring.froc_plot`: ``plot_froc``;
* :mod:`~napari_lungkd.scoring.reference`: ``lidc_truth(lidc_masks)`` -> ``LidcTruth``
  (references and irrelevant findings of one LIDC CT; ``.case(candidates, labels)``).
"""
