"""Scaling efficiency: run a job on several device counts, measure, and explain the gap with an α-β model."""
