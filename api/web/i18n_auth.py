"""The words of the sign-in pages, in Japanese and English (merged into the
pages' catalogue, api/web/i18n.py)."""

MESSAGES: dict[str, dict[str, str]] = {
    "ja": {
        "login.title": "ログイン",
        "login.name": "ユーザー名",
        "login.password": "パスワード",
        "login.submit": "ログインする",
        "login.failed": "ユーザー名かパスワードが違います。もう一度入れてください。",
        "login.limited": "失敗が続いたので止めています。{minutes}分後にもう一度ためしてください。",
        "login.help": ("パスワードを忘れたら、普及指導員に"
                       "新しいログイン用QRコードを頼んでください。"),
        "password.title": "パスワードを変える",
        "password.first": "はじめてのログインです。新しいパスワードを決めてください。",
        "password.current": "いまのパスワード",
        "password.new": "新しいパスワード（10文字以上）",
        "password.confirm": "新しいパスワード（もう一度）",
        "password.submit": "変える",
        "password.mismatch": "新しいパスワードが2回とも同じになるよう入れてください。",
        "password.rejected": "変えられません: {reason}",
        "signin.title": "QRコードでログイン",
        "signin.explain": "下のボタンを押すとログインします。このリンクは1回だけ使えます。",
        "signin.submit": "ログインする",
        "signin.dead": ("このリンクは使えません（使用済みか期限切れ）。"
                        "普及指導員に新しいQRコードを頼んでください。"),
    },
    "en": {
        "login.title": "Log in",
        "login.name": "User name",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.failed": "Wrong user name or password. Please try again.",
        "login.limited": "Too many failed attempts. Try again in {minutes} min.",
        "login.help": "Forgot your password? Ask your extension officer for a new sign-in QR "
                      "code.",
        "password.title": "Change password",
        "password.first": "This is your first login. Please choose a new password.",
        "password.current": "Current password",
        "password.new": "New password (10 characters or more)",
        "password.confirm": "New password (again)",
        "password.submit": "Change",
        "password.mismatch": "Type the same new password twice.",
        "password.rejected": "Cannot change it: {reason}",
        "signin.title": "Sign in with a QR code",
        "signin.explain": "Press the button below to sign in. This link works once.",
        "signin.submit": "Sign in",
        "signin.dead": "This link cannot be used (used or expired). Ask your extension officer "
                       "for a new QR code.",
    },
}
