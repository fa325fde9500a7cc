"""Procedural skeleton actions in NTU RGB+D's 25-joint Kinect-v2 layout, for tests and demos.

Every clip is rendered from a handful of joint angles per frame through a small forward-kinematics
model, so limbs stay rigid and poses stay human whatever the random body, speed and camera. The
output is the MMAction2/pyskl skeleton pickle schema, in camera-space metres with NTU's (Kinect's)
right-handed axes: x grows to the sensor's left, y up, z away from the camera (bodies around
z = 3 m). So, as in real NTU data, a person facing the camera has the right shoulder at larger x.

Classes that differ only in temporal order (sit down / stand up, ...) share one motion function:
the second class of each pair is the first's clean render played backwards, before noise and
dropped joints are added, so no single frame can tell the two apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lightact.data.skeleton.layouts import NTU25

__all__ = [
    "INTERACTION_CLASSES",
    "REVERSED_PAIRS",
    "SKELETON_CLASSES",
    "MotionParams",
    "PersonParams",
    "generate_skeleton_dataset",
    "render_clean",
    "sample_params",
]

_NUM_JOINTS = NTU25.num_joints
_J = {name: i for i, name in enumerate(NTU25.joints)}
LEFT, RIGHT = 0, 1
_SIDE_SIGN = (1.0, -1.0)  # the body-frame lateral axis points to the person's left
_FPS = 30


# --------------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class PersonParams:
    """One performer: body proportions and resting posture."""

    height: float = 1.70
    arm_scale: float = 1.0
    leg_scale: float = 1.0
    shoulder_scale: float = 1.0
    arm_spread: float = 0.12  # resting arm abduction, rad
    stance: float = 0.06  # resting leg abduction, rad
    lean: float = 0.03  # resting trunk pitch, rad
    facing: float = 0.0  # yaw away from the nominal facing direction, rad
    sway_phase: float = 0.0

    def segments(self) -> dict[str, float]:
        """Segment lengths in metres (Kinect-like fractions of body height)."""
        h, a, g = self.height, self.arm_scale, self.leg_scale
        return {
            "spine_low": 0.12 * h,
            "spine_up": 0.15 * h,
            "neck": 0.04 * h,
            "head": 0.07 * h,
            "shoulder": 0.105 * h * self.shoulder_scale,
            "upper_arm": 0.175 * h * a,
            "forearm": 0.150 * h * a,
            "hand": 0.045 * h * a,
            "hand_tip": 0.040 * h * a,
            "thumb": 0.030 * h * a,
            "hip": 0.050 * h,
            "hip_drop": 0.030 * h,
            "thigh": 0.245 * h * g,
            "shin": 0.240 * h * g,
            "foot": 0.070 * h,
        }


@dataclass(frozen=True)
class MotionParams:
    """Everything a clean render depends on; the class name picks the motion."""

    persons: tuple[PersonParams, PersonParams] = (PersonParams(), PersonParams())
    speed: float = 1.0  # > 1 is faster, so fewer frames
    amplitude: float = 1.0  # scales how far the limbs move
    warp: float = 0.0  # non-uniform time warp, |warp| < 1
    repeats: int = 0  # 0..2 extra repetitions for cyclic actions
    idle_before: int = 10  # frames held still before the action
    idle_after: int = 10
    distance: float = 1.0  # scales the distance between two performers
    yaw: float = 0.0  # camera yaw around the vertical axis, rad
    pitch: float = 0.0  # camera tilt, rad
    roll: float = 0.0
    position: tuple[float, float, float] = (0.0, 0.9, 3.0)  # (x, camera height above floor, depth)
    sway: float = 0.006  # idle body sway amplitude, m
    min_frames: int = 30
    max_frames: int = 300


def _sample_person(rng: np.random.Generator) -> PersonParams:
    return PersonParams(
        height=float(rng.uniform(1.50, 1.90)),
        arm_scale=float(rng.uniform(0.93, 1.07)),
        leg_scale=float(rng.uniform(0.94, 1.06)),
        shoulder_scale=float(rng.uniform(0.9, 1.1)),
        arm_spread=float(rng.uniform(0.05, 0.25)),
        stance=float(rng.uniform(0.02, 0.12)),
        lean=float(rng.uniform(-0.04, 0.10)),
        facing=float(rng.uniform(-0.2, 0.2)),
        sway_phase=float(rng.uniform(0, 2 * np.pi)),
    )


def sample_params(rng: np.random.Generator, min_frames: int = 30, max_frames: int = 300) -> MotionParams:
    """Random bodies, timing, amplitude and camera for one clip."""
    persons = (_sample_person(rng), _sample_person(rng))
    return MotionParams(
        persons=persons,
        speed=float(rng.uniform(0.7, 1.4)),
        amplitude=float(rng.uniform(0.85, 1.15)),
        warp=float(rng.uniform(-0.35, 0.35)),
        repeats=int(rng.integers(0, 3)),
        idle_before=int(rng.integers(4, 36)),
        idle_after=int(rng.integers(4, 36)),
        distance=float(rng.uniform(0.92, 1.12)),
        yaw=float(np.deg2rad(rng.uniform(-45, 45))),
        pitch=float(np.deg2rad(rng.uniform(-8, 8))),
        roll=float(np.deg2rad(rng.uniform(-3, 3))),
        position=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.6, 1.2)), float(rng.uniform(2.6, 3.6))),
        sway=float(rng.uniform(0.002, 0.012)),
        min_frames=min_frames,
        max_frames=max_frames,
    )


# --------------------------------------------------------------------------------------------------
# Pose and forward kinematics


@dataclass
class Pose:
    """Per-frame pose controls of one person; arrays are ``[T]`` or ``[2, T]`` (left, right).

    Limb angles are in the person's yaw-only body frame, not the trunk's, so hanging arms hang
    down when the trunk bends. Arm segments use (elevation, azimuth): elevation 0 hangs down, pi/2
    is horizontal, pi points up; azimuth 0 is forward, pi/2 sideways out. Legs use flexion (forward
    swing), abduction and knee flexion.
    """

    root: np.ndarray  # [T, 3] pelvis position in the room; its height is set by the ground
    yaw: np.ndarray
    trunk: np.ndarray  # forward pitch of the spine
    lift: np.ndarray  # height of the feet above the floor (jumps)
    arm_elev: np.ndarray
    arm_az: np.ndarray
    fore_elev: np.ndarray
    fore_az: np.ndarray
    thigh: np.ndarray
    abduct: np.ndarray
    knee: np.ndarray
    anchor: tuple[int, ...] = field(default=())  # joints whose floor position stays put


def _rest_pose(t: int, person: PersonParams, x: float = 0.0, yaw: float = 0.0) -> Pose:
    def both(value: float) -> np.ndarray:
        return np.full((2, t), value)

    root = np.zeros((t, 3))
    root[:, 0] = x
    return Pose(
        root=root,
        yaw=np.full(t, yaw + person.facing),
        trunk=np.full(t, person.lean),
        lift=np.zeros(t),
        arm_elev=both(person.arm_spread),
        arm_az=both(np.pi / 2),
        fore_elev=both(0.25),
        fore_az=both(0.0),
        thigh=both(0.0),
        abduct=both(person.stance),
        knee=both(0.05),
    )


def _body_dirs(yaw: np.ndarray, lateral, up, forward) -> np.ndarray:
    """Body-frame direction components -> room-frame vectors ``[T, 3]``."""
    c, s = np.cos(yaw), np.sin(yaw)
    lateral, up, forward = np.broadcast_arrays(lateral, up, forward, c)[:3]
    # left = (cos, 0, sin), up = (0, 1, 0), forward = (sin, 0, -cos): yaw 0 faces the camera.
    return np.stack([lateral * c + forward * s, up, lateral * s - forward * c], axis=-1)


def _arm_dir(yaw, elev, az, side: float) -> np.ndarray:
    se = np.sin(elev)
    return _body_dirs(yaw, side * se * np.sin(az), -np.cos(elev), se * np.cos(az))


def _leg_dir(yaw, flex, abduct, side: float) -> np.ndarray:
    ca = np.cos(abduct)
    return _body_dirs(yaw, side * np.sin(abduct), -ca * np.cos(flex), ca * np.sin(flex))


def _forward_kinematics(pose: Pose, person: PersonParams) -> np.ndarray:
    """Place the 25 joints ``[T, 25, 3]`` in the room frame (floor at y = 0)."""
    seg = person.segments()
    t = len(pose.yaw)
    yaw = pose.yaw
    out = np.zeros((t, _NUM_JOINTS, 3))
    pelvis = pose.root.copy()
    pelvis[:, 1] = 0.0
    trunk = _body_dirs(yaw, 0.0, np.cos(pose.trunk), np.sin(pose.trunk))
    head_dir = _body_dirs(yaw, 0.0, np.cos(0.8 * pose.trunk), np.sin(0.8 * pose.trunk))
    lateral = _body_dirs(yaw, 1.0, 0.0, 0.0)
    up = np.array([0.0, 1.0, 0.0])

    out[:, _J["spine_base"]] = pelvis
    out[:, _J["spine_mid"]] = pelvis + seg["spine_low"] * trunk
    out[:, _J["spine_shoulder"]] = out[:, _J["spine_mid"]] + seg["spine_up"] * trunk
    out[:, _J["neck"]] = out[:, _J["spine_shoulder"]] + seg["neck"] * trunk
    out[:, _J["head"]] = out[:, _J["neck"]] + seg["head"] * head_dir

    for k, name in ((LEFT, "left"), (RIGHT, "right")):
        s = _SIDE_SIGN[k]
        shoulder = out[:, _J["spine_shoulder"]] + s * seg["shoulder"] * lateral
        upper = _arm_dir(yaw, pose.arm_elev[k], pose.arm_az[k], s)
        fore = _arm_dir(yaw, pose.fore_elev[k], pose.fore_az[k], s)
        elbow = shoulder + seg["upper_arm"] * upper
        wrist = elbow + seg["forearm"] * fore
        hand = wrist + seg["hand"] * fore
        # The thumb points forward and inwards off the hand; the two terms have different norms,
        # so their sum never vanishes and the thumb bone keeps its length.
        thumb = fore + 0.8 * _body_dirs(yaw, -s * 0.94, 0.0, 0.34)
        thumb /= np.linalg.norm(thumb, axis=-1, keepdims=True)
        out[:, _J[f"shoulder_{name}"]] = shoulder
        out[:, _J[f"elbow_{name}"]] = elbow
        out[:, _J[f"wrist_{name}"]] = wrist
        out[:, _J[f"hand_{name}"]] = hand
        out[:, _J[f"hand_tip_{name}"]] = hand + seg["hand_tip"] * fore
        out[:, _J[f"thumb_{name}"]] = hand + seg["thumb"] * thumb

        hip = pelvis + s * seg["hip"] * lateral - seg["hip_drop"] * up
        knee = hip + seg["thigh"] * _leg_dir(yaw, pose.thigh[k], pose.abduct[k], s)
        ankle = knee + seg["shin"] * _leg_dir(yaw, pose.thigh[k] - pose.knee[k], pose.abduct[k], s)
        out[:, _J[f"hip_{name}"]] = hip
        out[:, _J[f"knee_{name}"]] = knee
        out[:, _J[f"ankle_{name}"]] = ankle
        out[:, _J[f"foot_{name}"]] = ankle + seg["foot"] * _body_dirs(yaw, 0.0, -0.36, 0.933)

    # Stand on the floor: the lowest ankle (plus the heel below it) or toe touches y = 0.
    feet = [_J["ankle_left"], _J["ankle_right"], _J["foot_left"], _J["foot_right"]]
    clearance = np.array([0.07, 0.07, 0.02, 0.02]) * person.height / 1.7
    ground = (out[:, feet, 1] - clearance).min(axis=1)
    out[:, :, 1] += (pose.lift - ground)[:, None]
    if pose.anchor:
        # Planted feet do not slide: move the whole body so the anchor joints keep their place.
        drift = out[:, list(pose.anchor)][:, :, [0, 2]].mean(axis=1)
        out[:, :, [0, 2]] -= (drift - drift[:1])[:, None]
    return out


# --------------------------------------------------------------------------------------------------
# Time profiles


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6 * x - 15) + 10)


def _ramp(u: np.ndarray, start: float, end: float) -> np.ndarray:
    """0 before ``start``, 1 after ``end``, smooth in between."""
    return _smooth((u - start) / (end - start))


def _bump(u: np.ndarray, start: float, end: float) -> np.ndarray:
    """0 outside ``[start, end]``, a smooth hump peaking at 1 in the middle."""
    x = np.clip((u - start) / (end - start), 0.0, 1.0)
    return np.sin(np.pi * x) ** 2


def _window(u: np.ndarray, rise: tuple[float, float], fall: tuple[float, float]) -> np.ndarray:
    return _ramp(u, *rise) * (1.0 - _ramp(u, *fall))


def _toward(current: np.ndarray, target, weight: np.ndarray) -> np.ndarray:
    return current + (target - current) * weight


# --------------------------------------------------------------------------------------------------
# Motions: each takes the action progress u in [0, 1] per frame and returns one Pose per person.
# Progress is 0 during the idle lead-in and 1 during the idle tail, so every motion must start and
# end in a pose it can hold.


def _sit(u: np.ndarray, p: MotionParams) -> list[Pose]:
    pose = _rest_pose(len(u), p.persons[0])
    a = np.clip(p.amplitude, 0.9, 1.1)
    down = _ramp(u, 0.0, 1.0)
    pose.thigh[:] = 1.45 * a * down
    pose.knee[:] = 0.05 + 1.45 * a * down
    pose.trunk += 0.12 * down + 0.45 * a * _bump(u, 0.1, 0.85)
    reach = _bump(u, 0.15, 0.9)
    pose.arm_elev += 0.5 * reach
    pose.arm_az = _toward(pose.arm_az, 0.3, reach)
    pose.fore_elev += 0.5 * reach
    pose.anchor = (_J["ankle_left"], _J["ankle_right"])
    return [pose]


def _raise_arm(u: np.ndarray, p: MotionParams) -> list[Pose]:
    pose = _rest_pose(len(u), p.persons[0])
    up = _ramp(u, 0.0, 1.0)
    top = min(2.95, 2.65 * p.amplitude)
    pose.arm_elev[RIGHT] = _toward(pose.arm_elev[RIGHT], top, up)
    pose.arm_az[RIGHT] = _toward(pose.arm_az[RIGHT], 0.6, up)
    # The elbow bends a little on the way and straightens at the top.
    pose.fore_elev[RIGHT] = pose.arm_elev[RIGHT] + 0.25 * (1 - up) + 0.5 * _bump(u, 0.0, 0.8)
    pose.fore_az[RIGHT] = pose.arm_az[RIGHT]
    return [pose]


def _bend(u: np.ndarray, p: MotionParams) -> list[Pose]:
    pose = _rest_pose(len(u), p.persons[0])
    down = _ramp(u, 0.0, 1.0)
    pose.trunk += 1.25 * p.amplitude * down
    pose.thigh += 0.2 * down
    pose.knee += 0.35 * down
    # Arms dangle towards the floor, reaching slightly forward.
    pose.arm_elev = _toward(pose.arm_elev, 0.3, down)
    pose.arm_az = _toward(pose.arm_az, 0.0, down)
    pose.fore_elev = _toward(pose.fore_elev, 0.1, down)
    pose.anchor = (_J["ankle_left"], _J["ankle_right"])
    return [pose]


def _wave(u: np.ndarray, p: MotionParams) -> list[Pose]:
    pose = _rest_pose(len(u), p.persons[0])
    raised = _window(u, (0.0, 0.2), (0.8, 1.0))
    waves = 2 + p.repeats
    swing = 0.4 * p.amplitude * np.sin(2 * np.pi * waves * np.clip((u - 0.2) / 0.6, 0, 1))
    pose.arm_elev[RIGHT] = _toward(pose.arm_elev[RIGHT], 1.5, raised)
    pose.arm_az[RIGHT] = _toward(pose.arm_az[RIGHT], 1.1, raised)
    # The forearm points up and swings side to side in the frontal plane.
    pose.fore_elev[RIGHT] = _toward(pose.fore_elev[RIGHT], np.pi - 0.35 - swing, raised)
    pose.fore_az[RIGHT] = _toward(pose.fore_az[RIGHT], np.pi / 2, raised)
    return [pose]


def _clap(u: np.ndarray, p: MotionParams) -> list[Pose]:
    pose = _rest_pose(len(u), p.persons[0])
    ready = _window(u, (0.0, 0.15), (0.85, 1.0))
    claps = 3 + p.repeats
    phase = np.clip((u - 0.15) / 0.7, 0, 1)
    apart = 0.5 - 0.5 * np.cos(2 * np.pi * claps * phase + np.pi)  # hands together at the ends
    closed, opened = -0.85, -0.85 + 0.95 * p.amplitude
    pose.arm_elev = _toward(pose.arm_elev, 0.8, ready)
    pose.arm_az = _toward(pose.arm_az, 0.25, ready)
    pose.fore_elev = _toward(pose.fore_elev, 1.4, ready)
    pose.fore_az = _toward(pose.fore_az, closed + (opened - closed) * (1 - apart), ready)
    return [pose]


def _punch(u: np.ndarray, p: MotionParams) -> list[Pose]:
    pose = _rest_pose(len(u), p.persons[0])
    guard = _window(u, (0.0, 0.15), (0.85, 1.0))
    punches = 2 + p.repeats
    phase = np.clip((u - 0.15) / 0.7, 0, 1) * punches
    strike = np.sin(np.pi * phase) ** 4  # short, sharp extensions
    a = np.clip(p.amplitude, 0.92, 1.05)
    pose.arm_elev = _toward(pose.arm_elev, 0.35, guard)
    pose.arm_az = _toward(pose.arm_az, 0.3, guard)
    pose.fore_elev = _toward(pose.fore_elev, 2.3, guard)
    pose.fore_az = _toward(pose.fore_az, -0.4, guard)
    # Right and left alternate, starting with the right.
    right_turn = np.floor(np.minimum(phase, punches - 1e-9)) % 2 == 0
    for k, hit in ((RIGHT, strike * right_turn), (LEFT, strike * ~right_turn)):
        pose.arm_elev[k] = _toward(pose.arm_elev[k], 1.5 * a, hit)
        pose.arm_az[k] = _toward(pose.arm_az[k], -0.2, hit)
        pose.fore_elev[k] = _toward(pose.fore_elev[k], 1.55 * a, hit)
        pose.fore_az[k] = _toward(pose.fore_az[k], -0.2, hit)
    pose.trunk += 0.08 * strike
    return [pose]


def _kick(u: np.ndarray, p: MotionParams) -> list[Pose]:
    pose = _rest_pose(len(u), p.persons[0])
    swing = _window(u, (0.05, 0.35), (0.65, 0.95))
    pose.thigh[RIGHT] = 1.2 * p.amplitude * swing
    # The knee comes up bent (chambered), snaps straight at the top, and bends again on the way down.
    pose.knee[RIGHT] += 1.4 * swing * (1 - _bump(u, 0.3, 0.7))
    pose.trunk -= 0.25 * swing
    pose.arm_elev = _toward(pose.arm_elev, 0.7, swing)
    pose.fore_elev = _toward(pose.fore_elev, 1.2, swing)
    pose.anchor = (_J["ankle_left"],)
    return [pose]


def _jump(u: np.ndarray, p: MotionParams) -> list[Pose]:
    pose = _rest_pose(len(u), p.persons[0])
    jumps = 1 + p.repeats % 2
    c = np.clip(u, 0, 1) * jumps
    c = np.where(c >= jumps, 1.0, c - np.floor(c))  # progress within the current jump
    crouch = _bump(c, 0.0, 0.45) + 0.8 * _bump(c, 0.62, 1.0)
    flight = np.where((c > 0.4) & (c < 0.7), np.sin(np.pi * (c - 0.4) / 0.3), 0.0)
    pose.lift = (0.2 + 0.12 * p.amplitude) * flight
    pose.thigh[:] = 0.75 * crouch
    pose.knee[:] = 0.05 + 1.35 * crouch
    pose.trunk += 0.45 * crouch
    # Arms swing back while crouching and up through the take-off.
    swing = -0.8 * _bump(c, 0.05, 0.42) + 2.3 * _bump(c, 0.3, 0.75)
    pose.arm_elev = pose.arm_elev + swing
    pose.arm_az = _toward(pose.arm_az, 0.0, np.minimum(1.0, 3 * np.abs(swing)))
    pose.fore_elev = pose.arm_elev + 0.2
    pose.fore_az = pose.arm_az
    pose.anchor = (_J["ankle_left"], _J["ankle_right"])
    return [pose]


def _pair(u: np.ndarray, p: MotionParams, distance: float) -> tuple[Pose, Pose]:
    """Two people facing each other along the room's x axis, ``distance`` metres apart."""
    a = _rest_pose(len(u), p.persons[0], x=-distance / 2, yaw=np.pi / 2)
    b = _rest_pose(len(u), p.persons[1], x=distance / 2, yaw=-np.pi / 2)
    return a, b


