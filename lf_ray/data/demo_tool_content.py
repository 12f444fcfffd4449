"""Fixed content tables for the tool-calling and pretraining demo datasets (see `demo_datasets.py`).

Plain data only, like `demo_content.py` (identity and instruction content). Edit a table, then regenerate
with `python -m lf_ray.data.demo_datasets`.
"""

from __future__ import annotations

# --- tool calling -------------------------------------------------------------------------------------------

TOOLS = {
    "get_current_weather": {
        "name": "get_current_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
            },
            "required": ["city"],
        },
    },
    "calculate": {
        "name": "calculate",
        "description": "Evaluate an arithmetic expression",
        "parameters": {
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "The expression, e.g. 12 * (3 + 4)"},
            },
            "required": ["expression"],
        },
    },
    "convert_units": {
        "name": "convert_units",
        "description": "Convert a value from one unit of measurement to another",
        "parameters": {
            "type": "object",
            "properties": {
                "value": {"type": "number", "description": "The value to convert"},
                "from_unit": {"type": "string", "description": "The unit of the value, e.g. kilometers"},
                "to_unit": {"type": "string", "description": "The unit to convert to, e.g. miles"},
            },
            "required": ["value", "from_unit", "to_unit"],
        },
    },
    "get_time_difference": {
        "name": "get_time_difference",
        "description": "Get the standard-time difference in hours between two cities",
        "parameters": {
            "type": "object",
            "properties": {
                "city_a": {"type": "string", "description": "The first city"},
                "city_b": {"type": "string", "description": "The second city"},
            },
            "required": ["city_a", "city_b"],
        },
    },
    "search_books": {
        "name": "search_books",
        "description": "Search a library catalogue for books by title or author",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "A title or an author name"},
            },
            "required": ["query"],
        },
    },
}

WEATHER_CITIES = ["Paris", "Tokyo", "London", "Cairo", "Oslo", "Sydney", "Toronto", "Madrid", "Seoul"]
# (condition reported by the tool, how the answer describes it)
MILD_CONDITIONS = [
    ("sunny", "sunny"),
    ("partly cloudy", "partly cloudy"),
    ("overcast", "overcast"),
    ("light rain", "raining lightly"),
    ("clear", "clear"),
    ("windy", "windy"),
]
COLD_CONDITIONS = [("clear", "clear"), ("overcast", "overcast"), ("light snow", "snowing lightly"), ("fog", "foggy")]
WEATHER_PROMPTS = [
    "What's the weather like in {city} right now?",
    "Can you check the current weather in {city}?",
    "I'm heading out in {city}. What's the weather?",
    "How warm is it in {city} at the moment?",
]

# (from unit, to unit, factor, exact); fahrenheit→celsius is handled as a special case
TOOL_CONVERSIONS = [
    ("kilometers", "miles", 0.621371, False),
    ("miles", "kilometers", 1.609344, False),
    ("kilograms", "pounds", 2.20462, False),
    ("pounds", "kilograms", 0.453592, False),
    ("inches", "centimeters", 2.54, True),
    ("liters", "US gallons", 0.264172, False),
    ("fahrenheit", "celsius", None, False),
]

# UTC offsets in standard time (no daylight saving)
UTC_OFFSETS = {
    "Tokyo": 9,
    "London": 0,
    "New York": -5,
    "Paris": 1,
    "Sydney": 10,
    "Los Angeles": -8,
    "New Delhi": 5.5,
    "Dubai": 4,
    "São Paulo": -3,
    "Singapore": 8,
}

BOOKS = [
    ("Pride and Prejudice", "Jane Austen", 1813),
    ("Emma", "Jane Austen", 1815),
    ("Nineteen Eighty-Four", "George Orwell", 1949),
    ("Animal Farm", "George Orwell", 1945),
    ("Oliver Twist", "Charles Dickens", 1838),
    ("Great Expectations", "Charles Dickens", 1861),
    ("The Hobbit", "J. R. R. Tolkien", 1937),
    ("The Fellowship of the Ring", "J. R. R. Tolkien", 1954),
    ("Dune", "Frank Herbert", 1965),
    ("Frankenstein", "Mary Shelley", 1818),
    ("Moby-Dick", "Herman Melville", 1851),
    ("To Kill a Mockingbird", "Harper Lee", 1960),
]

# (prompt, answer) for rows where no tool fits
NO_TOOL_CHATS = [
    ("Hi! Who are you?", "Hello! I'm Lumen, an AI assistant developed by the lf-ray team. How can I help you today?"),
    ("Can you book a flight to Rome for me?",
     "I'm sorry, but I can't book flights because I don't have a booking tool. I can help you plan the trip, "
     "though."),
    ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field!"),
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("Can you order a pizza for me?",
     "I'm sorry, I can't place orders because I don't have a tool for that. I'm happy to suggest toppings, "
     "though!"),
    ("What's a good name for a cat?", "How about Luna, Milo or Pepper? Short names are easy for cats to learn."),
    ("Thanks for your help!", "You're welcome! Let me know if there's anything else I can do."),
    ("Who made you?", "I'm Lumen, an AI assistant built by the lf-ray team."),
]  # fmt: skip

