"""The languages Clarify's text explainability accepts, by name, with their ISO codes.

Either form is valid in ``text_config.language``; the local explainer uses the code to pick a
spaCy tokenizer. "multi-language" (``xx``) is for a mix of languages.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    "afrikaans": "af", "albanian": "sq", "arabic": "ar", "armenian": "hy", "basque": "eu", "bengali": "bn",
    "bulgarian": "bg", "catalan": "ca", "chinese": "zh", "croatian": "hr", "czech": "cs", "danish": "da",
    "dutch": "nl", "english": "en", "estonian": "et", "finnish": "fi", "french": "fr", "german": "de",
    "greek": "el", "gujarati": "gu", "hebrew": "he", "hindi": "hi", "hungarian": "hu", "icelandic": "is",
    "indonesian": "id", "irish": "ga", "italian": "it", "japanese": "ja", "kannada": "kn", "kyrgyz": "ky",
    "latvian": "lv", "ligurian": "lij", "lithuanian": "lt", "luxembourgish": "lb", "macedonian": "mk",
    "malayalam": "ml", "marathi": "mr", "multi-language": "xx", "nepali": "ne", "norwegian bokmål": "nb",
    "persian": "fa", "polish": "pl", "portuguese": "pt", "romanian": "ro", "russian": "ru", "sanskrit": "sa",
    "serbian": "sr", "setswana": "tn", "sinhala": "si", "slovak": "sk", "slovenian": "sl", "spanish": "es",
    "swedish": "sv", "tagalog": "tl", "tamil": "ta", "tatar": "tt", "telugu": "te", "thai": "th",
    "turkish": "tr", "ukrainian": "uk", "urdu": "ur", "vietnamese": "vi", "yoruba": "yo",
}  # fmt: skip


def clarify_language(language: str) -> str:
    """The language as Clarify's ``text_config.language`` takes it: a known name or code, trimmed, lower case.

    The SDK's schema lower-cases but does not trim, and its ``TextConfig`` takes only the exact lower-case
    spelling, so " en " and "EN" are written as "en". ValueError for a language Clarify does not know.
    """
    if not isinstance(language, str):
        raise ValueError(f"language must be a string, got {language!r}")
    value = language.strip().lower()
    if value in CODES or value in CODES.values():
        return value
    raise ValueError(f"language {language!r} is not supported by Clarify; use one of {sorted(CODES)}")


def language_code(language: str) -> str:
    """ISO code for a Clarify language given by name or code; ValueError for an unknown one."""
    value = language.strip().lower()
    if value in CODES:
        return CODES[value]
    if value in CODES.values():
        return value
    raise ValueError(f"language {language!r} is not supported by Clarify; use one of {sorted(CODES)}")