def _step_towards(pose: Pose, shift: np.ndarray, leg: int, steps: np.ndarray) -> None:
    """Move the pelvis ``shift`` metres forward, swinging ``leg`` by ``steps`` (negative: backwards)."""
    pose.root[:, 0] += np.sin(pose.yaw) * shift
    pose.root[:, 2] -= np.cos(pose.yaw) * shift
    pose.thigh[leg] += 0.35 * steps
    pose.knee[leg] += 0.6 * np.abs(steps)


def _handshake(u: np.ndarray, p: MotionParams) -> list[Pose]:
    a, b = _pair(u, p, 0.95 * p.distance)
    reach = _window(u, (0.05, 0.3), (0.75, 0.95))
    shake = 0.17 * p.amplitude * np.sin(2 * np.pi * (2 + p.repeats) * np.clip((u - 0.3) / 0.45, 0, 1))
    for pose in (a, b):
        pose.arm_elev[RIGHT] = _toward(pose.arm_elev[RIGHT], 0.75, reach)
        pose.arm_az[RIGHT] = _toward(pose.arm_az[RIGHT], -0.15, reach)
        pose.fore_elev[RIGHT] = _toward(pose.fore_elev[RIGHT], 1.45 + shake, reach)
        pose.fore_az[RIGHT] = _toward(pose.fore_az[RIGHT], -0.3, reach)
        pose.trunk += 0.1 * reach
    return [a, b]


