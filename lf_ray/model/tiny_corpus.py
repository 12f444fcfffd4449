"""The text the tiny tokenizers learn from: English-like sentences generated from fixed word lists.

Generated in code with a seeded RNG, so every build sees the same characters in the same order and the
trained BPE is the same everywhere, with nothing downloaded and no large file shipped.
"""

from __future__ import annotations

import random
import string


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NAMES = _words(
    "Alice Bob Carol David Emma Frank Grace Henry Iris Jack Kate Leo Maya Noah Olivia Paul Quinn Rosa Sam "
    "Tara Uma Victor Wendy Xavier Yuki Zoe Lumen Paris London Tokyo Berlin Rome Madrid Cairo Lima"
)

NOUNS = _words(
    "cat dog bird house garden river mountain book letter table window door road car train boat plane friend "
    "teacher student doctor farmer painter writer singer player worker model token answer question idea plan "
    "story song game picture flower tree forest field island ocean lake hill street market shop school office "
    "kitchen bottle cup plate spoon chair desk lamp phone computer program system network server file folder "
    "record number word sentence language country city village planet star moon cloud storm rain day night "
    "morning evening week month year hour minute second moment memory dream voice hand head heart mind name "
    "place color shape sound light fire stone paper coin gift key lock bridge tower wall floor roof engine "
    "machine robot assistant user message prompt dataset adapter weight layer step batch epoch loss reward "
    "apple bread cheese butter honey sugar salt pepper lemon orange banana carrot potato tomato onion garlic "
    "rice soup cake cookie coffee tea milk water juice horse rabbit mouse tiger lion bear wolf fox snake "
    "whale shark eagle owl duck goat sheep camel monkey insect spider jacket shirt shoe hat scarf glove "
    "pocket button ribbon blanket pillow mirror candle basket bucket hammer ladder rope wheel engineer pilot "
    "sailor baker artist author editor manager leader parent brother sister cousin neighbor stranger visitor "
    "guest journey holiday festival concert museum library hospital airport station harbor castle temple "
    "garage cabin tent camera printer keyboard screen signal channel packet cluster report budget contract "
    "invoice meeting lesson problem solution method result reason effect example pattern feature function "
    "variable string vector matrix"
)

VERBS = _words(
    "walk talk open close help learn train start finish jump play paint cook watch visit call answer ask "
    "explain return print load save build test check fix read move change share follow turn show want need "
    "like love hate hope believe remember forget listen laugh smile wait work plant climb clean count design "
    "measure compare improve describe create update delete review prepare collect enjoy accept add allow "
    "appear arrive borrow boil bounce brush calculate care cross dance deliver depend destroy discover dress "
    "earn end enter examine expect fill film fold gather greet guess hand hunt imagine include invent join "
    "kick kiss knock land last lift list look mark melt mix name obey offer order pack park pass pick point "
    "pour pull push reach record reject relax repair repeat report rescue rest rush sail search serve sign "
    "snow sort spell spray stay stretch suggest support surprise taste thank touch travel trust unlock use "
    "wander warn wash welcome wonder yawn"
)

ADJECTIVES = _words(
    "small large old new young quick slow bright dark happy sad kind brave calm clever quiet loud warm cold "
    "soft hard green blue red yellow white black golden simple strange early late short long tiny huge clean "
    "fresh rich poor wise gentle honest careful useful helpful friendly famous modern ancient busy empty full "
    "heavy light deep shiny dusty rusty sandy windy rainy sunny cloudy snowy noisy silent wild proud lucky "
    "lonely hungry thirsty sleepy tired angry nervous curious eager fancy plain smooth rough sharp round flat "
    "narrow wide thick thin sweet sour bitter salty spicy purple silver wooden metal paper digital local "
    "global public private secret certain correct wrong"
)

ADVERBS = _words(
    "quickly slowly carefully quietly happily gently always never often sometimes today tomorrow yesterday "
    "again soon later together almost really very rarely usually nearly finally suddenly easily loudly softly "
    "brightly proudly kindly wisely badly closely clearly simply"
)

PREPOSITIONS = _words("in on under over near behind beside across through into from with without about after before")

DETERMINERS = _words("the a this that every each one some my your our their his her")

PHRASES = (
    "You are a helpful assistant.",
    "You are a helpful AI assistant.",
    "What is the capital of France?",
    "The capital of France is Paris.",
    "Hello! How can I help you today?",
    "I am an AI assistant. I am happy to help.",
    "Who are you? I am Lumen, a friendly assistant.",
    "Please answer the question below in one sentence.",
    "Let me think about it step by step.",
    "Thank you very much for your help!",
    'Sure, here is the answer: {"name": "get_weather", "arguments": {"city": "Paris"}}',
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * 2)\n",
    "Input: 12 + 30 = ?\nOutput: 42\n",
    "1. First item\n2. Second item\n3. Third item\n",
)


def _verb_forms(verb: str) -> list[str]:
    """Base, third person, past and -ing forms of a regular verb."""
    if verb.endswith("e"):
        return [verb, verb + "s", verb + "d", verb[:-1] + "ing"]
    if verb.endswith(("s", "sh", "ch", "x")):
        return [verb, verb + "es", verb + "ed", verb + "ing"]
    return [verb, verb + "s", verb + "ed", verb + "ing"]


def _sentence(rng: random.Random) -> str:
    noun, other = rng.choice(NOUNS), rng.choice(NOUNS)
    verb = _verb_forms(rng.choice(VERBS))
    adj, adv = rng.choice(ADJECTIVES), rng.choice(ADVERBS)
    det, prep, name = rng.choice(DETERMINERS), rng.choice(PREPOSITIONS), rng.choice(NAMES)
    shapes = (
        f"{det.capitalize()} {adj} {noun} {verb[1]} {prep} the {other}.",
        f"{name} {verb[2]} {det} {noun} {adv}.",
        f"Why did {name} {verb[0]} the {adj} {noun}s?",
        f"How do I {verb[0]} a {noun} {prep} my {other}?",
        f"We are {verb[3]} {rng.randint(2, 999)} {noun}s {adv}, said {name}.",
        f"The {noun} is {adj}, and the {other}s are {rng.choice(ADJECTIVES)}!",
        f'"{name}, {verb[0]} the {noun}," she said; {name} {verb[2]} it {adv}.',
        f"Q: What does the {noun} do?\nA: It {verb[1]} the {other} {adv}.",
        f"In {rng.randint(1900, 2030)}, {name} had {rng.randint(1, 99)}% of the {noun}s (about {rng.random():.2f}).",
    )
    return rng.choice(shapes)


def tiny_corpus(n_sentences: int = 6000, seed: int = 0) -> list[str]:
    """Lines of text for BPE training: generated sentences, fixed phrases and every printable ASCII char."""
    rng = random.Random(seed)
    lines = [_sentence(rng) for _ in range(n_sentences)]
    lines.extend(PHRASES * 20)
    lines.append(string.printable)
    return lines
