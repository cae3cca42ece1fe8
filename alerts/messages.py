"""The words of an alert's message, Japanese and English: what happened
where, what to do, the evidence in one line and the page to open; the
follow-up says it cleared. Texts are keyed by the rule's name (the rules
themselves are in alerts/rules.py); a rule without texts here gets a
generic message that still names the rule, the place and the link."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from agri.clock import TZ

EVIDENCE_MAX_CHARS = 120  # the evidence line; a whole message stays well under 300
VALUE_MAX_CHARS = 40  # one value taken from the evidence (titles, reasons)

SEVERITY_TAGS = {
    "ja": {"urgent": "【至急】", "warning": "【注意】", "info": "【お知らせ】"},
    "en": {"urgent": "[URGENT] ", "warning": "[Warning] ", "info": "[Info] "},
}
CLEARED_TAG = {"ja": "【解除】", "en": "[Cleared] "}


@dataclass(frozen=True, slots=True)
class Message:
    subject: str  # the email's subject: tag, place and what happened
    text: str  # the whole message (email body, LINE text)


@dataclass(frozen=True, slots=True)
class Texts:
    """One rule's words in one language; ``{device}`` names the device."""

    what: str  # what happened
    do: str  # what to do about it
    cleared: str  # the follow-up


# rule name -> language -> texts
TEXTS: dict[str, dict[str, Texts]] = {
    "water-out-of-band": {
        "ja": Texts("水位が目標の範囲外です", "水口・水尻を調整してください",
                    "水位が目標の範囲に戻りました"),
        "en": Texts("the water level is outside its band", "adjust the inlet or outlet",
                    "the water level is back in its band")},
    "water-gone": {
        "ja": Texts("水がありません", "給水口を確認してください", "水が戻りました"),
        "en": Texts("the paddy has no water", "check the water inlet",
                    "the paddy has water again")},
    "gate-not-answering": {
        "ja": Texts("水門 {device} が指示を実行しませんでした", "現地で水門を確認してください",
                    "水門 {device} が指示を実行しました"),
        "en": Texts("gate {device} did not carry out its command", "check the gate on site",
                    "gate {device} carries out commands again")},
    "gate-not-moving": {
        "ja": Texts("水門 {device} が指示どおりに動いていません",
                    "水門の詰まりや故障を確認してください", "水門 {device} は正常に動いています"),
        "en": Texts("gate {device} is not moving as commanded",
                    "check the gate for a jam or a fault", "gate {device} moves as commanded")},
    "sensor-silent": {
        "ja": Texts("センサー {device} から連絡がありません",
                    "電源と電波の状態を確認してください", "センサー {device} から連絡が戻りました"),
        "en": Texts("sensor {device} has gone silent", "check its power and radio",
                    "sensor {device} reports again")},
    "battery-low": {
        "ja": Texts("センサー {device} の電池が残りわずかです", "電池を交換してください",
                    "センサー {device} の電池は十分です"),
        "en": Texts("the battery of sensor {device} is low", "replace the battery",
                    "the battery of sensor {device} is fine")},
    "cold-ahead": {
        "ja": Texts("冷害のおそれがあります", "深水管理で幼穂を守ってください",
                    "冷害のおそれは去りました"),
        "en": Texts("cold damage is likely", "keep the water deep to protect the panicles",
                    "the risk of cold damage has passed")},
    "blast-day": {
        "ja": Texts("いもち病が発生しやすい天候でした", "葉いもちの発生を見回ってください",
                    "いもち病の好適日は過ぎました"),
        "en": Texts("the weather favoured rice blast", "scout the leaves for blast",
                    "the blast-favourable days are over")},
    "harvest-window": {
        "ja": Texts("収穫適期が近づいています", "刈取りの準備をしてください",
                    "収穫適期の通知を終了しました"),
        "en": Texts("the harvest window is opening", "get ready to harvest",
                    "the harvest window notice has ended")},
    "advisory-published": {
        "ja": Texts("新しい営農情報があります", "内容を確認してください",
                    "営農情報の期間が終わりました"),
        "en": Texts("a new advisory was published", "read it", "the advisory has ended")},
}
GENERIC = {
    "ja": Texts("お知らせ({rule})があります", "内容を確認してください", "({rule})は解消しました"),
    "en": Texts("alert ({rule})", "open the page for details", "({rule}) has cleared"),
}

