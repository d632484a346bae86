"""Figure 6: keyword matching with 1,000 keywords over article text, against a loop of `in`.

    .venv/bin/python -m benchmarks.matching_bench [DATA_DIR]

DATA_DIR is the shared data folder (default: ../shared/data beside the project). The topics are
the shipped config/keywords.yaml plus 80 more written as users write them (places, people,
companies, minerals, phrases, some `Prefix*`, a few in Arabic, Persian, Cyrillic, Chinese and
Korean script, some with `exclude` or `require`), 1,000 keywords in all, and two boolean
queries.
The text is the 181 article bodies of the article-extraction benchmark and the five seeds, each
matched as an article (title: its first line; summary: its first 300 characters; text: the body).

Figure: MB/s of UTF-8 text (title + summary + text) through `Matcher.match`, and its ratio to
the baseline in the same run: for every keyword, `keyword.lower() in field.lower()` over the
three fields, each field lowered once per article (a `*` is dropped, so a prefix is a substring
test). Each is the best of ROUNDS passes over all articles, interleaved, because a shared
machine's noise only ever slows a pass down.

Sanity: the topics the matcher reports are compared with a brute-force evaluation of the same
rules (every keyword's own whole-word regex over every folded field; no candidate selection),
and the keywords present as whole words are counted beside those the `in` loop finds (it finds
more: `in` has no word boundaries, so "tin" is in "continue").

What changed for this figure (monitor/rules.py; results identical, checked against the previous
code on this corpus and on random texts and keywords): every keyword used to be a regex run over
every field of every article (0.7 MB/s, 0.4x the `in` loop, 2.1 s to compile 1,000 keywords).
Then an article's words (a set, from `str.split`) picked the candidate keywords, and only the
topics a present keyword can make true were evaluated: about 9 MB/s and 4.5x, later 6.1 MB/s and
3.6x on a slower shared 2-core machine (matcher 163 ms, `in` loop 583 ms). Now the three fields
are joined and folded once, with C-speed `str` and `bytes` work (no regex pass over every
character), and one Aho-Corasick automaton (ahocorasick-rs) finds every occurrence of every
keyword; most articles fold to ASCII, scanned as bytes with patterns that carry the character
before a word, so a keyword is found only where it starts one; hits are mapped back to the
original text only for the keywords a match reports. On that machine, shared with other
benchmarks: 8-12 MB/s and 6-8x in the same run (compiling: 55-80 ms). Instructions per pass
(callgrind, steady whatever else runs): 1,147 M before, 403 M now, 2,562 M for the `in` loop.
What is left is Python work per occurrence, per reported hit and per sentence (the regex engine
tests ~100 instructions per character between a hit and the ends of its sentence), and the
fold's passes over the text (~1/3). Then (2026-12-07) the fold replaces quotes and dashes with
`str.replace` rather than on the UTF-8 bytes, and most texts, ASCII once they are replaced,
lower-case many times faster: 409 M -> 385 M instructions, 18.4-18.7 -> 20.0-20.5 MB/s and
9.8x -> 10.3x on a machine where the `in` loop takes ~510 ms. Then (2026-12-07, later) the
per-character and per-sentence work that Python did one step at a time moved to a compiled part,
monitor/_speedups.c (built by pip where there is a C compiler; without one, rules.py runs the
Python forms, which its tests compare it with): lower-casing with runs of spaces collapsed, the
ASCII scan's occurrences sorted into fields, hits mapped back to the written text, and each
reported sentence. 385 M -> 270 M instructions a pass, 42 -> 31 ms, 10.9-11.1x -> 15.3-15.6x in
the same conditions. Then (2026-12-07, second session) the rest of the fold's work on text
beyond ASCII (the spaced copy: spaces, dashes, apostrophes and other signs replaced) and the
merging of a topic's hits into its words went there too: 265 M -> 206 M instructions a pass,
14.0-14.7x -> 16.9-18.7x on a machine whose `in` loop took ~507 ms. Where the rest goes: see
benchmarks/README.md, "Findings still open".
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.report import PROJECT_ROOT, detail, figure, shared_data
from monitor import rules
from monitor.config import load_config
from monitor.models import Topic

ROUNDS = 5
GOAL_MB_S = 20.0
GOAL_RATIO = 15.0
KEYWORD_COUNT = 1000

# topic: keyword | keyword | ...   (an indented line continues the topic above it)
KEYWORDS = """\
pakistan-politics: Imran Khan | Shehbaz Sharif | Nawaz Sharif | Asim Munir | Maryam Nawaz
    Bilawal Bhutto | Zardari | PTI | PML-N | Pakistan People's Party | ISPR
    Islamabad High Court | Ishaq Dar