def _hug(u: np.ndarray, p: MotionParams) -> list[Pose]:
    start, end = 1.35 * p.distance, 0.42
    a, b = _pair(u, p, start)
    approach = _ramp(u, 0.0, 0.4)
    step = _bump(u, 0.0, 0.4)
    _step_towards(a, (start - end) / 2 * approach, RIGHT, step)
    _step_towards(b, (start - end) / 2 * approach, LEFT, step)
    hold = _window(u, (0.2, 0.45), (0.85, 1.0))
    for pose, high in ((a, 1.25), (b, 1.05)):
        pose.arm_elev = _toward(pose.arm_elev, high * min(1.0, p.amplitude), hold)
        pose.arm_az = _toward(pose.arm_az, 0.9, hold)
        pose.fore_elev = _toward(pose.fore_elev, 1.5, hold)
        pose.fore_az = _toward(pose.fore_az, -1.1, hold)
        pose.trunk += 0.15 * hold
    return [a, b]


def _push(u: np.ndarray, p: MotionParams) -> list[Pose]:
    a, b = _pair(u, p, 0.85 * p.distance)
    shove = _window(u, (0.25, 0.42), (0.65, 0.95))
    lunge = _ramp(u, 0.25, 0.45)
    _step_towards(a, 0.12 * lunge, RIGHT, _bump(u, 0.25, 0.5))
    a.arm_elev = _toward(a.arm_elev, 1.3, shove)
    a.arm_az = _toward(a.arm_az, 0.1, shove)
    a.fore_elev = _toward(a.fore_elev, 1.45, shove)
    a.fore_az = _toward(a.fore_az, 0.0, shove)
    a.trunk += 0.25 * shove
    # The pushed person is driven back, leaning backwards and flailing, then recovers.
    hit = _bump(u, 0.38, 0.8)
    _step_towards(b, -0.4 * p.amplitude * _ramp(u, 0.38, 0.62), RIGHT, -_bump(u, 0.4, 0.7))
    b.trunk -= 0.3 * hit
    b.arm_elev = _toward(b.arm_elev, 0.9, hit)
    b.arm_az = _toward(b.arm_az, np.pi / 2, hit)
    b.fore_elev = _toward(b.fore_elev, 1.2, hit)
    return [a, b]