# --- pretraining prose: topics of sentence templates, filled from SLOTS ------------------------------------

SLOTS = {
    "town": ["Millbrook", "Ashford", "Elderton", "Kingsley", "Westmere", "Harrowgate", "Fairhaven", "Oakridge"],
    "town2": ["the coast", "the capital", "Northbridge", "Riverton", "Southam", "the university town of Lowell"],
    "river": ["Avon", "Tessel", "Marrow", "Glen", "Wyre", "Silverbeck"],
    "season": ["spring", "summer", "autumn", "winter"],
    "name": ["Anna", "Tomas", "Priya", "Samuel", "Leila", "Jonah", "Marta", "Kenji", "Grace", "Omar"],
    "job": ["baker", "postman", "teacher", "carpenter", "nurse", "librarian", "bus driver", "gardener"],
    "animal": ["red fox", "roe deer", "brown hare", "grey heron", "otter", "kingfisher"],
    "habitat": ["woodlands", "river meadows", "hedgerows", "marshes", "hill pastures"],
    "dish": ["vegetable soup", "bean stew", "potato pie", "lentil curry", "mushroom risotto", "baked pasta"],
    "ingredient": ["an onion", "two carrots", "a handful of garlic cloves", "a few ripe tomatoes", "some leeks"],
    "spice": ["paprika", "cumin", "black pepper", "nutmeg", "dried thyme"],
    "crop": ["tomatoes", "beans", "lettuce", "carrots", "courgettes", "strawberries"],
    "skill": ["play the piano", "speak a new language", "draw", "write computer programs", "swim", "knit"],
    "sport": ["football", "cricket", "rowing", "tennis", "cycling", "basketball"],
    "day": ["Sunday", "Friday", "Monday", "cold winter", "rainy"],
    "number": ["two", "three", "four", "five", "six"],
    "building": ["railway station", "wool warehouse", "chapel", "school house", "corn exchange"],
    "trade": ["weaving", "pottery", "fishing", "milling flour", "making furniture"],
}