pakistan-places: Pakistan | Pakistani* | Islamabad | Karachi | Lahore | Peshawar | Rawalpindi
    Khyber Pakhtunkhwa | Sindh | Punjab | Gilgit-Baltistan | Multan | Faisalabad
cpec: CPEC | China-Pakistan Economic Corridor | Belt and Road | BRI | Gwadar port
    Karakoram Highway | Frontier Works | FWO | Saindak | Chagai | Siah Dik
afghanistan: Afghanistan | Afghan* | Kabul | Kandahar | Taliban | Herat | Jalalabad | Helmand
    Mazar-i-Sharif | Torkham | Durand Line
india: India | Indian | New Delhi | Delhi | Mumbai | Bengaluru | Bangalore | Kolkata | Chennai
    Hyderabad | Kashmir* | Narendra Modi | BJP
china: China | Chinese | Beijing | Shanghai | Shenzhen | Guangzhou | Hong Kong | Xinjiang
    Uyghur* | Tibet* | Xi Jinping | 中国 | 稀土
east-asia: Japan* | Tokyo | Osaka | South Korea | North Korea | Seoul | Pyongyang | Kim Jong Un
    Taiwan* | Taipei | Mongolia* | Ulaanbaatar | 서울
southeast-asia: Indonesia* | Jakarta | Malaysia* | Kuala Lumpur | Vietnam* | Hanoi
    Ho Chi Minh City | Thailand | Thai | Bangkok | Philippines | Filipino* | Manila
south-asia: Bangladesh* | Dhaka | Sri Lanka* | Colombo | Nepal* | Kathmandu | Bhutan*
    Maldives | Sheikh Hasina | SAARC
iran: Iran* | Tehran | Khamenei | Raisi | Pezeshkian | IRGC | Revolutionary Guard* | Isfahan
    Natanz | Fordow | Strait of Hormuz | Chabahar | ایران
gulf: Saudi Arabia | Saudi* | Riyadh | Jeddah | Mohammed bin Salman | MBS
    United Arab Emirates | UAE | Dubai | Abu Dhabi | Qatar* | Doha | الرياض
levant: Israel* | Jerusalem | Tel Aviv | Gaza | West Bank | Hamas | Hezbollah | Netanyahu
    Lebanon | Lebanese | Beirut | Syria* | Damascus
iraq-turkey: Iraq* | Baghdad | Mosul | Basra | Erbil | Kurd* | Turkey | Türkiye | Turkish
    Ankara | Istanbul | Erdogan | Erdoğan
russia: Russia* | Moscow | Kremlin | Putin | Vladimir Putin | Lavrov | St. Petersburg
    Siberia* | Gazprom | Rosneft | Wagner Group | Chechnya | Москва
ukraine: Ukrain* | Kyiv | Kiev | Kharkiv | Odesa | Odessa | Donbas | Donetsk | Luhansk
    Crimea* | Zelensky* | Zelenskyy | Mariupol
eastern-europe: Poland | Polish | Warsaw | Hungary | Hungarian | Budapest | Viktor Orbán
    Romania* | Bucharest | Bulgaria* | Sofia | Czech Republic | Czechia
western-europe: France | French | Paris | Macron | Emmanuel Macron | Germany | German | Berlin
    Munich | Frankfurt | Olaf Scholz | Friedrich Merz | Bundestag
uk: United Kingdom | Britain | British | London | Downing Street | Westminster | Keir Starmer
    Rishi Sunak | Boris Johnson | Theresa May | Brexit | Scotland | Scottish