def _walk(u: np.ndarray, p: MotionParams) -> list[Pose]:
    steps = 3 + p.repeats // 2
    legs = [pp.segments()["thigh"] + pp.segments()["shin"] for pp in p.persons]
    stride = 0.5 * min(legs) * p.amplitude  # one step's forward travel
    end = 0.95 * p.distance
    a, b = _pair(u, p, end + 2 * stride * steps)
    progress = _ramp(u, 0.0, 1.0)
    phase = np.pi * steps * progress
    gait = np.minimum(1.0, np.sin(np.pi * progress) * 3.0)  # gait amplitude fades at start and stop
    swing = np.arcsin(min(0.6, stride / min(legs))) * gait
    for pose, lead in ((a, 1.0), (b, -1.0)):
        _step_towards(pose, stride * steps * progress, LEFT, np.zeros_like(u))
        for k, s in ((LEFT, lead), (RIGHT, -lead)):
            pose.thigh[k] = s * swing * np.sin(phase)
            pose.knee[k] = 0.05 + 0.9 * gait * np.maximum(0.0, s * np.cos(phase)) ** 2
            # Arms swing against the legs of the same side.
            pose.arm_elev[k] = -s * 0.35 * gait * np.sin(phase) + 0.05
            pose.arm_az[k] = 0.0
            pose.fore_elev[k] = pose.arm_elev[k] + 0.3
        pose.trunk += 0.06 * gait
    return [a, b]


