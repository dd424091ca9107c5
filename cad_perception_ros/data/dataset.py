"""Data sets of ``SceneSample`` views read from a Scan2CAD-format data root (ours or ROCA's)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from cad_perception_ros.cad.identity import CadKeyIndex
from cad_perception_ros.data import scan2cad_format as fmt
from cad_perception_ros.data.sample import SceneSample
from cad_perception_ros.data.transforms import resize_sample


class SyntheticDataset(Sequence):
    """Sequence[SceneSample] over ``scan2cad_instances_{split}.json`` of a data root.

    root: directory written by ``cad-perception data generate`` (or a real Scan2CAD/ROCA data
    directory: pass image_root = the ScanNet frames root and rendering_root = ROCA's renderings).
    Views are read lazily on indexing. Duplicated image records (ROCA's re-samples of images with
    rare classes, ``duplicate: true``) are read as further samples of the same view when
    include_duplicates (training, as ROCA trains), else skipped (evaluation). cad_database: resolve
    (catid_cad, id_cad) to its models and convert the poses into their canonical frames
    (cad/identity.py); a key the database lacks is an error when strict_cads (training), else the
    object is read unconverted. require_noc: refuse views without NOC images or depth (training).
    """

    def __init__(self, root: str | Path, split: str = "train", *, image_root: str | Path | None = None,
                 rendering_root: str | Path | None = None, include_duplicates: bool = False,
                 cad_database=None, strict_cads: bool = True, require_noc: bool = False) -> None:
        self.root = Path(root)
        self.split = split
        self.image_root = image_root
        self.rendering_root = rendering_root
        self.require_noc = require_noc
        self.strict_cads = strict_cads
        self.keys = CadKeyIndex(cad_database) if cad_database is not None else None
        data = fmt.load_instances(self.root, split)
        by_image: dict[int, list[dict]] = defaultdict(list)
        for anno in data["annotations"]:
            if include_duplicates or not anno.get("duplicate", False):
                by_image[anno.get("image_id")].append(anno)
        self.images = [image for image in data["images"] if include_duplicates or not image.get("duplicate", False)]
        self._annotations = [sorted(by_image.get(image.get("id"), []), key=lambda a: a.get("alignment_id", 0))
                             for image in self.images]
        if self.keys is not None and strict_cads and (missing := self.unresolved_keys()):
            raise ValueError(f"{self.root} split {split!r}: {len(missing)} CAD models of the annotations are not in "
                             f"the CAD database, e.g. {missing[0]} (build it from the same models: cad build "
                             "--from-shapenet ROOT --annotations FILE)")
        if require_noc:
            self._check_noc_source()

    def unresolved_keys(self) -> list[tuple[str, str]]:
        """Sorted (catid_cad, id_cad) of the CAD annotations the database lacks ([] without one)."""
        if self.keys is None:
            return []
        keys = {fmt.annotation_key(a) for annotations in self._annotations for a in annotations
                if fmt.is_cad_annotation(a)}
        return sorted(k for k in keys if self.keys.get(*k) is None)

    def _check_noc_source(self) -> None:
        """ValueError naming the files when the split's first CAD view has neither NOC images nor depth."""
        rendering_root = self.root / fmt.RENDERING_ROOT if self.rendering_root is None else Path(self.rendering_root)
        for image, annotations in zip(self.images, self._annotations):
            if any(fmt.is_cad_annotation(a) for a in annotations):
                paths = fmt.rendering_paths(rendering_root, image)
                if not (paths["noc"].is_file() or paths["depth"].is_file()):
                    raise ValueError(f"{self.root} split {self.split!r}: no NOC targets: neither NOC images nor "
                                     f"depth renderings (looked for {paths['noc']} and {paths['depth']}); pass "
                                     "--rendering-root, or render depth with ROCA's renderer")
                return

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
                             image_root=self.image_root, rendering_root=self.rendering_root, keys=self.keys,
                             strict=self.strict_cads, require_noc=self.require_noc)

    def objects_of(self, index: int) -> list:
        """Ground-truth objects of view `index` without decoding its images (class statistics)."""
        return fmt.view_objects(self.images[index], self._annotations[index], self.keys, self.strict_cads)

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
