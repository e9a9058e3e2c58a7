"""Languages as users name them (``fr``, ``fra``, ``fre``, ``french``, ``français``) and as the
Hub tags them (ISO 639-1 when the language has one, else ISO 639-3)."""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass

from hubtool.errors import UsageError

# code (639-1 or, when none, 639-3) | 639-3 | other codes | English name | native names
_TABLE = """
af|afr||Afrikaans|Afrikaans
am|amh||Amharic|አማርኛ
ar|ara||Arabic|العربية
as|asm||Assamese|অসমীয়া
az|aze||Azerbaijani|azərbaycan
be|bel||Belarusian|беларуская
bg|bul||Bulgarian|български
bn|ben||Bengali,Bangla|বাংলা
br|bre||Breton|brezhoneg
bs|bos||Bosnian|bosanski
ca|cat||Catalan|català
cs|ces|cze|Czech|čeština
cy|cym|wel|Welsh|Cymraeg
da|dan||Danish|dansk
de|deu|ger|German|Deutsch
el|ell|gre|Greek|ελληνικά
en|eng||English|English
eo|epo||Esperanto|Esperanto
es|spa||Spanish,Castilian|español
et|est||Estonian|eesti
eu|eus|baq|Basque|euskara
fa|fas|per|Persian,Farsi|فارسی
fi|fin||Finnish|suomi
fo|fao||Faroese|føroyskt
fr|fra|fre|French|français
fy|fry||Western Frisian,Frisian|Frysk
ga|gle||Irish|Gaeilge
gd|gla||Scottish Gaelic,Gaelic|Gàidhlig
gl|glg||Galician|galego
gu|guj||Gujarati|ગુજરાતી
ha|hau||Hausa|Hausa
he|heb||Hebrew|עברית
hi|hin||Hindi|हिन्दी
hr|hrv||Croatian|hrvatski
ht|hat||Haitian Creole,Haitian|kreyòl ayisyen
hu|hun||Hungarian|magyar
hy|hye|arm|Armenian|հայերեն
id|ind||Indonesian|Bahasa Indonesia
ig|ibo||Igbo|Igbo
is|isl|ice|Icelandic|íslenska
it|ita||Italian|italiano
ja|jpn||Japanese|日本語
jv|jav||Javanese|basa Jawa
ka|kat|geo|Georgian|ქართული
kk|kaz||Kazakh|қазақ тілі
km|khm||Khmer|ខ្មែរ
kn|kan||Kannada|ಕನ್ನಡ
ko|kor||Korean|한국어
ku|kur||Kurdish|Kurdî
ky|kir||Kyrgyz,Kirghiz|кыргызча
la|lat||Latin|latine
lb|ltz||Luxembourgish|Lëtzebuergesch
lo|lao||Lao|ລາວ
lt|lit||Lithuanian|lietuvių
lv|lav||Latvian|latviešu
mg|mlg||Malagasy|Malagasy
mk|mkd|mac|Macedonian|македонски
ml|mal||Malayalam|മലയാളം
mn|mon||Mongolian|монгол
mr|mar||Marathi|मराठी
ms|msa|may|Malay|Bahasa Melayu
mt|mlt||Maltese|Malti
my|mya|bur|Burmese|မြန်မာ
nb|nob||Norwegian Bokmål,Bokmal|norsk bokmål
ne|nep||Nepali|नेपाली
nl|nld|dut|Dutch,Flemish|Nederlands
nn|nno||Norwegian Nynorsk,Nynorsk|nynorsk
no|nor||Norwegian|norsk
oc|oci||Occitan|occitan
or|ori||Odia,Oriya|ଓଡ଼ିଆ
pa|pan||Punjabi,Panjabi|ਪੰਜਾਬੀ
pl|pol||Polish|polski
ps|pus||Pashto|پښتو
pt|por||Portuguese|português
ro|ron|rum|Romanian,Moldavian|română
ru|rus||Russian|русский
rw|kin||Kinyarwanda|Ikinyarwanda
sa|san||Sanskrit|संस्कृतम्
sd|snd||Sindhi|سنڌي
si|sin||Sinhala,Sinhalese|සිංහල
sk|slk|slo|Slovak|slovenčina
sl|slv||Slovenian,Slovene|slovenščina
so|som||Somali|Soomaali
sq|sqi|alb|Albanian|shqip
sr|srp||Serbian|српски
su|sun||Sundanese|basa Sunda
sv|swe||Swedish|svenska
sw|swa||Swahili|Kiswahili
ta|tam||Tamil|தமிழ்
te|tel||Telugu|తెలుగు
tg|tgk||Tajik|тоҷикӣ
th|tha||Thai|ไทย
tl|tgl||Tagalog,Filipino|Tagalog
tr|tur||Turkish|Türkçe
tt|tat||Tatar|татар
ug|uig||Uyghur,Uighur|ئۇيغۇرچە
uk|ukr||Ukrainian|українська
ur|urd||Urdu|اردو
uz|uzb||Uzbek|oʻzbek
vi|vie||Vietnamese|Tiếng Việt
wo|wol||Wolof|Wolof
xh|xho||Xhosa|isiXhosa
yi|yid||Yiddish|ייִדיש
yo|yor||Yoruba|Yorùbá
zh|zho|chi|Chinese|中文
zu|zul||Zulu|isiZulu
yue|yue||Cantonese|粵語
ast|ast||Asturian|asturianu
ceb|ceb||Cebuano|Cebuano
"""