@dataclass(frozen=True)
class _Family:
    motion: Callable[[np.ndarray, MotionParams], list[Pose]]
    frames: Callable[[MotionParams], int]  # action length at speed 1, before idle time


_FAMILIES: dict[str, _Family] = {
    "sit": _Family(_sit, lambda p: 66),
    "raise_arm": _Family(_raise_arm, lambda p: 48),
    "bend": _Family(_bend, lambda p: 60),
    "wave": _Family(_wave, lambda p: 36 + 20 * (2 + p.repeats)),
    "clap": _Family(_clap, lambda p: 24 + 15 * (3 + p.repeats)),
    "punch": _Family(_punch, lambda p: 24 + 18 * (2 + p.repeats)),
    "kick": _Family(_kick, lambda p: 50),
    "jump": _Family(_jump, lambda p: 50 * (1 + p.repeats % 2)),
    "handshake": _Family(_handshake, lambda p: 84 + 12 * p.repeats),
    "hug": _Family(_hug, lambda p: 105),
    "push": _Family(_push, lambda p: 60),
    "walk": _Family(_walk, lambda p: 24 + 17 * (3 + p.repeats // 2)),
}

# class name -> (motion family, played backwards?)
_CLASS_SPECS: dict[str, tuple[str, bool]] = {
    "sit_down": ("sit", False),
    "stand_up": ("sit", True),
    "raise_arm": ("raise_arm", False),
    "lower_arm": ("raise_arm", True),
    "bend_down": ("bend", False),
    "straighten_up": ("bend", True),
    "wave": ("wave", False),
    "clap": ("clap", False),
    "punch": ("punch", False),
    "kick": ("kick", False),
    "jump": ("jump", False),
    "handshake": ("handshake", False),
    "hug": ("hug", False),
    "push": ("push", False),
    "walk_towards": ("walk", False),
    "walk_apart": ("walk", True),
}

SKELETON_CLASSES: tuple[str, ...] = tuple(_CLASS_SPECS)
REVERSED_PAIRS: tuple[tuple[str, str], ...] = (
    ("sit_down", "stand_up"),
    ("raise_arm", "lower_arm"),
    ("bend_down", "straighten_up"),
    ("walk_towards", "walk_apart"),
)
INTERACTION_CLASSES: tuple[str, ...] = ("handshake", "hug", "push", "walk_towards", "walk_apart")


# --------------------------------------------------------------------------------------------------
# Rendering


def _timeline(action: int, p: MotionParams) -> tuple[int, int, int]:
    """(idle before, action frames, idle after) with the total inside [min_frames, max_frames]."""
    before, after = p.idle_before, p.idle_after
    natural = before + action + after
    total = min(max(natural, p.min_frames), p.max_frames)
    # Stretch or squeeze idle time and action alike, so the action keeps its share of the clip.
    before, after = before * total // natural, after * total // natural
    action = max(total - before - after, min(total, 2))
    before = min(before, total - action)
    return before, action, total - action - before


def _camera(points: np.ndarray, p: MotionParams) -> np.ndarray:
    """Room frame (floor y = 0, scene centred on the origin) -> camera frame."""
    cy, sy = np.cos(p.yaw), np.sin(p.yaw)
    yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    cp, sp = np.cos(p.pitch), np.sin(p.pitch)
    pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    cr, sr = np.cos(p.roll), np.sin(p.roll)
    roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    x, cam_height, depth = p.position
    placed = points @ yaw.T + np.array([x, -cam_height, depth])
    # The room frame is built with x to the camera's right; Kinect's x grows to the camera's left.
    return (placed @ (roll @ pitch).T) * np.array([-1.0, 1.0, 1.0])


def render_clean(class_name: str, params: MotionParams) -> np.ndarray:
    """Noise-free keypoints ``[2, T, 25, 3]`` (float64) of one class; a function of ``params`` only."""
    if class_name not in _CLASS_SPECS:
        raise KeyError(f"unknown synthetic class {class_name!r}; known: {', '.join(SKELETON_CLASSES)}")
    family_name, backwards = _CLASS_SPECS[class_name]
    family = _FAMILIES[family_name]
    before, action, after = _timeline(round(family.frames(params) / params.speed), params)
    total = before + action + after

    u = np.clip((np.arange(total) - before) / (action - 1), 0.0, 1.0)
    # A monotone warp (derivative 1 + warp*cos > 0) so speed varies within the action too.
    u = u + params.warp * np.sin(2 * np.pi * u) / (2 * np.pi)
    poses = family.motion(u, params)

    out = np.zeros((2, total, _NUM_JOINTS, 3))
    frames = np.arange(total) / _FPS
    for m, (pose, person) in enumerate(zip(poses, params.persons[: len(poses)], strict=True)):
        # Nobody stands perfectly still: a slow sway keeps idle frames alive.
        phase = 2 * np.pi * 0.35 * frames + person.sway_phase
        pose.root[:, 0] += params.sway * np.sin(phase)
        pose.root[:, 2] += 0.6 * params.sway * np.sin(0.7 * phase + 1.0)
        pose.trunk = pose.trunk + 0.5 * params.sway * np.sin(phase + 2.0)
        out[m] = _forward_kinematics(pose, person)
    out[: len(poses)] = _camera(out[: len(poses)], params)
    return out[:, ::-1].copy() if backwards else out


def _corrupt(clean: np.ndarray, persons: int, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise plus a few dropped joints (written as exact zeros, as Kinect files have)."""
    out = clean.copy()
    sigma = rng.uniform(0.002, 0.01)
    out[:persons] += rng.normal(0.0, sigma, size=out[:persons].shape)
    total = out.shape[1]
    for _ in range(int(rng.integers(0, 5))):
        m = int(rng.integers(0, persons))
        frame = int(rng.integers(0, total))
        joints = rng.choice(_NUM_JOINTS, size=int(rng.integers(1, 4)), replace=False)
        out[m, frame, joints] = 0.0
    return out.astype(np.float32)


def _sample_seed(seed: int, class_name: str, index: int) -> np.random.SeedSequence:
    # Keyed by the class *name* and index so a sample never depends on which samples or classes
    # were generated before it.
    return np.random.SeedSequence(seed, spawn_key=(zlib.crc32(class_name.encode()), index))


def generate_skeleton_dataset(
    samples_per_class: int = 60,
    seed: int = 0,
    val_fraction: float = 0.25,
    min_frames: int = 30,
    max_frames: int = 300,
) -> dict:
    """Generate the synthetic dataset as a pyskl-style annotation dict (``split``, ``annotations``,
    ``classes``); the split is stratified per class."""
    if samples_per_class < 1:
        raise ValueError(f"samples_per_class must be at least 1, got {samples_per_class}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 8 <= min_frames <= max_frames:
        raise ValueError(f"need 8 <= min_frames <= max_frames, got {min_frames} and {max_frames}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")

    n_val = round(val_fraction * samples_per_class)
    if val_fraction > 0 and samples_per_class > 1:
        n_val = min(max(n_val, 1), samples_per_class - 1)
    annotations, train, val = [], [], []
    for label, name in enumerate(SKELETON_CLASSES):
        persons = 2 if name in INTERACTION_CLASSES else 1
        for i in range(samples_per_class):
            rng = np.random.default_rng(_sample_seed(seed, name, i))
            params = sample_params(rng, min_frames, max_frames)
            keypoint = _corrupt(render_clean(name, params), persons, rng)
            sample_id = f"synth_s{seed}_c{label:02d}_{i:04d}"
            annotations.append(
                {
                    "frame_dir": sample_id,
                    "total_frames": keypoint.shape[1],
                    "label": label,
                    "keypoint": keypoint,
                }
            )
            # Samples are i.i.d., so the last ones of each class make an unbiased stratified split.
            (val if i >= samples_per_class - n_val else train).append(sample_id)
    return {
        "split": {"train": train, "val": val},
        "annotations": annotations,
        "classes": list(SKELETON_CLASSES),
    }
