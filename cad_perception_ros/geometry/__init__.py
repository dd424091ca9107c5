"""Pure torch geometry: Procrustes, camera model, rotations, voxelisation (no nn.Module state)."""
