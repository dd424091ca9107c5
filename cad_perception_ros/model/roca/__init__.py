"""ROCA: network, heads, decode and the zoom-in crop network."""
