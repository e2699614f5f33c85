"""Annotation: campaigns, rounds, samples, comparisons, leases, judgments, the annotator UI."""
