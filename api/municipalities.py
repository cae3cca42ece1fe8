"""Aomori Prefecture's municipalities by their national local government code
(全国地方公共団体コード), the one table the platform names them from.

Source: the Ministry of Internal Affairs and Communications' list of local
government codes (総務省「全国地方公共団体コード」), the 40 municipalities of
Aomori Prefecture (10 cities, 22 towns, 8 villages) as of 2024. A code is the
five-digit JIS X 0402 code followed by its check digit (検査数字): the first
five digits weighted 6, 5, 4, 3, 2, summed, and the last digit of 11 minus
the sum's remainder by 11. The Ministry of Agriculture's field polygons
(筆ポリゴン) carry it as ``local_government_cd``.

The English name is the ``municipality`` the platform stores for a field and
the name an officer's region lists; the Japanese name is for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Municipality:
    code: str  # six digits, check digit included
    name: str  # the platform's name (fields.municipality, officers' regions)
    name_ja: str


def check_digit(code5: str) -> str:
    """The check digit of a five-digit local government code."""
    total = sum(int(d) * w for d, w in zip(code5, (6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 10)


def is_valid_code(code: str) -> bool:
    """Six ASCII digits whose last is the check digit of the first five."""
    return (len(code) == 6 and code.isascii() and code.isdigit()
            and check_digit(code[:5]) == code[5])


AOMORI: MappingProxyType[str, Municipality] = MappingProxyType({m.code: m for m in (
    Municipality("022012", "Aomori", "青森市"),
    Municipality("022021", "Hirosaki", "弘前市"),
    Municipality("022039", "Hachinohe", "八戸市"),
    Municipality("022047", "Kuroishi", "黒石市"),
    Municipality("022055", "Goshogawara", "五所川原市"),
    Municipality("022063", "Towada", "十和田市"),
    Municipality("022071", "Misawa", "三沢市"),
    Municipality("022080", "Mutsu", "むつ市"),
    Municipality("022098", "Tsugaru", "つがる市"),
    Municipality("022101", "Hirakawa", "平川市"),
    Municipality("023019", "Hiranai", "平内町"),
    Municipality("023035", "Imabetsu", "今別町"),
    Municipality("023043", "Yomogita", "蓬田村"),
    Municipality("023078", "Sotogahama", "外ヶ浜町"),
    Municipality("023213", "Ajigasawa", "鰺ヶ沢町"),
    Municipality("023230", "Fukaura", "深浦町"),
    Municipality("023434", "Nishimeya", "西目屋村"),
    Municipality("023612", "Fujisaki", "藤崎町"),
    Municipality("023621", "Owani", "大鰐町"),
    Municipality("023671", "Inakadate", "田舎館村"),
    Municipality("023817", "Itayanagi", "板柳町"),
    Municipality("023841", "Tsuruta", "鶴田町"),
    Municipality("023876", "Nakadomari", "中泊町"),
    Municipality("024015", "Noheji", "野辺地町"),
    Municipality("024023", "Shichinohe", "七戸町"),
    Municipality("024058", "Rokunohe", "六戸町"),
    Municipality("024066", "Yokohama", "横浜町"),
    Municipality("024082", "Tohoku", "東北町"),
    Municipality("024112", "Rokkasho", "六ヶ所村"),
    Municipality("024121", "Oirase", "おいらせ町"),
    Municipality("024236", "Oma", "大間町"),
    Municipality("024244", "Higashidori", "東通村"),
    Municipality("024252", "Kazamaura", "風間浦村"),
    Municipality("024261", "Sai", "佐井村"),
    Municipality("024414", "Sannohe", "三戸町"),
    Municipality("024422", "Gonohe", "五戸町"),
    Municipality("024431", "Takko", "田子町"),
    Municipality("024457", "Nanbu", "南部町"),
    Municipality("024465", "Hashikami", "階上町"),
    Municipality("024503", "Shingo", "新郷村"),
)})