benelux-nordics: Netherlands | Dutch | Amsterdam | Rotterdam | The Hague | Belgium | Belgian
    Brussels | Luxembourg | Sweden | Swedish | Stockholm | Norway
alpine-med: Switzerland | Swiss | Zurich | Zürich | Geneva | Davos | Austria* | Vienna | Greece
    Greek | Athens | Cyprus | Malta
eu-institutions: European Union | EU | European Commission | European Parliament
    Ursula von der Leyen | Eurozone | European Central Bank | ECB | Christine Lagarde | NATO
    Schengen | G7 | G20
us-politics: White House | Congress | Senate | House of Representatives | Capitol Hill
    Supreme Court | Republican* | Democrat* | GOP | impeach* | Pentagon | State Department
    Department of Justice
us-people: Donald Trump | Trump | Joe Biden | Biden | Kamala Harris | Barack Obama
    Hillary Clinton | Nancy Pelosi | Mitch McConnell | Marco Rubio | JD Vance | Elon Musk
    Mike Pompeo
us-places: Washington | New York | California* | Texas | Florida | Chicago | Los Angeles
    San Francisco | Seattle | Boston | Detroit | Houston | Dallas
us-states-2: Arizona | Nevada | Georgia | Virginia | North Carolina | South Carolina
    Tennessee | Kentucky | Alabama | Louisiana | Oklahoma | Kansas | Missouri
canada: Canada | Canadian* | Ottawa | Toronto | Montreal | Montréal | Vancouver | Québec
    Quebec | Alberta | Ontario | British Columbia | Justin Trudeau
latam-south: Brazil* | Brasil | Brasília | São Paulo | Rio de Janeiro | Lula | Bolsonaro
    Argentina* | Buenos Aires | Javier Milei | Chile* | Santiago | Peru*
latam-north: Mexico | Mexican* | Mexico City | Guadalajara | Monterrey | López Obrador
    Claudia Sheinbaum | Guatemala | Honduras | El Salvador | Nayib Bukele | Nicaragua
    Costa Rica
africa-west: Nigeria* | Lagos | Abuja | Buhari | Tinubu | Ghana* | Accra | Senegal* | Dakar
    Ivory Coast | Côte d'Ivoire | Mali | Bamako
africa-east: Kenya* | Nairobi | Ethiopia* | Addis Ababa | Tigray | Somalia* | Mogadishu
    al-Shabaab | Sudan* | Khartoum | South Sudan | Uganda*
africa-south: South Africa | Johannesburg | Cape Town | Pretoria | Ramaphosa | ANC | Zimbabwe*
    Harare | Zambia* | Lusaka | Mozambique | Angola*
africa-north: Egypt* | Cairo | Suez Canal | el-Sisi | Libya* | Tripoli | Benghazi | Tunisia*
    Tunis | Algeria* | Algiers | Morocco
oceania: Australia* | Sydney | Melbourne | Canberra | Brisbane | Perth | Anthony Albanese
    New Zealand | Wellington | Auckland | Papua New Guinea | Fiji*
minerals-battery: lithium | cobalt | nickel | graphite | manganese | vanadium | lithium-ion
    battery metals | solid-state batter* | cathode* | anode* | spodumene
minerals-base: copper | zinc | lead ore | tin | aluminium | aluminum | bauxite | iron ore
    steel | stainless steel | smelter* | refiner*
minerals-precious: gold | silver | platinum | palladium | rhodium | bullion | gold price
    precious metals | goldmine | gold mine* | diamond* | gemstone*
minerals-critical: tungsten | antimony | gallium | germanium | indium | tellurium | molybdenum
    titanium | zirconium | niobium | tantalum | beryllium
rare-earth-elements: cerium | europium | gadolinium | terbium | holmium | erbium | thulium
    ytterbium | lutetium | samarium | promethium | NdFeB
mining-companies: Rio Tinto | BHP | Glencore | Anglo American | Vale | Freeport-McMoRan
    Newmont | Barrick Gold | Barrick | Lynas | MP Materials | Iluka
