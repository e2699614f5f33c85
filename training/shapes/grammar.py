"""Prompt grammar of the shapes world: GenEval-style task types, each prompt with a structured spec.

Images cover six task types (`TASKS`); videos add a motion to one coloured object ("a red circle
moving right", "a blue square falling"); multi-view sets show one coloured 3D solid ("a red cube").
Every text is produced from a `PromptSpec` and parses back to it (`parse`), so a model conditioned
on text alone can still be verified exactly.

Two-object prompts always name two different shapes: the verifier groups detected objects by
shape, and distinct shapes keep that grouping unambiguous. Colour attribution and position use two
different colours so that a swapped-colour render is always a visible mistake.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass

import numpy as np

TASKS = ("single_object", "two_objects", "counting", "colors", "position", "color_attr")
VIDEO_TASK = "motion"
MULTIVIEW_TASK = "solid"
MODALITIES = ("image", "video", "multiview")

SHAPES = ("circle", "square", "triangle")
SOLIDS = ("cube", "pyramid", "sphere", "cylinder")
COLORS = ("red", "green", "blue", "yellow")
RELATIONS = ("left of", "right of", "above", "below")
MOTIONS = ("left", "right", "up", "down", "falling", "bouncing")
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
MAX_COUNT = 4
EVAL_PER_TASK = 32

_WORD_COUNTS = {word: n for n, word in COUNT_WORDS.items()}
_PLURALS = {shape: shape + "s" for shape in SHAPES}
_SINGULARS = {plural: shape for shape, plural in _PLURALS.items()}
_MOTION_TEXT = {
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "falling": "falling",
    "bouncing": "bouncing",
}


@dataclass(frozen=True)
class ObjectSpec:
    """One group of identical objects: `count` of `shape`, all of `color` (None: any colour)."""

    shape: str
    color: str | None = None
    count: int = 1

    def phrase(self) -> str:
        colour = f"{self.color} " if self.color else ""
        if self.count == 1:
            return f"a {colour}{self.shape}"
        return f"{COUNT_WORDS[self.count]} {colour}{_PLURALS[self.shape]}"


@dataclass(frozen=True)
class PromptSpec:
    """A prompt's structure. `relation` reads objects[0] <relation> objects[1]; `motion` is for video;
    a multi-view spec has one object whose shape is a solid."""

    task: str
    objects: tuple[ObjectSpec, ...]
    relation: str | None = None
    motion: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def modality(self) -> str:
        if self.task == VIDEO_TASK:
            return "video"
        if self.task == MULTIVIEW_TASK:
            return "multiview"
        return "image"

    @property
    def solid(self) -> str | None:
        return self.objects[0].shape if self.task == MULTIVIEW_TASK else None

    @property
    def text(self) -> str:
        first = self.objects[0]
        if self.task == "counting":
            # "one red circle", never "a red circle": that text belongs to the colours task.
            noun = first.shape if first.count == 1 else _PLURALS[first.shape]
            return f"{COUNT_WORDS[first.count]} {first.color} {noun}"
        if self.task == "position":
            return f"{first.phrase()} {self.relation} {self.objects[1].phrase()}"
        if self.task in ("two_objects", "color_attr"):
            return f"{first.phrase()} and {self.objects[1].phrase()}"
        if self.task == VIDEO_TASK:
            return f"{first.phrase()} {_MOTION_TEXT[self.motion]}"
        return first.phrase()

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "text": self.text,
            "objects": [{"shape": o.shape, "color": o.color, "count": o.count} for o in self.objects],
            "relation": self.relation,
            "motion": self.motion,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PromptSpec:
        objects = tuple(ObjectSpec(o["shape"], o.get("color"), int(o.get("count", 1))) for o in data["objects"])
        return cls(data["task"], objects, data.get("relation"), data.get("motion"))


def _validate(spec: PromptSpec) -> None:
    task, objs = spec.task, spec.objects
    if task not in (*TASKS, VIDEO_TASK, MULTIVIEW_TASK):
        raise ValueError(f"unknown task {task!r}")
    n_expected = 2 if task in ("two_objects", "position", "color_attr") else 1
    if len(objs) != n_expected:
        raise ValueError(f"{task} needs {n_expected} object group(s), got {len(objs)}")
    allowed_shapes = SOLIDS if task == MULTIVIEW_TASK else SHAPES
    for o in objs:
        if o.shape not in allowed_shapes:
            raise ValueError(f"shape {o.shape!r} not allowed in {task}")
        if o.color is not None and o.color not in COLORS:
            raise ValueError(f"unknown colour {o.color!r}")
        if not 1 <= o.count <= (MAX_COUNT if task == "counting" else 1):
            raise ValueError(f"count {o.count} not allowed in {task}")
    needs_colour = task not in ("single_object", "two_objects")
    if any((o.color is not None) != needs_colour for o in objs):
        raise ValueError(f"{task} {'needs' if needs_colour else 'takes no'} colours")
    if n_expected == 2:
        if objs[0].shape == objs[1].shape:
            raise ValueError("two-object prompts name two different shapes")
        if needs_colour and objs[0].color == objs[1].color:
            raise ValueError("two-object prompts with colours use two different colours")
    if (spec.relation is not None) != (task == "position") or (spec.relation and spec.relation not in RELATIONS):
        raise ValueError(f"bad relation {spec.relation!r} for {task}")
    if (spec.motion is not None) != (task == VIDEO_TASK) or (spec.motion and spec.motion not in MOTIONS):
        raise ValueError(f"bad motion {spec.motion!r} for {task}")


_CANONICAL_RELATION = {"right of": "left of", "below": "above"}
_OPPOSITE_RELATION = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def meaning(spec: PromptSpec) -> tuple:
    """What a prompt asks for, independent of its wording: "a circle and a square" and "a square and
    a circle" mean the same, as do "a red circle left of a blue square" and "a blue square right of
    a red circle". Equal for two specs exactly when every render satisfies both or neither."""
    objects: tuple = spec.objects
    relation = spec.relation
    if spec.task in ("two_objects", "color_attr"):
        objects = tuple(sorted(objects, key=lambda o: (o.shape, o.color or "")))
    elif relation in _CANONICAL_RELATION:
        objects, relation = objects[::-1], _CANONICAL_RELATION[relation]
    return (spec.task, objects, relation, spec.motion)


