"""Joint layouts: joint names, the bone tree, the centre joint and left/right pairs.

Everything graph-shaped in lightact (STAR's sparse attention, ST-GCN's partitions, bone features,
flipping) is derived from a :class:`Layout`, never from per-dataset constants, so a user-defined
layout works wherever a built-in one does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Layout:
    """A skeleton's joints and bones.

    ``bones`` lists ``(child, parent)`` index pairs forming a tree (or forest) over the joints;
    joints without a parent are roots, whose bone vector is zero.

    ``spine`` (bottom, top) and ``shoulders`` (left, right) optionally name the joints that
    body-centred transforms (``align_view``, ``normalize_scale``) measure; each end is a group of
    joint indices standing for their mean. Left out, those transforms look joints up by name.
    """

    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    center: int
    flip_pairs: tuple[tuple[int, int], ...] = field(default=())
    spine: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    shoulders: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    def __post_init__(self) -> None:
        v = len(self.joints)
        if len(set(self.joints)) != v:
            raise ValueError(f"layout {self.name!r}: joint names are not unique")
        for child, parent in self.bones:
            if not (0 <= child < v and 0 <= parent < v) or child == parent:
                raise ValueError(f"layout {self.name!r}: bone ({child}, {parent}) is out of range")
        children = [c for c, _ in self.bones]
        if len(set(children)) != len(children):
            raise ValueError(f"layout {self.name!r}: a joint has more than one parent")
        if not 0 <= self.center < v:
            raise ValueError(f"layout {self.name!r}: centre joint {self.center} is out of range")
        for a, b in self.flip_pairs:
            if not (0 <= a < v and 0 <= b < v):
                raise ValueError(f"layout {self.name!r}: flip pair ({a}, {b}) is out of range")
        for key in ("spine", "shoulders"):
            pair = getattr(self, key)
            if pair is None:
                continue
            if len(pair) != 2 or not all(pair) or not all(0 <= j < v for end in pair for j in end):
                raise ValueError(f"layout {self.name!r}: {key} {pair} is not a pair of joints in range")
        self._check_acyclic()

    def _check_acyclic(self) -> None:
        parents = self.parents
        for start in range(self.num_joints):
            seen, j = set(), start
            while j >= 0:
                if j in seen:
                    raise ValueError(f"layout {self.name!r}: the bones form a cycle through joint {j}")
                seen.add(j)
                j = parents[j]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def parents(self) -> np.ndarray:
        """Parent index of each joint, -1 for roots."""
        parents = np.full(self.num_joints, -1, dtype=np.int64)
        for child, parent in self.bones:
            parents[child] = parent
        return parents

    def adjacency(self) -> np.ndarray:
        """Symmetric 0/1 adjacency of the bone graph, without self loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for child, parent in self.bones:
            a[child, parent] = a[parent, child] = 1.0
        return a

    def hop_distance(self) -> np.ndarray:
        """Shortest-path length in bones between every pair of joints (``inf`` if unconnected)."""
        v = self.num_joints
        neighbours: list[list[int]] = [[] for _ in range(v)]
        for child, parent in self.bones:
            neighbours[child].append(parent)
            neighbours[parent].append(child)
        dist = np.full((v, v), np.inf)
        for source in range(v):
            dist[source, source] = 0
            queue = deque([source])
            while queue:
                j = queue.popleft()
                for n in neighbours[j]:
                    if dist[source, n] == np.inf:
                        dist[source, n] = dist[source, j] + 1
                        queue.append(n)
        return dist

    def flip_permutation(self) -> np.ndarray:
        """Joint permutation that swaps left and right."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (how a trained model's metadata stores a custom layout); a spine or
        shoulders the layout does not name is left out, so such layouts read as before."""
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {k: v for k, v in data.items() if v is not None or k not in ("spine", "shoulders")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        """The layout :meth:`to_dict` wrote, validated like any other."""
        return cls(
            name=data["name"],
            joints=tuple(data["joints"]),
            bones=tuple(tuple(b) for b in data["bones"]),
            center=data["center"],
            flip_pairs=tuple(tuple(p) for p in data["flip_pairs"]),
            # Layouts saved before spine/shoulders existed have neither.
            **{k: tuple(tuple(end) for end in data[k]) for k in ("spine", "shoulders") if data.get(k)},
        )


def _from_one_based(name, joints, bones, center, flip_pairs=()) -> Layout:
    return Layout(
        name=name,
        joints=tuple(joints),
        bones=tuple((c - 1, p - 1) for c, p in bones),
        center=center - 1,
        flip_pairs=tuple((a - 1, b - 1) for a, b in flip_pairs),
    )


# Kinect v2 joint order as used by NTU RGB+D (1-based in the dataset's documentation).
NTU25 = _from_one_based(
    "ntu25",
    joints=[
        "spine_base",
        "spine_mid",
        "neck",
        "head",
        "shoulder_left",
        "elbow_left",
        "wrist_left",
        "hand_left",
        "shoulder_right",
        "elbow_right",
        "wrist_right",
        "hand_right",
        "hip_left",
        "knee_left",
        "ankle_left",
        "foot_left",
        "hip_right",
        "knee_right",
        "ankle_right",
        "foot_right",
        "spine_shoulder",
        "hand_tip_left",
        "thumb_left",
        "hand_tip_right",
        "thumb_right",
    ],
    bones=[
        (2, 1),
        (21, 2),
        (3, 21),
        (4, 3),
        (5, 21),
        (6, 5),
        (7, 6),
        (8, 7),
        (22, 8),
        (23, 8),
        (9, 21),
        (10, 9),
        (11, 10),
        (12, 11),
        (24, 12),
        (25, 12),
        (13, 1),
        (14, 13),
        (15, 14),
        (16, 15),
        (17, 1),
        (18, 17),
        (19, 18),
        (20, 19),
    ],
    # ST-GCN's NTU graph is centred on the spine-shoulder joint.
    center=21,
    flip_pairs=[
        (5, 9),
        (6, 10),
        (7, 11),
        (8, 12),
        (13, 17),
        (14, 18),
        (15, 19),
        (16, 20),
        (22, 24),
        (23, 25),
    ],
)

_BUILTIN: dict[str, Layout] = {NTU25.name: NTU25}


def register_layout(layout: Layout) -> Layout:
    _BUILTIN[layout.name] = layout
    return layout


def list_layouts() -> list[str]:
    return sorted(_BUILTIN)


def get_layout(name_or_path: str | Path) -> Layout:
    """A built-in layout by name, a user layout from a YAML file, or one shipped in
    ``lightact/configs/layouts/`` by its name (``upper_body8``); an existing file wins."""
    from lightact.configs import find_packaged

    key = str(name_or_path)
    if key in _BUILTIN:
        return _BUILTIN[key]
    if key.endswith((".yaml", ".yml")):
        shipped = None if Path(key).is_file() else find_packaged(key)
        return load_layout_yaml(shipped or key)
    shipped = find_packaged(f"layouts/{key}")
    if shipped is not None:
        return load_layout_yaml(shipped)
    raise KeyError(f"unknown joint layout {key!r}; built in: {', '.join(list_layouts())}, or a .yaml file")


def load_layout_yaml(path: str | Path) -> Layout:
    """Read a user layout: ``name``, ``joints`` (names), ``bones`` ([child, parent] by name or index),
    ``center``, and optional ``flip_pairs``, ``spine`` ([bottom, top]) and ``shoulders`` ([left,
    right]), where each end of a spine or shoulder pair is a joint or a list of joints (their mean)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"joint layout file {path} does not exist")
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a layout file must hold a mapping")
    unknown = set(spec) - {"name", "joints", "bones", "center", "flip_pairs", "spine", "shoulders"}
    if unknown:
        raise ValueError(f"{path}: unknown layout key(s) {sorted(unknown)}")
    for key in ("joints", "bones", "center"):
        if key not in spec:
            raise ValueError(f"{path}: layout key {key!r} is missing")
    joints = [str(j) for j in spec["joints"]]
    index = {name: i for i, name in enumerate(joints)}

    def resolve(j) -> int:
        if isinstance(j, int):
            return j
        if j not in index:
            raise ValueError(f"{path}: unknown joint {j!r}")
        return index[j]

    def joint_pair(key: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        pair = spec.get(key)
        if pair is None:
            return None
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"{path}: layout key {key!r} must be a pair [a, b] of joints, got {pair!r}")
        return tuple(tuple(resolve(j) for j in (end if isinstance(end, list) else [end])) for end in pair)

    return Layout(
        name=str(spec.get("name", path.stem)),
        joints=tuple(joints),
        bones=tuple((resolve(c), resolve(p)) for c, p in spec["bones"]),
        center=resolve(spec["center"]),
        flip_pairs=tuple((resolve(a), resolve(b)) for a, b in spec.get("flip_pairs", []) or []),
        spine=joint_pair("spine"),
        shoulders=joint_pair("shoulders"),
    )


# ---------------------------------------------------------------------------------------------------
# 2D / monocular layouts. They are built by joint name so each bone reads as "child <- parent".


def _by_name(
    name: str,
    joints: list[str],
    bones: list[tuple[str, str]],
    center: str,
    flip_pairs: list[tuple[str, str]],
) -> Layout:
    index = {joint: i for i, joint in enumerate(joints)}
    return Layout(
        name=name,
        joints=tuple(joints),
        bones=tuple((index[child], index[parent]) for child, parent in bones),
        center=index[center],
        flip_pairs=tuple((index[a], index[b]) for a, b in flip_pairs),
    )


def _mirrored(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``pairs`` written for the left side, followed by the same pairs for the right side."""

    def swap(joint: str) -> str:
        return joint.replace("left", "right") if "left" in joint else joint

    return pairs + [(swap(a), swap(b)) for a, b in pairs]


def _sides(*parts: str) -> list[tuple[str, str]]:
    return [(f"left_{part}", f"right_{part}") for part in parts]


# COCO keypoints (COCO, Halpe's first 17, HRNet / ViTPose / RTMPose 2D detections).
# COCO has no neck or pelvis joint. As in pyskl's ``coco`` graph the tree is rooted at the nose: eyes
# and shoulders hang from the nose, ears from the eyes, hips from the shoulders. The nose is also the
# centre joint: it is the only central (flip-invariant) joint, so a centred pose stays centred when
# mirrored; ST-GCN-style partitions measure "towards the centre" from it.
COCO17 = _by_name(
    "coco17",
    joints=[
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ],
    bones=_mirrored(
        [
            ("left_eye", "nose"),
            ("left_ear", "left_eye"),
            ("left_shoulder", "nose"),
            ("left_elbow", "left_shoulder"),
            ("left_wrist", "left_elbow"),
            ("left_hip", "left_shoulder"),
            ("left_knee", "left_hip"),
            ("left_ankle", "left_knee"),
        ]
    ),
    center="nose",
    flip_pairs=_sides("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"),
)

# OpenPose COCO-18 order, as in the Kinetics-skeleton release used by ST-GCN. Names are spelled out
# like COCO17's (``right_shoulder`` for OpenPose's ``RShoulder``). Rooted at, and centred on, the neck
# as in ST-GCN's ``openpose`` graph; hips hang from the shoulders, eyes from the nose.
OPENPOSE18 = _by_name(
    "openpose18",
    joints=[
        "nose",
        "neck",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "right_eye",
        "left_eye",
        "right_ear",
        "left_ear",
    ],
    bones=[("nose", "neck")]
    + _mirrored(
        [
            ("left_shoulder", "neck"),
            ("left_elbow", "left_shoulder"),
            ("left_wrist", "left_elbow"),
            ("left_hip", "left_shoulder"),
            ("left_knee", "left_hip"),
            ("left_ankle", "left_knee"),
            ("left_eye", "nose"),
            ("left_ear", "left_eye"),
        ]
    ),
    center="neck",
    flip_pairs=_sides("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"),
)

# MediaPipe Pose (BlazePose) landmarks in their official index order. The bones follow MediaPipe's
# POSE_CONNECTIONS with its loops cut and its pieces joined into one tree:
#  * the face is not connected to the body there; here the shoulders and the two mouth corners hang
#    from the nose (the mouth_left - mouth_right segment is dropped), each eye chain runs
#    nose -> eye_inner -> eye -> eye_outer -> ear;
#  * the torso loop (shoulder - shoulder - hip - hip) is cut by dropping both crosswise segments:
#    each hip hangs from its shoulder, as in COCO17;
#  * the hand triangles keep wrist -> pinky / index / thumb and drop pinky - index;
#  * the foot triangles keep ankle -> heel -> foot_index and drop ankle - foot_index.
# The tree is rooted at, and centred on, the nose for the same reason as COCO17: it is the only joint
# on the body's midline, so centring and mirroring commute (a shoulder or hip centre would not).
MEDIAPIPE33 = _by_name(
    "mediapipe33",
    joints=[
        "nose",
        "left_eye_inner",
        "left_eye",
        "left_eye_outer",
        "right_eye_inner",
        "right_eye",
        "right_eye_outer",
        "left_ear",
        "right_ear",
        "mouth_left",
        "mouth_right",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_pinky",
        "right_pinky",
        "left_index",
        "right_index",
        "left_thumb",
        "right_thumb",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
        "left_heel",
        "right_heel",
        "left_foot_index",
        "right_foot_index",
    ],
    bones=_mirrored(
        [
            ("left_eye_inner", "nose"),
            ("left_eye", "left_eye_inner"),
            ("left_eye_outer", "left_eye"),
            ("left_ear", "left_eye_outer"),
            ("mouth_left", "nose"),
            ("left_shoulder", "nose"),
            ("left_elbow", "left_shoulder"),
            ("left_wrist", "left_elbow"),
            ("left_pinky", "left_wrist"),
            ("left_index", "left_wrist"),
            ("left_thumb", "left_wrist"),
            ("left_hip", "left_shoulder"),
            ("left_knee", "left_hip"),
            ("left_ankle", "left_knee"),
            ("left_heel", "left_ankle"),
            ("left_foot_index", "left_heel"),
        ]
    ),
    center="nose",
    flip_pairs=_sides(
        "eye_inner",
        "eye",
        "eye_outer",
        "ear",
        "shoulder",
        "elbow",
        "wrist",
        "pinky",
        "index",
        "thumb",
        "hip",
        "knee",
        "ankle",
        "heel",
        "foot_index",
    )
    + [("mouth_left", "mouth_right")],
)

for _layout in (COCO17, OPENPOSE18, MEDIAPIPE33):
    register_layout(_layout)
