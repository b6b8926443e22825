"""Poems and critiques for the gate's tests.

HUMAN: public-domain poems (published in the United States before 1929) and poems written
for these tests in a human workshop voice: particular nouns, uneven lines, no reflexive
rhyme. MACHINE: poems written for these tests in the machine-poem signature that
persona/anti_llm_isms.txt and the slop-score research describe: rhymed quatrains, a "we" voice,
tapestry-and-whisper vocabulary, an explaining last line.

REAL_CORPUS: the folder of real poems (../shared/corpus/, beside the checkout), read in
place and never copied here (its machine side is licensed for non-commercial use);
`require_corpus` skips without it, and fails in CI, where it is always placed.
"""

import os
from pathlib import Path

import pytest

REAL_CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def require_corpus() -> Path:
    """The real-poem corpus folder, or a skip that says where it belongs (a failure under CI)."""
    if not (REAL_CORPUS / "human.jsonl").is_file() or not (REAL_CORPUS / "llm.jsonl").is_file():
        message = f"{REAL_CORPUS} holds no human.jsonl and llm.jsonl; place the shared corpus beside the checkout"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REAL_CORPUS


HUMAN = [
    # Carl Sandburg, "Fog" (1916)
    "The fog comes\non little cat feet.\n\nIt sits looking\nover harbor and city\non silent haunches\nand then moves on.",
    # William Carlos Williams, "The Red Wheelbarrow" (1923)
    "so much depends\nupon\n\na red wheel\nbarrow\n\nglazed with rain\nwater\n\nbeside the white\nchickens",
    # Ezra Pound, "In a Station of the Metro" (1913)
    "The apparition of these faces in the crowd;\nPetals on a wet, black bough.",
    # H.D., "Oread" (1914)
    "Whirl up, sea—\nwhirl your pointed pines,\nsplash your great pines\non our rocks,\nhurl your green over us,\n"
    "cover us with your pools of fir.",
    # Carl Sandburg, "Grass" (1918)
    "Pile the bodies high at Austerlitz and Waterloo.\nShovel them under and let me work—\n"
    "I am the grass; I cover all.\n\nAnd pile them high at Gettysburg\nAnd pile them high at Ypres and Verdun.\n"
    "Shovel them under and let me work.\nTwo years, ten years, and passengers ask the conductor:\n"
    "What place is this?\nWhere are we now?\n\nI am the grass.\nLet me work.",
    # Stephen Crane, "In the desert" (1895)
    "In the desert\nI saw a creature, naked, bestial,\nWho, squatting upon the ground,\nHeld his heart in his hands,\n"
    "And ate of it.\nI said, \"Is it good, friend?\"\n\"It is bitter—bitter,\" he answered;\n\"But I like it\n"
    "\"Because it is bitter,\n\"And because it is my heart.\"",
    # Amy Lowell, "Wind and Silver" (1919)
    "Greatly shining,\nThe Autumn moon floats in the thin sky;\nAnd the fish-ponds shake their backs and flash their "
    "dragon scales\nAs she passes over them.",
    # Written for these tests.
    "The hose kicks in the yard\nwhere my father left it coiled,\na green snake with a brass head\n"
    "that nobody has fed since March.\nI turn the tap a quarter.\nIt coughs rust, then clear water,\n"
    "then nothing I can name.",
    "At the bus stop the rain\nwrites nothing on the shelter glass\nbut the number 14, backwards,\n"
    "and the ghost of a hand\nsomeone pressed there to see out.\nThe timetable lies in two languages.",
    "My aunt counts pills into a saucer\nthe way she once counted buttons,\nby colour, then by size,\n"
    "the white ones last because they matter most.\nShe hums the weather forecast.\n"
    "Tuesday, rain. Wednesday, the blue ones.",
    "The night nurse eats an orange\nin the dark of the ward office,\npeel in one long curl\n"
    "she drapes on the radiator\nto scent the corridor.\nBed six asks for his wife.\nShe tells him, soon.",
    "Dad kept his bolts in baby-food jars\nscrewed lid-up under the bench,\nso the shed ceiling\n"
    "was a sky of screws.\nI took one down today,\nM6, the size he always ran out of,\nand put it back.",
    "Forty minutes on hold with the council\nabout my mother's bins.\nThe music is Vivaldi, Spring,\n"
    "looped so often it has become a season\nof its own, a wet one,\nand I am its only citizen.",
    "She learned to swim at fifty-one\nin the council pool at seven a.m.,\nlane three, between a triathlete\n"
    "and a man who floated on his back\nreading the ceiling tiles.\nBy June she could breathe on the left.",
    "The power cut came at the good part.\nWe found the candles in the biscuit tin,\nthe matches in the fridge,\n"
    "don't ask. My brother told the ending\nfrom memory, wrongly, and better.",
    "The removal men wrapped the mirror\nin a grey blanket like a patient\nand carried it down three flights\n"
    "feet first. In the new hall\nit showed me a stranger's wallpaper\nuntil I hung it.",
]

