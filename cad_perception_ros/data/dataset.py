"""Data sets of ``SceneSample`` views read from a Scan2CAD-format data root (ours or ROCA's)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from cad_perception_ros.data import scan2cad_format as fmt
from cad_perception_ros.data.sample import SceneSample
from cad_perception_ros.data.transforms import resize_sample


class SyntheticDataset(Sequence):
    """Sequence[SceneSample] over ``scan2cad_instances_{split}.json`` of a data root.

    root: directory written by ``cad-perception data generate`` (or a real Scan2CAD/ROCA data
    directory: pass image_root = the ScanNet frames root and rendering_root = ROCA's renderings).
    Views are read lazily on indexing; duplicate images (ROCA's class re-sampling) are skipped.
    """

    def __init__(self, root: str | Path, split: str = "train", *, image_root: str | Path | None = None,
                 rendering_root: str | Path | None = None) -> None:
        self.root = Path(root)
        self.split = split
        self.image_root = image_root
        self.rendering_root = rendering_root
        data = fmt.load_instances(self.root, split)
        by_image: dict[int, list[dict]] = defaultdict(list)
        for anno in data["annotations"]:
            if not anno.get("duplicate", False):
                by_image[anno.get("image_id")].append(anno)
        self.images = [image for image in data["images"] if not image.get("duplicate", False)]
        self._annotations = [sorted(by_image.get(image.get("id"), []), key=lambda a: a.get("alignment_id", 0))
                             for image in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):  # noqa: D105 - Sequence protocol
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"SyntheticDataset index {index} out of range ({len(self)} views)")
        return fmt.read_view(self.root, self.images[index], self._annotations[index],
                             image_root=self.image_root, rendering_root=self.rendering_root)

    def objects_of(self, index: int) -> list:
        """Ground-truth objects of view `index` without decoding its images (class statistics)."""
        return fmt.view_objects(self.images[index], self._annotations[index])

    def scene_ids(self) -> list[str]:
        """Scene id of every view, in order."""
        return [str(image.get("scene_id", "")) for image in self.images]


class ResizedCache(Sequence):
    """A Sequence[SceneSample] wrapper that decodes each view once, resizes it to `size` (H, W)
    and keeps it in memory (training reads every view many times; decoding PNGs and resizing
    cost about a quarter of a CPU training step). Annotations come from the wrapped set."""

    def __init__(self, dataset: Sequence, size: tuple[int, int]) -> None:
        self.dataset = dataset
        self.size = (int(size[0]), int(size[1]))
        self._cache: dict[int, SceneSample] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> SceneSample:
        index = range(len(self))[index]  # IndexError and negative indices as a list
        if index not in self._cache:
            sample = self.dataset[index]
            self._cache[index] = sample if sample.size == self.size else resize_sample(sample, self.size)
        return self._cache[index]

    def objects_of(self, index: int) -> list:
        getter = getattr(self.dataset, "objects_of", None)
        return getter(index) if getter else self[index].objects