# Each topic: (openers, body sentences kept in this order when sampled)
PROSE_TOPICS = [
    (
        [
            "The small town of {town} lies along the banks of the {river}, where families have lived for generations.",
            "Few maps give much space to {town}, a quiet place on the river {river}.",
        ],
        [
            "Every {season}, the main square fills with stalls selling {crop}, bread and honey from nearby farms.",
            "Most families in {town} once earned their living from {trade}, and a few workshops still keep the "
            "old methods alive.",
            "A narrow stone bridge crosses the {river}, and children like to stop in the middle to watch the "
            "water rush below.",
            "The library, housed in a former {building}, is the busiest place in town on rainy afternoons.",
            "Visitors often remark on how quiet the streets become after sunset, when the shops close and the "
            "lamps come on.",
            "In recent years, young people have opened cafés and repair shops in buildings that once stood empty.",
            "The council is planning a riverside path so that residents can walk from one end of town to the other.",
            "Even so, the rhythm of life in {town} still follows the seasons more closely than the clock.",
        ],
    ),
    (
        [
            "The {animal} is a familiar sight in the {habitat} around {town}, though few people stop to watch "
            "it closely.",
            "Walkers in the {habitat} near the {river} sometimes catch a glimpse of a {animal}.",
        ],
        [
            "Local naturalists keep careful notes on where and when it appears.",
            "It is most often seen early in the morning, before the paths fill with walkers and dogs.",
            "In {season}, the animals are easier to spot because they spend more time searching for food.",
            "Volunteers have planted native shrubs along the edges of the fields to give wildlife more shelter.",
            "Patience matters more than equipment: a quiet observer with a notebook often sees the most.",
            "Children from the local school take part in an annual count, which helps track changes over time.",
            "Experts say that healthy wetlands and hedgerows support many other species as well.",
            "The best advice for visitors is simple: keep your distance, stay on the path and take your litter home.",
        ],
    ),
    (
        [
            "{Dish} is a simple dish that many families prepare on {day} evenings.",
            "Ask ten cooks how to make {dish} and you will hear ten different recipes.",
        ],
        [
            "The recipe usually begins with {ingredient}, chopped and cooked slowly in a little oil.",
            "Some cooks add a pinch of {spice}, while others insist that the dish needs nothing but salt.",
            "The secret, most agree, is patience: the flavours improve when the pot simmers gently.",
            "It is an inexpensive meal, which is part of the reason it has remained popular for so long.",
            "Children often help by washing vegetables or setting the table.",
            "Served with fresh bread, it is filling enough for a family after a long day.",
            "Leftovers keep well for a day or two and often taste even better when reheated.",
            "Many people learned the recipe from a parent or grandparent rather than from a book.",
        ],
    ),
    (
        [
            "Water moves constantly between the oceans, the air and the land in what scientists call the water cycle.",
            "The hills above {town} are a good place to watch the water cycle at work.",
        ],
        [
            "Sunlight warms the surface of the sea and of lakes, and some of the water evaporates into the air.",
            "As moist air rises, it cools, and the vapour condenses into tiny droplets that form clouds.",
            "When the droplets grow heavy enough, they fall back to the ground as rain, sleet or snow.",
            "Some of that water soaks into the soil and feeds springs, wells and the roots of plants.",
            "The rest runs downhill into streams such as the {river}, which carry it back toward the sea.",
            "Plants also release water vapour through their leaves, adding moisture to the air.",
            "In {season}, the pattern shifts, and the amount of rain can change from week to week.",
            "Understanding the cycle helps farmers, engineers and town planners manage water wisely.",
        ],
    ),
    (
        [
            "{name} has worked as a {job} in {town} for almost {number} decades.",
            "Most people in {town} know {name}, the local {job}.",
        ],
        [
            "Each working day begins early, long before most neighbours are awake.",
            "{name} says the best part of the job is the people, who often stop to chat and share news.",
            "The work has changed over the years, and computers now handle tasks that were once done by hand.",
            "Still, some things stay the same: being on time, being careful and being kind.",
            "In {season}, the days are busier, and there is rarely a quiet moment before lunch.",
            "Younger colleagues often ask {name} for advice, and the answer is usually a practical one.",
            "Outside work, {name} enjoys {sport} and long walks along the {river}.",
            "Asked about retirement, {name} only smiles and says there is still plenty to do.",
        ],
    ),
    (
        [
            "Growing {crop} in a small garden is easier than many beginners expect.",
            "Every {season}, gardeners in {town} compare notes on how their {crop} are doing.",
        ],
        [
            "Most vegetables need a sunny spot and soil that drains well after rain.",
            "It helps to mix compost into the beds before planting, so the young roots find plenty of food.",
            "Seedlings should be watered gently, ideally in the morning or the evening rather than at midday.",
            "Weeds compete for light and water, so a few minutes of weeding each week saves hours later.",
            "A layer of mulch keeps the soil moist and protects it during hot, dry spells.",
            "Slugs and birds can be a nuisance, but simple nets and careful watching usually keep them away.",
            "Keeping a notebook of what was planted and when makes next year's planning much easier.",
            "There is real satisfaction in eating something you have grown yourself.",
        ],
    ),
    (
        [
            "The morning train from {town} to {town2} takes a little over {number} hours.",
            "For many commuters in {town}, the day starts on the platform of the old {building}.",
        ],
        [
            "Regular passengers have their favourite seats and greet each other with a nod.",
            "The line follows the valley of the {river} for much of the way, past farms and small villages.",
            "In {season}, the view from the window changes almost every week.",
            "Some people use the journey to read, while others catch up on work or simply sleep.",
            "When the train is late, the conductor apologises over the speaker and explains the delay.",
            "A small café near the station sells coffee and pastries to travellers in a hurry.",
            "Plans to add more services have been discussed for years, and many hope they will happen soon.",
            "For all its faults, the railway remains the easiest way to travel between the two places.",
        ],
    ),
    (
        [
            "Learning to {skill} takes patience more than talent.",
            "{name} decided last {season} to learn to {skill}, and the first weeks were the hardest.",
        ],
        [
            "Teachers suggest practising for short periods every day rather than for hours once a week.",
            "Mistakes are part of the process, and each one shows what to work on next.",
            "It helps to set small goals that can be reached in a week or two.",
            "Finding a friend or a class to learn with makes it easier to keep going.",
            "Progress often feels slow, but looking back after a few months shows how far you have come.",
            "Good habits matter: a regular time and a quiet place make practice easier to start.",
            "Many learners find that teaching someone else is the best way to understand a skill deeply.",
            "Above all, it is worth remembering why you started and enjoying the journey.",
        ],
    ),
    (
        [
            "The {town} {sport} club was founded by a group of neighbours who wanted somewhere to play at weekends.",
            "On {day} mornings, the {sport} ground in {town} is rarely empty.",
        ],
        [
            "Today it has members of all ages, from young children to grandparents.",
            "Training sessions are run by volunteers, who give up their evenings to coach.",
            "The club raises money through cake sales, a summer fair and a small membership fee.",
            "In {season}, the club holds a friendly tournament against teams from neighbouring villages.",
            "Results matter less than taking part, and every player gets a chance to join in.",
            "The clubhouse, a former {building}, also hosts meetings, birthday parties and quiz nights.",
            "Several former members now coach teams of their own in other towns.",
            "For many residents, the club is as much about friendship as it is about {sport}.",
        ],
    ),
]