MACHINE = [
    "In the tapestry of life we weave,\nA symphony of dreams we dare believe,\nThrough whispers soft and echoes deep,\n"
    "Our hearts hold memories we keep.\n\nBeneath the stars our spirits soar,\nWe find the love we're searching for,\n"
    "And in the end we come to see,\nThat love's the key to set us free.",
    "We walk together hand in hand,\nAcross the golden shifting sand,\nOur souls entwined in sweet embrace,\n"
    "Within this sacred, timeless space.\n\nThe ocean whispers to the shore,\nA melody forevermore,\n"
    "And we will rise and we will shine,\nOur hearts united, yours and mine.",
    "The whispers of the ancient trees\nRemind us of eternity,\nThey dance upon the gentle breeze,\n"
    "And set our weary spirits free.\n\nIn every leaf a story told,\nA tapestry of green and gold,\n"
    "We learn at last what nature knows:\nThat life, like rivers, ebbs and flows.",
    "Our hearts are vessels made of light,\nThat guide us through the darkest night,\nWith every step we find our way,\n"
    "Toward the dawn of a brighter day.\n\nThe echoes of our yesterdays,\nDissolve like mist in golden haze,\n"
    "And we emerge, renewed and whole,\nWith hope alive within the soul.",
    "It is not the end but a beginning,\nA journey where our souls keep spinning,\nThrough the tapestry of time we roam,\n"
    "Until at last we find our home.\n\nThe stars above us softly gleam,\nIlluminating every dream,\n"
    "And in this dance of light and shade,\nWe find the love that will not fade.",
    "We gather in the twilight's glow,\nWhere gentle rivers softly flow,\nOur laughter echoes through the air,\n"
    "A testament to love we share.\n\nThe seasons turn, the years go by,\nBeneath the vast and endless sky,\n"
    "Yet still we hold what matters most:\nThe bonds we cherish, coast to coast.",
    "In the quiet of the morning light,\nWe let our worries take their flight,\nThe world awakens, fresh and new,\n"
    "With skies of an ethereal blue.\n\nEach moment is a precious gift,\nThat helps our weary spirits lift,\n"
    "And so we learn, as time unfolds,\nThe greatest treasures can't be sold.",
    "The city hums a symphony,\nOf dreams and hopes and destiny,\nWe navigate its winding streets,\n"
    "Where every heart in rhythm beats.\n\nAmidst the chaos and the noise,\nWe find our strength, we find our poise,\n"
    "For in the end it's plain to see,\nTogether we are meant to be.",
    "Memories whisper through the halls,\nLike echoes on forgotten walls,\nWe hold the moments, soft and dear,\n"
    "That time cannot erase from here.\n\nOur grandmother's kitchen, warm and bright,\nA beacon in the winter night,\n"
    "And there we learned what love could be:\nA tapestry of family.",
    "The ocean's vast and endless blue,\nReflects the dreams we hold as true,\nIts waves embrace the sandy shore,\n"
    "And whisper secrets evermore.\n\nWe stand in awe of nature's might,\nBeneath the moon's ethereal light,\n"
    "And realize, as spirits soar,\nThat we are part of something more.",
]

POEM = HUMAN[7]  # the hose poem: seven lines

GOOD_CRITIQUE = (
    "The poem wants to say what a father's absence does to an ordinary object, and it mostly lets the object "
    "do the saying.\n\n"
    "What works: \"a green snake with a brass head\" (line 3) gives the hose a body without announcing a "
    "metaphor, and \"that nobody has fed since March\" (line 4) turns the image toward the absence quietly. "
    "\"I turn the tap a quarter\" (line 5) is exact about a small, careful action.\n\n"
    "What doesn't work yet: \"then nothing I can name\" (line 7) explains the feeling the rust and water were "
    "already carrying; the reader is told there is something unnameable instead of being left with it.\n\n"
    "The craft question is the ending: an image or a plain fact versus a summary.\n\n"
    "What did the water actually do after it ran clear?\n\n"
    "Try ending one line earlier, on the clear water, and see whether the poem still holds the weight."
)

PRAISE_CRITIQUE = (
    "This is a beautiful poem. The imagery is vivid and striking. The voice is strong and moving. "
    "The ending is powerful. Every line works. It is a lovely, gorgeous piece. The sound is excellent. "
    "Try reading it aloud."
)

UNGROUNDED_CRITIQUE = GOOD_CRITIQUE.replace("\"I turn the tap a quarter\" (line 5)",
                                            "\"I twist the silver handle slowly\" (line 9)")

REWRITE_CRITIQUE = GOOD_CRITIQUE + (
    "\n\nHere is how I would write it:\n"
    "The hose lies coiled where he left it\n"
    "green as a garden snake\n"
    "its brass mouth shut since March\n"
    "I open the tap and wait\n"
    "for rust and then for water\n"
)

GOOD_REVISION = POEM.replace("then nothing I can name.", "then a clear thread on the concrete.")