@dataclass(frozen=True)
class Language:
    code: str  # as the Hub tags models: ISO 639-1 when there is one
    iso3: str
    name: str  # English
    native: str
    aliases: frozenset[str]  # every lower-cased spelling that names it

    @property
    def names(self) -> tuple[str, ...]:
        """Spellings worth looking for in a model id (``french``, ``francais``)."""
        return tuple(sorted(a for a in self.aliases if len(a) >= 4 and a.isascii()))


def _fold(text: str) -> str:
    """Lower-case without accents: ``Français`` -> ``francais``."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _load() -> dict[str, Language]:
    by_alias: dict[str, Language] = {}
    for line in _TABLE.strip().splitlines():
        code, iso3, others, english, native = line.split("|")
        names = [*english.split(","), native]
        aliases = {code, iso3, *filter(None, others.split(","))}
        aliases |= {n.strip().lower() for n in names} | {_fold(n) for n in names}
        lang = Language(code, iso3, english.split(",")[0], native, frozenset(aliases))
        for alias in aliases:
            by_alias.setdefault(alias, lang)
    return by_alias


LANGUAGES = _load()


def find_language(text: str) -> Language | None:
    return LANGUAGES.get(text.strip().lower()) or LANGUAGES.get(_fold(text))


def resolve_language(text: str) -> Language:
    """The language a user named, or a UsageError that suggests close spellings."""
    lang = find_language(text)
    if lang is not None:
        return lang
    close = difflib.get_close_matches(_fold(text), list(LANGUAGES), n=4, cutoff=0.6)
    hint = (
        ("Did you mean: " + ", ".join(f"{c} ({LANGUAGES[c].name})" for c in close) + "?")
        if close
        else ("Use an ISO 639-1 or 639-3 code (fr, fra) or a name (french, français).")
    )
    raise UsageError(f"Unknown language {text!r}.", hint)


def language_of_tag(tag: str) -> Language | None:
    """The language a Hub tag names (``fr``, ``language:fr``), or None."""
    tag = tag.removeprefix("language:")
    if len(tag) not in (2, 3):
        return None
    return LANGUAGES.get(tag)


# Frequent function words, enough to tell these languages apart in a few hundred sentences.
_STOPWORDS = {
    "en": "the of and to is in that it was for with as on are this be at by not you",
    "fr": "le la les de des et est une un du que qui dans pour pas sur au avec il elle",
    "de": "der die das und ist nicht ein eine zu den mit von sich auf für dem ich es",
    "es": "el la los las de que y en un una es por con para no se del al lo",
    "it": "il la di che e un una per non sono con del della gli le si è da",
    "pt": "o a os as de que e um uma do da em para com não se por é no na",
    "nl": "de het een en van is dat niet op te zijn met voor die er ik",
}
_STOPSETS = {code: frozenset(words.split()) for code, words in _STOPWORDS.items()}


def guess_language(texts: list[str], minimum: int = 20) -> str | None:
    """The language most of ``texts`` is written in, by function-word counts; None when the
    sample is too small or no language stands out (at least twice the runner-up)."""
    counts = dict.fromkeys(_STOPSETS, 0)
    for text in texts:
        for word in text.lower().replace("'", " ").replace("’", " ").split():
            for code, words in _STOPSETS.items():
                counts[code] += word in words
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    return best if top >= minimum and top >= 2 * second else None