def neighbours(spec: PromptSpec) -> list[PromptSpec]:
    """Image prompts one edit away from `spec`, each asking for something else: another shape or
    colour of one object, a count one off, the relation or the colours swapped, an object left out
    or one more added (as NegCLIP perturbs captions into hard negatives). Video and multi-view
    prompts change their motion, shape or colour."""
    out: list[PromptSpec] = []

    def add(task: str, objects, relation=None, motion=None) -> None:
        try:
            candidate = PromptSpec(task, tuple(objects), relation, motion)
        except ValueError:
            return  # an edit the grammar cannot say (two equal shapes, equal colours, count 5)
        if meaning(candidate) != meaning(spec) and candidate not in out:
            out.append(candidate)

    objs, task = spec.objects, spec.task
    shapes = SOLIDS if task == MULTIVIEW_TASK else SHAPES

    def replaced(i: int, new: ObjectSpec) -> tuple[ObjectSpec, ...]:
        return objs[:i] + (new,) + objs[i + 1 :]

    for i, o in enumerate(objs):
        for shape in shapes:
            add(task, replaced(i, ObjectSpec(shape, o.color, o.count)), spec.relation, spec.motion)
        if o.color:
            for colour in COLORS:
                add(task, replaced(i, ObjectSpec(o.shape, colour, o.count)), spec.relation, spec.motion)
    if task == "counting":
        o = objs[0]
        for n in (o.count - 1, o.count + 1):
            add(task, (ObjectSpec(o.shape, o.color, n),))
    if task == VIDEO_TASK:
        for motion in MOTIONS:
            add(task, objs, motion=motion)
    if len(objs) == 2:
        a, b = objs
        if a.color:
            swapped = (ObjectSpec(a.shape, b.color), ObjectSpec(b.shape, a.color))
            add(task, swapped, spec.relation)
        if spec.relation:
            add(task, objs, _OPPOSITE_RELATION[spec.relation])
        single = "colors" if a.color else "single_object"
        add(single, (a,))
        add(single, (b,))
    elif task in ("single_object", "colors"):
        o = objs[0]
        pair_task = "color_attr" if o.color else "two_objects"
        for shape in SHAPES:
            for colour in COLORS if o.color else (None,):
                add(pair_task, (o, ObjectSpec(shape, colour)))
    return out


