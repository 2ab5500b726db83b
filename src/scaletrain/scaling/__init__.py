"""Scaling efficiency: run a job at several world sizes, measure, and explain the gap with an α-β model."""