mining-terms: mining | miner* | mineral* | exploration licen* | open-pit | opencast | ore body
    deposit* | mining lease | royalt* | offtake | processing plant
energy-oil: oil | crude | Brent | WTI | OPEC | OPEC+ | barrel* | oil price* | refinery
    refineries | petroleum | pipeline*
energy-gas-power: natural gas | LNG | liquefied natural gas | gas field | Nord Stream
    electricity | power grid | blackout* | load-shedding | coal | coal-fired | nuclear power
energy-renewables: solar | solar panel* | wind farm* | wind turbine* | offshore wind
    renewable* | clean energy | green hydrogen | hydrogen | geothermal | photovoltaic
    net zero
climate: climate change | global warming | greenhouse gas* | carbon emission* | emissions
    COP29 | COP30 | Paris Agreement | IPCC | heatwave* | drought* | flood*
big-tech: Apple | iPhone* | iPad | MacBook* | Tim Cook | Google | Alphabet | Sundar Pichai
    Microsoft | Satya Nadella | Windows | Amazon
tech-2: Netflix | Disney | Disney+ | Disney Plus | Spotify | Uber | Lyft | Airbnb | WeWork
    Adam Neumann | Twitter | X Corp
chips: semiconductor* | chipmaker* | TSMC | Samsung Electronics | SK Hynix | ASML | foundr*
    microchip* | wafer* | export controls | CHIPS Act | Arm Holdings
ai: artificial intelligence | AI | machine learning | deep learning | neural network* | OpenAI
    ChatGPT | Sam Altman | Anthropic | DeepMind | Gemini | large language model*
gaming: video game* | gaming | gamer* | PlayStation | PS4 | PS5 | Xbox | Nintendo
    Nintendo Switch | Stadia | Apple Arcade | xCloud
cars: electric vehicle* | EV | EVs | Tesla | Volkswagen | VW | Toyota | Honda | Ford
    General Motors | GM | Chrysler
aviation: Boeing | Airbus | 737 MAX | 787 | Dreamliner | A320 | Emirates | Qatar Airways
    Etihad | PIA | airline* | airport*
space: NASA | SpaceX | Blue Origin | ESA | ISRO | Mars | Jupiter | Saturn | Europa | Titan
    Moon | lunar
science-health: vaccine* | vaccination | virus | viral | pandemic | COVID* | coronavirus
    influenza | measles | malaria | polio | tuberculosis
drugs-crime: methamphetamine | meth | opioid* | fentanyl | heroin | cocaine | cartel*
    drug trafficking | kidnap* | homicide* | shooting* | gunman
finance-markets: stock market | Wall Street | Dow Jones | S&P 500 | Nasdaq | FTSE | Nikkei
    Hang Seng | bond yield* | Treasur* | IPO | initial public offering
finance-banks: Federal Reserve | Fed | Jerome Powell | interest rate* | inflation | recession
    central bank | State Bank of Pakistan | SBP | IMF | International Monetary Fund
    World Bank
trade: tariff* | trade war | trade deal | sanction* | embargo | export* | import* | WTO
    free trade | customs dut* | dumping | supply shortage*
crypto: bitcoin | Bitcoin ETF | ethereum | cryptocurrenc* | crypto | blockchain | stablecoin*
    Binance | Coinbase | FTX | Sam Bankman-Fried | NFT*
retail-consumer: Walmart | Target | Costco | Alibaba | Jack Ma | JD.com | Black Friday
    Cyber Monday | Prime Day | e-commerce | retailer* | shopping mall*
food-agri: wheat | rice | maize | corn | soybean* | sugar | cotton | fertilizer* | fertiliser*
    urea | famine | food security
sports-football: Premier League | Champions League | FIFA | UEFA | World Cup | Chelsea
    Arsenal | Liverpool | Manchester United | Manchester City | Real Madrid | FC Barcelona
sports-us: NFL | NBA | MLB | NHL | Super Bowl | quarterback* | touchdown* | Cleveland Browns
    Browns | Pittsburgh Steelers | Steelers | Myles Garrett
