"""Evaluation harness: alignment (GenEval-style), Shapes-FID and precision/recall, reports."""
