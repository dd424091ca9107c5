"""A small TF buffer (ROS-free): a tree of rigid transforms with stamps, static and dynamic.

tf2_ros does not install with the PyPI ROS wheels, so the node keeps its own buffer, fed from
/tf and /tf_static. Conventions follow tf2: a transform (parent, child) is the pose of the child
frame in the parent frame, so it maps child-frame points to the parent frame,
p_parent = R p_child + t. Each child has one parent (a tree). A dynamic edge keeps its samples
of the last ``cache_time_s`` (in stamps); a lookup between two samples interpolates (slerp of
the rotation, lerp of the translation) and a lookup before the first or after the last sample
is refused unless it lies within ``max_extrapolation_s`` (then the nearest sample is used).
Stamps are integer nanoseconds.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation


class RigidTransform(NamedTuple):
    """rotation (3, 3) det +1 and translation (3,) metres: p_target = rotation p_source + translation."""

    rotation: np.ndarray
    translation: np.ndarray

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous form."""
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = self.rotation, self.translation
        return out

    def compose(self, other: "RigidTransform") -> "RigidTransform":
        """self o other: first `other` (source -> middle), then `self` (middle -> target)."""
        return RigidTransform(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)

    def inverse(self) -> "RigidTransform":
        return RigidTransform(self.rotation.T, -self.rotation.T @ self.translation)

    @staticmethod
    def identity() -> "RigidTransform":
        return RigidTransform(np.eye(3), np.zeros(3))

    @staticmethod
    def from_matrix(matrix: np.ndarray) -> "RigidTransform":
        """From a (4, 4) rigid transform (orthonormal rotation block, det +1), else ValueError."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"transform matrix must have shape (4, 4), got {m.shape}")
        return RigidTransform(_checked_rotation(m[:3, :3]), m[:3, 3].copy())


class TfLookupError(LookupError):
    """A lookup cannot be answered; the message says why (unknown frame, no path, extrapolation)."""


def _checked_rotation(rotation: np.ndarray) -> np.ndarray:
    r = np.asarray(rotation, dtype=np.float64)
    if r.shape != (3, 3) or not np.all(np.isfinite(r)):
        raise ValueError(f"rotation must be a finite (3, 3) matrix, got shape {r.shape}")
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
        raise ValueError("rotation must be orthonormal with det +1")
    return r


@dataclass
class _Edge:
    """Samples of one (parent, child) edge, sorted by stamp; static edges hold one, valid always."""

    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    quats: list[np.ndarray] = field(default_factory=list)  # (4,) x, y, z, w
    translations: list[np.ndarray] = field(default_factory=list)  # (3,)


class TfBuffer:
    """Transforms by (parent, child) with stamps; lookup(target, source, stamp) composes the chain."""

    def __init__(self, *, cache_time_s: float = 10.0, max_extrapolation_s: float = 0.05):
        if not cache_time_s > 0:
            raise ValueError(f"cache_time_s must be positive, got {cache_time_s!r}")
        if not max_extrapolation_s >= 0:
            raise ValueError(f"max_extrapolation_s must be >= 0, got {max_extrapolation_s!r}")
        self.cache_ns = int(cache_time_s * 1e9)
        self.max_extrapolation_ns = int(max_extrapolation_s * 1e9)
        self._edges: dict[str, _Edge] = {}  # child -> edge to its parent

    def clear(self) -> None:
        """Forget every transform (e.g. after time jumped backwards)."""
        self._edges = {}

    def frames(self) -> set[str]:
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def set_transform(self, parent: str, child: str, stamp_ns: int, transform: RigidTransform, *,
                      static: bool = False) -> None:
        """Add one sample of parent <- child. ValueError on empty or equal names, a bad rotation,
        or a child that already has another parent (TF is a tree)."""
        if not parent or not child or parent == child:
            raise ValueError(f"transform needs two different, non-empty frame names, got {parent!r} -> {child!r}")
        rotation = _checked_rotation(transform.rotation)
        translation = np.asarray(transform.translation, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(translation)):
            raise ValueError(f"translation of {parent} -> {child} is not finite")
        edge = self._edges.get(child)
        if edge is not None and (edge.parent != parent or edge.static != static):
            if edge.parent != parent:
                raise ValueError(f"frame {child!r} already has parent {edge.parent!r}, not {parent!r} (TF is a tree)")
            edge = None  # static <-> dynamic: the newer kind replaces the older
        if edge is None or static or (edge.stamps and int(stamp_ns) < edge.stamps[-1] - self.cache_ns):
            # new, static (one sample), or time jumped back by more than the cache (a bag restarted):
            # the edge starts afresh, else pruning against the old newest stamp would drop every new sample
            edge = self._edges[child] = _Edge(parent=parent, static=static)
        quat = Rotation.from_matrix(rotation).as_quat()  # (4,) x, y, z, w
        index = bisect.bisect_left(edge.stamps, int(stamp_ns))
        if index < len(edge.stamps) and edge.stamps[index] == int(stamp_ns):  # same stamp: replace
            edge.quats[index], edge.translations[index] = quat, translation
        else:
            edge.stamps.insert(index, int(stamp_ns))
            edge.quats.insert(index, quat)
            edge.translations.insert(index, translation)
        self._prune(edge)

    def _prune(self, edge: _Edge) -> None:
        if edge.static:
            return
        oldest = edge.stamps[-1] - self.cache_ns
        drop = bisect.bisect_left(edge.stamps, oldest)
        if drop:
            del edge.stamps[:drop], edge.quats[:drop], edge.translations[:drop]

    def lookup(self, target: str, source: str, stamp_ns: int) -> RigidTransform:
        """Transform mapping `source`-frame points into `target` at `stamp_ns`; TfLookupError says why not."""
        if target == source:
            return RigidTransform.identity()
        for name in (target, source):
            if name not in self.frames():
                raise TfLookupError(f"frame {name!r} is unknown (frames: {sorted(self.frames())})")
        up_source, up_target = self._chain(source), self._chain(target)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise TfLookupError(f"frames {target!r} and {source!r} are not connected (no common ancestor)")
        root_from_source = self._to_ancestor(up_source, common, stamp_ns)  # common <- source
        root_from_target = self._to_ancestor(up_target, common, stamp_ns)  # common <- target
        return root_from_target.inverse().compose(root_from_source)

    def _chain(self, frame: str) -> list[str]:
        """frame, its parent, ..., the root."""
        chain = [frame]
        while chain[-1] in self._edges and len(chain) <= len(self._edges) + 1:
            chain.append(self._edges[chain[-1]].parent)
        return chain

    def _to_ancestor(self, chain: list[str], ancestor: str, stamp_ns: int) -> RigidTransform:
        out = RigidTransform.identity()
        for child in chain[:chain.index(ancestor)]:
            out = self._sample(child, stamp_ns).compose(out)  # parent <- child o (child <- source)
        return out

    def _sample(self, child: str, stamp_ns: int) -> RigidTransform:
        """parent <- child at stamp: static as stored; dynamic interpolated, or refused outside its samples."""
        edge = self._edges[child]
        if edge.static:
            return _transform(edge.quats[0], edge.translations[0])
        stamps = edge.stamps
        name = f"{edge.parent} -> {child}"
        if stamp_ns < stamps[0] - self.max_extrapolation_ns:
            raise TfLookupError(f"extrapolation into the past: stamp {stamp_ns * 1e-9:.3f} s is "
                                f"{(stamps[0] - stamp_ns) * 1e-9:.3f} s before the oldest transform {name} "
                                f"(tolerance {self.max_extrapolation_ns * 1e-9:.3f} s)")
        if stamp_ns > stamps[-1] + self.max_extrapolation_ns:
            raise TfLookupError(f"extrapolation into the future: stamp {stamp_ns * 1e-9:.3f} s is "
                                f"{(stamp_ns - stamps[-1]) * 1e-9:.3f} s after the newest transform {name} "
                                f"(tolerance {self.max_extrapolation_ns * 1e-9:.3f} s)")
        if stamp_ns <= stamps[0]:
            return _transform(edge.quats[0], edge.translations[0])
        if stamp_ns >= stamps[-1]:
            return _transform(edge.quats[-1], edge.translations[-1])
        i = bisect.bisect_right(stamps, stamp_ns)  # stamps[i - 1] <= stamp < stamps[i]
        alpha = (stamp_ns - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
        return interpolate(_transform(edge.quats[i - 1], edge.translations[i - 1]),
                           _transform(edge.quats[i], edge.translations[i]), alpha)


def interpolate(a: RigidTransform, b: RigidTransform, alpha: float) -> RigidTransform:
    """Slerp of the rotations (shortest arc) and lerp of the translations; alpha 0 -> a, 1 -> b."""
    ra = Rotation.from_matrix(a.rotation)
    delta = (ra.inv() * Rotation.from_matrix(b.rotation)).as_rotvec()  # (3,) a -> b in a's frame
    rotation = (ra * Rotation.from_rotvec(alpha * delta)).as_matrix()
    return RigidTransform(rotation, (1.0 - alpha) * a.translation + alpha * b.translation)


def _transform(quat: np.ndarray, translation: np.ndarray) -> RigidTransform:
    return RigidTransform(Rotation.from_quat(quat).as_matrix(), np.array(translation))
