"""The object map: a TF buffer of its own and the fusion of per-frame alignments in a fixed frame (ROS-free)."""
