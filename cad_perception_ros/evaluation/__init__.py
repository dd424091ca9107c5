"""Evaluation: Scan2CAD alignment accuracy (per image and per scene), retrieval-aware accuracy, AP50."""