sports-other: cricket | PCB | Babar Azam | Virat Kohli | IPL | Test match | T20 | Olympic*
    Paralympic* | tennis | Davis Cup | Wimbledon
entertainment: Hollywood | Bollywood | Nollywood | Netflix series | box office | Oscar*
    Academy Award* | Golden Globe* | Grammy* | Emmy* | Kevin Mayer | Bob Iger
media: journalist* | reporter* | press freedom | censorship | disinformation | misinformation
    fact-check* | fake news | propaganda | PEMRA | BBC | CNN
security-conflict: terror* | militant* | insurgen* | suicide bomb* | IED | drone strike*
    airstrike* | missile* | ballistic missile | cruise missile | ceasefire | truce
human-rights: human rights | Amnesty International | Human Rights Watch
    enforced disappearance* | missing persons | extrajudicial | torture | refugee* | asylum
    migrant* | deportation* | UNHCR
diplomacy: United Nations | UN Security Council | UN General Assembly | Antonio Guterres
    Guterres | summit* | bilateral | memorandum of understanding | MoU | ambassador* | embassy
    embassies
elections: election* | electoral | ballot* | polling station* | voter* | turnout | exit poll*
    referendum | campaign trail | primary election | caucus* | recount
economy-general: GDP | economic growth | unemployment | jobless | budget deficit | debt
    sovereign debt | default | credit rating | Moody's | Fitch | Standard & Poor's
housing-infra: housing market | mortgage* | real estate | property prices | infrastructure
    high-speed rail | railway* | metro line | motorway | highway* | bridge collapse
    port expansion
education-society: university | universities | student* | school* | teacher* | curriculum
    scholarship* | literacy | child labour | child labor | gender equality | women's rights
religion: Islam* | Muslim* | mosque* | Ramadan | Eid | Hajj | Mecca | Medina | blasphemy
    Christian* | church* | Pope Francis
environment: pollution | air pollution | air quality | smog | AQI | PM2.5 | deforestation
    biodiversity | endangered species | plastic waste | recycling | oxygen bar
health-lifestyle: fitness | workout* | diet* | nutrition | yoga | mental health | depression
    anxiety | sleep | meditation | Beachbody | wellness
architecture-design: architect* | architecture | museum* | exhibition* | biennale | design week
    Venice | Louvre | Guggenheim | Tate Modern | Zaha Hadid | Frank Gehry
legal: lawsuit* | sued | court ruling | appeals court | verdict | acquitted | convicted
    sentence* | attorney general | prosecutor* | subpoena* | testimony
bikes-transport: bicycle* | bike* | cycling | cyclist* | e-bike* | motorcycle* | scooter*
    Harley-Davidson | Ducati | Yamaha | Kawasaki | Suzuki
telecom: 5G | 6G | Huawei | ZTE | Ericsson | Nokia | telecom* | broadband | spectrum auction
    satellite internet | Starlink | mobile network*
cyber: cyberattack* | cyber attack* | hacker* | hacking | ransomware | data breach* | phishing
    malware | zero-day | encryption | privacy | GDPR