def all_specs(task: str) -> list[PromptSpec]:
    """Every spec of a task type, in a fixed canonical order."""
    pairs = list(itertools.permutations(SHAPES, 2))
    colour_pairs = list(itertools.permutations(COLORS, 2))
    if task == "single_object":
        return [PromptSpec(task, (ObjectSpec(s),)) for s in SHAPES]
    if task == "two_objects":
        return [PromptSpec(task, (ObjectSpec(a), ObjectSpec(b))) for a, b in pairs]
    if task == "counting":
        return [
            PromptSpec(task, (ObjectSpec(s, c, n),)) for n in range(1, MAX_COUNT + 1) for s in SHAPES for c in COLORS
        ]
    if task == "colors":
        return [PromptSpec(task, (ObjectSpec(s, c),)) for s in SHAPES for c in COLORS]
    if task == "position":
        return [
            PromptSpec(task, (ObjectSpec(a, ca), ObjectSpec(b, cb)), relation=r)
            for r in RELATIONS
            for a, b in pairs
            for ca, cb in colour_pairs
        ]
    if task == "color_attr":
        return [PromptSpec(task, (ObjectSpec(a, ca), ObjectSpec(b, cb))) for a, b in pairs for ca, cb in colour_pairs]
    if task == VIDEO_TASK:
        return [PromptSpec(task, (ObjectSpec(s, c),), motion=m) for m in MOTIONS for s in SHAPES for c in COLORS]
    if task == MULTIVIEW_TASK:
        return [PromptSpec(task, (ObjectSpec(s, c),)) for s in SOLIDS for c in COLORS]
    raise ValueError(f"unknown task {task!r}")


def _task_rng(task: str) -> np.random.Generator:
    # crc32, not hash(): str hashes are salted per process and the eval sets must not move.
    return np.random.default_rng(zlib.crc32(f"loupe-eval-{task}".encode()))


def eval_prompts(task: str, n: int = EVAL_PER_TASK) -> list[PromptSpec]:
    """A fixed evaluation set: up to `n` distinct specs of one task, drawn with a seed of its own.

    Tasks with fewer than `n` distinct prompts (single_object has 3) return all of them.
    Video and multi-view specs use their own tasks: "motion" and "solid".
    """
    specs = all_specs(task)
    if task == VIDEO_TASK:
        # Balanced over motions so that every kind of movement is evaluated equally often.
        rng = _task_rng(task)
        by_motion = [[s for s in specs if s.motion == m] for m in MOTIONS]
        picked = [[group[i] for i in rng.permutation(len(group))] for group in by_motion]
        interleaved = [g[i] for i in range(len(picked[0])) for g in picked]
        return interleaved[:n]
    order = _task_rng(task).permutation(len(specs))
    return [specs[i] for i in order[:n]]


