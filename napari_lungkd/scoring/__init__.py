"""Scoring: one Dice and the metrics built on it, lesion matching, student/teacher comparison."""