"""

# `exclude` and `require` as users add them once a topic brings in noise.
CONTEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "energy-oil": {"exclude": ("olive oil", "palm oil", "essential oil*")},
    "big-tech": {"exclude": ("apple pie", "apple cider")},
    "minerals-precious": {"exclude": ("gold medal*", "Golden State")},
    "gaming": {"exclude": ("gambling", "casino*")},
    "mining-companies": {"require": ("mine", "mines", "mining", "mineral*", "metal*", "shares")},
    "telecom": {"require": ("telecom*", "mobile", "network*", "spectrum", "operator*")},
    "us-states-2": {"require": ("governor", "state", "senator*", "legislature")},
    "minerals-base": {"require": ("metal*", "mine", "mining", "price*", "tonnes", "tons")},
}
QUERIES = (
    Topic(
        "minerals-pakistan",
        query='("rare earth*" OR lithium OR copper OR gold) AND (Pakistan OR Balochistan '
        "OR Afghanistan) AND NOT title:ETF",
    ),
    Topic(
        "us-china-trade",
        query='(tariff* OR "trade war" OR "trade deal") AND (China OR Beijing) '
        'AND ("United States" OR US OR Washington)',
    ),
)

Article = tuple[str, str, str]  # title, summary, text


def benchmark_topics() -> list[Topic]:
    """The shipped topics, the topics of KEYWORDS with their CONTEXT, and QUERIES."""
    topics = list(load_config(PROJECT_ROOT / "config", environ={}).topics)
    name, words = "", ""
    entries: list[tuple[str, str]] = []
    for line in KEYWORDS.splitlines():
        if line.startswith(" "):
            words += " | " + line.strip()
            continue
        if name:
            entries.append((name, words))
        name, _, words = line.partition(":")
    entries.append((name, words))
    for name, words in entries:
        context = CONTEXT.get(name, {})
        topics.append(
            Topic(
                name,
                keywords=tuple(w.strip() for w in words.split("|")),
                exclude=context.get("exclude", ()),
                require=context.get("require", ()),
            )
        )
    return [*topics, *QUERIES]


def load_articles(data: Path) -> list[Article]:
    truth = json.loads((data / "article-extraction-benchmark" / "ground-truth.json").read_text())
    bodies = [entry["articleBody"] for entry in truth.values()]
    bodies += [p.read_text(encoding="utf-8") for p in sorted((data / "seeds").glob("*.txt"))]
    articles = []
    for body in bodies:
        first_line = next((line.strip() for line in body.splitlines() if line.strip()), "")
        articles.append((first_line[:200], body[:300], body))
    return articles


def run_matcher(matcher: rules.Matcher, articles: Sequence[Article]) -> int:
    return sum(len(matcher.match(title, summary, text)) for title, summary, text in articles)


def run_baseline(keywords: Sequence[str], articles: Sequence[Article]) -> int:
    found = 0
    for title, summary, text in articles:
        title, summary, text = title.lower(), summary.lower(), text.lower()
        for keyword in keywords:
            if keyword in text or keyword in summary or keyword in title:
                found += 1
    return found


# Scripts written without spaces: never word characters, so never glued to a Latin word.
NO_SPACE = re.compile(f"[{rules._NO_SPACE}]")


def reference_pattern(keyword: str) -> tuple[re.Pattern[str], bool]:
    """`keyword` as one regex over folded text, with the whole-word rules as look-arounds: how
    rules.py looked for every keyword in every text before it picked candidates.

    A word character is one of \\w outside the scripts written without spaces; for a keyword
    without such characters the text is searched with those blanked out (the second value), so
    that plain \\w does, since a regex holding the exact class takes milliseconds to compile.
    """
    spec = rules._parse_keyword(keyword)
    blanked = not NO_SPACE.search(spec.folded)
    word = r"\w" if blanked else rules._WORD_CHAR
    literal = re.escape(spec.folded)
    pattern = literal  # first, so that the regex engine skips ahead to it
    if re.match(word, spec.folded[0]):
        pattern += f"(?<!{word}{literal})"
    if re.match(word, spec.folded[-1]):
        pattern += f"{word}*" if spec.prefix else f"(?!{word})"
    return re.compile(pattern), blanked


def reference_topics(
    topics: Sequence[Topic], articles: Sequence[Article]
) -> tuple[list[set[str]], int]:
    """Per article, the topics the rules give by brute force; and the (article, keyword) pairs
    whose keyword is there as a whole word."""
    patterns: dict[str, tuple[re.Pattern[str], bool]] = {}
    for topic in topics:
        words = [*topic.keywords, *topic.exclude, *topic.require]
        if topic.query:
            words += [term.keyword for term in rules._terms_of(rules.parse_query(topic.query))]
        for word in words:
            if word not in patterns:
                patterns[word] = reference_pattern(word)
    keywords = {word for topic in topics for word in topic.keywords}
    results: list[set[str]] = []
    present = 0
    for article in articles:
        exact = [rules._Folded(field).folded for field in article]  # title, summary, text
        blanked = [NO_SPACE.sub("\x01", field) for field in exact]

        def hit(
            word: str,
            title_only: bool = False,
            fields: tuple[list[str], ...] = (exact, blanked),
            known: dict[tuple[str, bool], bool] = {},  # noqa: B006 - one per article
        ) -> bool:
            if (word, title_only) not in known:
                pattern, on_blanked = patterns[word]
                searched = fields[on_blanked][:1] if title_only else fields[on_blanked]
                known[word, title_only] = any(pattern.search(f) for f in searched)
            return known[word, title_only]

        present += sum(hit(word) for word in keywords)
        matched: set[str] = set()
        for topic in topics:
            if topic.query:
                holds, positive = _evaluate(rules.parse_query(topic.query), hit)
            else:
                holds = positive = any(hit(word) for word in topic.keywords)
            if not (holds and positive) or any(hit(word) for word in topic.exclude):
                continue
            if topic.require and not any(hit(word) for word in topic.require):
                continue
            matched.add(topic.name)
        results.append(matched)
    return results, present


def _evaluate(node: rules.QueryNode, hit: Callable[..., bool]) -> tuple[bool, bool]:
    """Whether the query holds, and whether a positive term that counts was found."""
    if isinstance(node, rules.Term):
        found = hit(node.keyword, node.title_only)
        return found, found
    if isinstance(node, rules.Not):
        return not _evaluate(node.child, hit)[0], False
    results = [_evaluate(child, hit) for child in node.children]
    if isinstance(node, rules.And):
        holds = all(h for h, _ in results)
        return holds, holds and any(p for _, p in results)
    return any(h for h, _ in results), any(h and p for h, p in results)


def main() -> None:
    data = shared_data()
    topics = benchmark_topics()
    keywords = [word for topic in topics for word in topic.keywords]
    assert len(keywords) == KEYWORD_COUNT, len(keywords)
    articles = load_articles(data)
    megabytes = sum(len(field.encode("utf-8")) for a in articles for field in a) / 1e6

    started = time.perf_counter()
    matcher = rules.compile_topics(topics)
    compile_ms = (time.perf_counter() - started) * 1000

    lowered = [word.removesuffix("*").lower() for word in keywords]
    matcher_s: list[float] = []
    baseline_s: list[float] = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        found_in = run_baseline(lowered, articles)
        baseline_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        topic_matches = run_matcher(matcher, articles)
        matcher_s.append(time.perf_counter() - started)

    expected, present = reference_topics(topics, articles)
    got = [{m.topic for m in matcher.match(*article)} for article in articles]
    agree = sum(e == g for e, g in zip(expected, got, strict=True))
    pairs = sum(len(e) for e in expected)

    speed = megabytes / min(matcher_s)
    ratio = min(baseline_s) / min(matcher_s)
    passed = speed >= GOAL_MB_S and ratio >= GOAL_RATIO and agree == len(articles)
    figure(
        6,
        "keyword_matching_1000_keywords",
        f"{speed:.1f}MB/s={ratio:.1f}x_in-loop",
        f">={GOAL_MB_S:.0f}MB/s,>={GOAL_RATIO:.0f}x",
        passed,
    )
    detail(
        f"{len(keywords)} keywords in {len(topics)} topics "
        f"({sum(w.endswith('*') for w in keywords)} prefixes, "
        f"{sum(not w.isascii() for w in keywords)} non-ASCII, {len(QUERIES)} queries, "
        f"{sum(len(t.exclude) + len(t.require) for t in topics)} exclude/require words); "
        f"compiled in {compile_ms:.0f} ms"
    )
    detail(
        f"{len(articles)} articles, {megabytes:.2f} MB; best of {ROUNDS}: "
        f"Matcher.match {min(matcher_s) * 1000:.0f} ms ({speed:.1f} MB/s), "
        f"`in` loop {min(baseline_s) * 1000:.0f} ms ({megabytes / min(baseline_s):.1f} MB/s)"
    )
    detail(
        f"sanity: {topic_matches} topic matches, {pairs} by brute force, same topics for "
        f"{agree}/{len(articles)} articles; (article, keyword) pairs present as whole words "
        f"{present}, as substrings (`in`) {found_in}"
    )


if __name__ == "__main__":
    sys.exit(main())