def eval_prompts_for_modality(modality: str) -> list[PromptSpec]:
    """The evaluation set of a modality. Images interleave the task types (one of each in turn), so
    any prefix is balanced across tasks; video has 48 motion prompts (8 per motion); multi-view has
    all 16 coloured solids."""
    if modality == "image":
        lists = [eval_prompts(task) for task in TASKS]
        out = []
        for i in range(max(len(x) for x in lists)):
            out.extend(x[i] for x in lists if i < len(x))
        return out
    if modality == "video":
        return eval_prompts(VIDEO_TASK, n=48)
    if modality == "multiview":
        return eval_prompts(MULTIVIEW_TASK, n=len(SOLIDS) * len(COLORS))
    raise ValueError(f"unknown modality {modality!r}")


def sample_prompt(rng: np.random.Generator, task: str | None = None, modality: str = "image") -> PromptSpec:
    """A random spec for training data: uniform over task types, then uniform within the task."""
    if modality == "video":
        task = task or VIDEO_TASK
    elif modality == "multiview":
        task = task or MULTIVIEW_TASK
    elif modality == "image":
        task = task or TASKS[int(rng.integers(len(TASKS)))]
    else:
        raise ValueError(f"unknown modality {modality!r}")
    specs = _cached_specs(task)
    return specs[int(rng.integers(len(specs)))]


_SPEC_CACHE: dict[str, list[PromptSpec]] = {}


def _cached_specs(task: str) -> list[PromptSpec]:
    if task not in _SPEC_CACHE:
        _SPEC_CACHE[task] = all_specs(task)
    return _SPEC_CACHE[task]


def vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted (for a word-level tokenizer)."""
    words = {"a", "and", "moving", *COUNT_WORDS.values(), *SHAPES, *_PLURALS.values(), *SOLIDS, *COLORS}
    words.update(w for r in RELATIONS for w in r.split())
    words.update(w for m in _MOTION_TEXT.values() for w in m.split())
    return sorted(words)


def _parse_phrase(words: list[str]) -> tuple[ObjectSpec, list[str], bool]:
    """One noun phrase from the front of `words`; returns it, the rest and whether a count word led it."""
    if not words:
        raise ValueError("expected a noun phrase")
    head, rest = words[0], words[1:]
    if head == "a":
        count, counted = 1, False
    elif head in _WORD_COUNTS:
        count, counted = _WORD_COUNTS[head], True
    else:
        raise ValueError(f"expected 'a' or a number, got {head!r}")
    color = None
    if rest and rest[0] in COLORS:
        color, rest = rest[0], rest[1:]
    if not rest:
        raise ValueError("expected a shape")
    noun, rest = rest[0], rest[1:]
    if count == 1 and (noun in SHAPES or noun in SOLIDS):
        return ObjectSpec(noun, color, 1), rest, counted
    if count > 1 and noun in _SINGULARS:
        return ObjectSpec(_SINGULARS[noun], color, count), rest, counted
    raise ValueError(f"unexpected word {noun!r}")


def parse(text: str) -> PromptSpec:
    """The spec of a grammar text; raises ValueError for anything the grammar cannot produce."""
    words = text.strip().lower().split()
    first, rest, counted = _parse_phrase(words)
    if counted:
        if rest:
            raise ValueError(f"trailing words {rest!r}")
        return PromptSpec("counting", (first,))
    if not rest:
        if first.shape in SOLIDS:
            return PromptSpec(MULTIVIEW_TASK, (first,))
        return PromptSpec("colors" if first.color else "single_object", (first,))
    joined = " ".join(rest)
    for motion, phrase in _MOTION_TEXT.items():
        if joined == phrase:
            return PromptSpec(VIDEO_TASK, (first,), motion=motion)
    if rest[0] == "and":
        second, tail, _ = _parse_phrase(rest[1:])
        if tail:
            raise ValueError(f"trailing words {tail!r}")
        return PromptSpec("color_attr" if first.color else "two_objects", (first, second))
    for relation in RELATIONS:
        n = len(relation.split())
        if " ".join(rest[:n]) == relation:
            second, tail, _ = _parse_phrase(rest[n:])
            if tail:
                raise ValueError(f"trailing words {tail!r}")
            return PromptSpec("position", (first, second), relation=relation)
    raise ValueError(f"cannot parse {text!r}")