# Evidence shown in the one line: (key, Japanese label, English label, unit)
EVIDENCE: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "water-out-of-band": (("level_m", "水位", "level", " m"), ("low_m", "下限", "low", " m"),
                          ("high_m", "上限", "high", " m"), ("since", "開始", "since", "")),
    "water-gone": (("level_m", "水位", "level", " m"), ("since", "開始", "since", "")),
    "gate-not-answering": (("command", "指示", "command", ""), ("status", "状態", "status", ""),
                           ("reason", "理由", "reason", "")),
    "gate-not-moving": (("commanded_pct", "指示", "commanded", "%"),
                        ("reported_pct", "報告", "reported", "%"),
                        ("open_since", "開放開始", "open since", "")),
    "sensor-silent": (("last_heard", "最終受信", "last heard", ""),
                      ("silent_h", "無通信", "silent", " h")),
    "battery-low": (("battery_pct", "電池", "battery", "%"),
                    ("empty_on", "切れる見込み", "empty by", "")),
    "cold-ahead": (("valid_from", "期間", "from", ""), ("valid_until", "まで", "until", "")),
    "blast-day": (("day", "日", "day", ""), ("wet_hours", "濡れ時間", "wet", " h"),
                  ("wet_mean_c", "平均気温", "mean", " °C")),
    "harvest-window": (("opens", "開始", "opens", ""), ("closes", "終了", "closes", "")),
    "advisory-published": (("title_ja", "件名", "", ""),),
}
ENGLISH_KEYS = {"title_ja": "title_en"}  # evidence a language has its own value for
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")  # no line breaks from stored texts


def _clean(value: object) -> str:
    return _CONTROL.sub(" ", str(value))[:VALUE_MAX_CHARS]


def render(alert: dict, event: str, language: str, link: str) -> Message:
    """The message about ``alert`` ('opened' or 'cleared') in ``language``
    ('ja', else English), ending with ``link``."""
    lang = "ja" if language == "ja" else "en"
    rule = str(alert.get("rule") or "")
    texts = TEXTS.get(rule, {}).get(lang) or GENERIC[lang]
    names = {"device": _clean(alert.get("device_id") or ""), "rule": _clean(rule)}
    place = _place(alert)
    sep = ": "
    if event == "cleared":
        tag = CLEARED_TAG[lang]
        what = texts.cleared.format_map(names)
        headline = f"{tag}{place}{sep}{what}"
        lines = [_sentence(headline, lang)]
    else:
        tag = SEVERITY_TAGS[lang].get(alert.get("severity") or "", SEVERITY_TAGS[lang]["info"])
        what = texts.what.format_map(names)
        headline = f"{tag}{place}{sep}{what}"
        lines = [_sentence(headline, lang) + _sentence(texts.do, lang, join=True)]
        evidence = _evidence(rule, alert.get("evidence") or {}, lang)
        if evidence:
            lines.append(evidence)
    lines.append(link)
    subject = headline if lang == "ja" else headline[:1].upper() + headline[1:]
    return Message(subject=subject, text="\n".join(lines))


def _place(alert: dict) -> str:
    name = alert.get("field_name") or alert.get("field_id") or alert.get("device_id") or "?"
    return _clean(name)


def _sentence(text: str, lang: str, *, join: bool = False) -> str:
    if lang == "ja":
        return text + "。"
    text = text[:1].upper() + text[1:] if join else text
    return (" " if join else "") + text + "."


def _value(value: object) -> str:
    if isinstance(value, str):
        try:  # an ISO time or day: shown as local month/day (hour:minute)
            moment = datetime.fromisoformat(value)
        except ValueError:
            return _clean(value)
        if moment.tzinfo is None and len(value) <= 10:
            return f"{moment.month}/{moment.day}"
        moment = moment.astimezone(TZ) if moment.tzinfo else moment
        return f"{moment.month}/{moment.day} {moment:%H:%M}"
    if isinstance(value, float):
        return f"{value:g}"
    return _clean(value)


def _evidence(rule: str, evidence: dict, lang: str) -> str:
    parts = []
    for key, label_ja, label_en, unit in EVIDENCE.get(rule, ()):
        key = ENGLISH_KEYS.get(key, key) if lang == "en" else key
        value = evidence.get(key)
        if value is None or value == "" or isinstance(value, dict | list):
            continue
        label = label_ja if lang == "ja" else label_en
        shown = _value(value) + unit
        parts.append(f"{label} {shown}" if label else shown)
    line = ("・" if lang == "ja" else ", ").join(parts)
    return line if len(line) <= EVIDENCE_MAX_CHARS else line[:EVIDENCE_MAX_CHARS - 1] + "…"
