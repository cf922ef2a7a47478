"""The lessons: sentence sets written for this harness, and how each is spoken.

Each lesson alternates voices, speeds and levels the way a classroom group
does, separates sentences with pauses of 0.3–3 s, and holds one long
thinking pause of 12 s (where a good gateway produces no text and bills
nothing). Everything here is deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SENTENCES: dict[str, tuple[str, ...]] = {
    "science": (
        "Today we will read the chapter about plants and how they make food from sunlight.",
        "Every green leaf has tiny openings that let air move in and out.",
        "The roots pull water from the soil and carry it up through the stem.",
        "Can anyone tell me what gas the leaves give back to the air?",
        "Oxygen, because the plant keeps the carbon and lets the oxygen go.",
        "That is right, and this whole process is called photosynthesis.",
        "Let us write the word on the board and draw a simple picture of a leaf.",
        "Now think about what would happen to a plant kept in a dark cupboard.",
        "I think it would turn yellow and stop growing after a few days.",
        "Good, so light is as important to a plant as water and good soil.",
        "For homework, put two seeds in cups and keep one of them near the window.",
        "Check them every morning and write down how tall each one has grown.",
    ),
    "reading": (
        "Open your books to the story about the lighthouse keeper and her dog.",
        "Sam, would you please read the first page out loud for the group?",
        "The keeper climbed the winding stairs every evening to light the lamp.",
        "One stormy night the lamp went dark and a small boat was lost at sea.",
        "Her dog barked at the door until she followed him down to the rocks.",
        "Why do you think the dog knew that something was wrong?",
        "Maybe he could hear the sailors calling even through the wind and rain.",
        "Yes, and the author wants us to notice how brave the little dog was.",
        "Let us find the sentence that tells us how the keeper felt.",
        "She was frightened but she held the lantern high and kept walking.",
        "Tomorrow we will write our own ending for the story.",
    ),
    "maths": (
        "Maya has twelve apples and she gives three of them to Omar.",
        "How many apples does Maya have left now?",
        "She has nine apples left because twelve minus three is nine.",
        "Good work, now Omar shares his apples equally with Priya and Lucas.",
        "So each of the three friends gets one apple from Omar.",
        "Let us try a harder one with fractions on the whiteboard.",
        "If a pizza has eight slices and Daniel eats two, what fraction is gone?",
        "Two out of eight is the same as one quarter of the pizza.",
        "Ms Rivera asks the class to check the answer with a drawing.",
        "Draw a circle, cut it into eight pieces, and shade two of them.",
        "Now Aisha will explain her answer to the twenty five students.",
    ),
}

#: Each lesson's class vocabulary: what a teacher would type when making the group's link.
VOCABULARY: dict[str, tuple[str, ...]] = {
    "science": ("photosynthesis", "oxygen", "carbon", "sunlight", "openings", "cupboard"),
    "reading": ("lighthouse", "keeper", "lantern", "sailors", "Sam"),
    "maths": (
        "Maya", "Omar", "Priya", "Lucas", "Daniel", "Ms Rivera", "Aisha", "fractions",
        "whiteboard", "pizza", "quarter",
    ),
}  # fmt: skip

VOICES = ("en-us", "en-gb+f3", "en-us+m3", "en-gb", "en-us+f4")
SPEEDS = (140, 155, 165, 150)
#: Speaker levels in dB relative to espeak-ng's default (a near and a far speaker).
LEVELS_DB = (0.0, -4.0, -8.0, -2.0)
LONG_PAUSE_SECONDS = 12.0
#: Steady noise floors, in dBFS (RMS).
NOISE_LEVELS: dict[str, float | None] = {"none": None, "quiet": -60.0, "classroom": -45.0}


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str
    voice: str
    speed: int
    level_db: float
    #: Silence after this sentence, seconds.
    pause_after: float


def lesson(name: str, *, sentences: int | None = None, seed: int = 7) -> list[Utterance]:
    """How lesson ``name`` is spoken (its first ``sentences`` sentences if given); one
    long pause falls in the middle."""
    if name not in SENTENCES:
        raise ValueError(f"unknown lesson {name!r}: {', '.join(SENTENCES)}")
    texts = SENTENCES[name][:sentences] if sentences else SENTENCES[name]
    rng = random.Random(f"{name}:{seed}")
    long_after = max(0, len(texts) // 2 - 1)
    spoken = []
    for i, text in enumerate(texts):
        pause = LONG_PAUSE_SECONDS if i == long_after else round(rng.uniform(0.3, 3.0), 2)
        spoken.append(
            Utterance(
                text=text,
                voice=VOICES[i % len(VOICES)],
                speed=SPEEDS[i % len(SPEEDS)],
                level_db=LEVELS_DB[i % len(LEVELS_DB)],
                pause_after=pause if i < len(texts) - 1 else 1.0,
            )
        )
    return spoken
