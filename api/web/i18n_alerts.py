"""The words of the alert pages (api/web/alert_pages.py): the list of alerts
and the alert settings, in Japanese (the default) and English; merged into
``i18n``'s catalogue when imported, so that the error pages find them too."""

from __future__ import annotations

from agri.api.web import i18n

# The rules a user may choose to receive (alerts/rules.py names them).
RULE_WORDS = {
    "water-out-of-band": ("水位が目標外", "Water level outside its band"),
    "water-gone": ("水がない", "No water"),
    "gate-not-answering": ("水門が応答しない", "Gate not answering"),
    "gate-not-moving": ("水門が動かない", "Gate not moving"),
    "sensor-silent": ("センサーの通信なし", "Sensor silent"),
    "battery-low": ("電池残量低下", "Battery low"),
    "cold-ahead": ("低温の予報", "Cold ahead"),
    "blast-day": ("いもち病の感染好適日", "Rice blast day"),
    "harvest-window": ("収穫適期", "Harvest window"),
    "advisory-published": ("営農情報の発表", "Advisory published"),
}

MESSAGES: dict[str, dict[str, str]] = {
    "ja": {
        "nav.alerts": "通知",
        "al.title": "通知",
        "al.region_title": "担当地域の通知",
        "al.none": "通知はありません。",
        "al.settings": "通知の設定",
        "al.open": "発生中",
        "al.cleared": "解消",
        "al.cleared_at": "解消 {time}",
        "al.opened_at": "発生 {time}",
        "al.state": "状態",
        "al.state.open": "発生中だけ",
        "al.state.cleared": "解消したものだけ",
        "al.state.all": "すべて",
        "al.show": "表示する",
        "al.field": "田んぼ",
        "al.device": "機器",
        "al.delivery": "届け方",
        "al.channel.email": "メール",
        "al.channel.line": "LINE",
        "al.status.sent": "送信済み",
        "al.status.held": "保留(静かな時間)",
        "al.status.failed": "失敗",
        "al.status.queued": "送信待ち",
        "al.status.none": "未設定",
        "al.older": "次のページ",
        "al.newer": "前のページ",
        "al.page": "{n} ページ目",
        "set.title": "通知の設定",
        "set.saved": "保存しました",
        "set.email": "メールアドレス",
        "set.email_on": "メールで受け取る",
        "set.line": "LINE",
        "set.line_on": "LINEで受け取る",
        "set.line_linked": "LINEアカウントは連携済みです",
        "set.line_not_linked": "LINEアカウントはまだ連携していません",
        "set.line_code": "LINE連携用のコードを発行する",
        "set.line_code_shown": "連携用コード",
        "set.line_code_how": "LINEで公式アカウントを友だち追加し、このコードを送ってください",
        "set.line_code_until": "{time} まで({minutes}分間)有効です。一度だけ使えます。",
        "set.kinds": "受け取る通知の種類",
        "set.quiet": "静かな時間(日本時間)",
        "set.quiet_start": "開始",
        "set.quiet_end": "終了",
        "set.quiet_note": ("この時間の通知は時間が明けてから届きます。"
                           "緊急の通知(水がない、水門が応答しない、低温の予報)は"
                           "この時間でも届きます。空欄なら静かな時間はありません。"),
        "set.save": "保存する",
        "set.error.email": ("メールアドレスの形が正しくありません。"
                            "例: taro@example.jp のように入れてください"),
        "set.error.email_long": "メールアドレスが長すぎます({max}文字まで)",
        "set.error.email_needed": "メールで受け取るには、メールアドレスを入れてください",
        "set.error.line_needed": ("LINEで受け取るには、先にコードを発行して"
                                  "LINEアカウントを連携してください"),
        "set.error.time": "時刻は 22:00 のように、00:00〜23:59 で入れてください",
        "set.error.quiet_both": "静かな時間は開始と終了の両方を入れてください(なしなら両方空欄)",
        "set.error.quiet_same": "開始と終了に同じ時刻は使えません",
        "set.error.kind": "知らない種類の通知が選ばれています。ページを開き直してください",
    },
    "en": {
        "nav.alerts": "Alerts",
        "al.title": "Alerts",
        "al.region_title": "Alerts in your region",
        "al.none": "No alerts.",
        "al.settings": "Alert settings",
        "al.open": "Open",
        "al.cleared": "Cleared",
        "al.cleared_at": "Cleared {time}",
        "al.opened_at": "Opened {time}",
        "al.state": "State",
        "al.state.open": "Open only",
        "al.state.cleared": "Cleared only",
        "al.state.all": "All",
        "al.show": "Show",
        "al.field": "Field",
        "al.device": "Device",
        "al.delivery": "Delivery",
        "al.channel.email": "Email",
        "al.channel.line": "LINE",
        "al.status.sent": "Sent",
        "al.status.held": "Held (quiet hours)",
        "al.status.failed": "Failed",
        "al.status.queued": "Waiting to send",
        "al.status.none": "Not set up",
        "al.older": "Next page",
        "al.newer": "Previous page",
        "al.page": "Page {n}",
        "set.title": "Alert settings",
        "set.saved": "Saved",
        "set.email": "Email address",
        "set.email_on": "Receive by email",
        "set.line": "LINE",
        "set.line_on": "Receive by LINE",
        "set.line_linked": "Your LINE account is linked",
        "set.line_not_linked": "No LINE account linked yet",
        "set.line_code": "Make a LINE link code",
        "set.line_code_shown": "Link code",
        "set.line_code_how": ("Add the official account as a friend on LINE and send it "
                              "this code"),
        "set.line_code_until": "Valid until {time} ({minutes} minutes), once.",
        "set.kinds": "Kinds of alert to receive",
        "set.quiet": "Quiet hours (Japan time)",
        "set.quiet_start": "From",
        "set.quiet_end": "To",
        "set.quiet_note": ("Alerts in these hours arrive when they end. Urgent alerts (no "
                           "water, gate not answering, cold ahead) still arrive. Leave both "
                           "empty for no quiet hours."),
        "set.save": "Save",
        "set.error.email": "That is not an email address: enter one like taro@example.jp",
        "set.error.email_long": "The email address is too long ({max} characters at most)",
        "set.error.email_needed": "Enter an email address to receive alerts by email",
        "set.error.line_needed": "Make a code and link your LINE account first",
        "set.error.time": "Enter times like 22:00, from 00:00 to 23:59",
        "set.error.quiet_both": "Enter both the start and the end (or leave both empty)",
        "set.error.quiet_same": "The start and the end cannot be the same time",
        "set.error.kind": "An unknown kind of alert was chosen: reload the page",
    },
}
for _rule, (_ja, _en) in RULE_WORDS.items():
    MESSAGES["ja"][f"rule.{_rule}"] = _ja
    MESSAGES["en"][f"rule.{_rule}"] = _en

for _lang, _messages in MESSAGES.items():
    i18n.MESSAGES[_lang].update(_messages)
