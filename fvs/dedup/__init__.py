"""1:N duplicate search: one living person, one identity (issue 9).

``rule`` decides whether a candidate is a duplicate (an FMR-anchored threshold read from the
model pack's calibration), ``fvs.store.search`` finds the candidates (faiss over the template
index's rows), ``service`` checks enrolments, scans the registry and answers searches, and
``fvs.store.duplicates`` keeps the cases for adjudication.
"""
