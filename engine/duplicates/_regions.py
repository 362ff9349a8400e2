"""The ``region_prefix`` normalizer: a leading province, city or prefecture.

Chinese company names are registered as region + trade name + industry + legal form
("北京 字节跳动 科技 有限公司"), and people write them with and without the region. The
region is removed when a distinctive name follows: "北京字节跳动科技" becomes "字节跳动科技",
but "北京电力工程" and "上海电力工程" stay apart, because "电力工程" (power engineering)
names no one; so do "北京师范大学" and "上海师范大学": a university, bank or hospital
named after its city is a different one in every city.

A Japanese prefecture is removed only in its full form ("東京都", "神奈川県"): bare "東京"
is part of too many names ("東京エレクトロン").
"""

from __future__ import annotations

import re

from ._company import company_suffix
from ._registry import register_normalizer

#: Municipalities, provinces, autonomous regions and special administrative regions, each
#: in its full form and its everyday short form.
CN_REGIONS = (
    "北京市", "天津市", "上海市", "重庆市", "北京", "天津", "上海", "重庆",
    "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省", "江苏省", "浙江省", "安徽省",
    "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省", "海南省",
    "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "青海省", "台湾省",
    "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西",
    "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西",
    "甘肃", "青海", "台湾",
    "内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区",
    "内蒙古", "广西", "西藏", "宁夏", "新疆",
    "香港特别行政区", "澳门特别行政区", "香港", "澳门",
)  # fmt: skip

#: Provincial capitals and the largest other cities, with and without 市.
CN_CITIES = (
    "广州", "深圳", "杭州", "南京", "苏州", "成都", "武汉", "西安", "长沙", "郑州", "济南",
    "青岛", "厦门", "福州", "合肥", "南昌", "沈阳", "大连", "长春", "哈尔滨", "石家庄",
    "太原", "呼和浩特", "南宁", "海口", "贵阳", "昆明", "拉萨", "兰州", "西宁", "银川",
    "乌鲁木齐", "宁波", "无锡", "东莞", "佛山", "珠海", "温州", "常州", "烟台", "泉州",
)  # fmt: skip

#: The 47 prefectures, full forms only (北海道 is one).
JP_PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県",
    "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県",
    "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府",
    "大阪府", "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県",
    "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県",
    "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)  # fmt: skip

#: Words that say what a business does, not which one it is. A name left with only these
#: after its region ("北京电力工程" → "电力工程") keeps the region.
GENERIC_WORDS = (
    "科技", "技术", "信息", "网络", "软件", "电子", "通信", "电器", "电气", "机械", "设备",
    "制造", "工业", "实业", "贸易", "商贸", "进出口", "投资", "控股", "资本", "金融",
    "证券", "保险", "信托", "基金", "担保", "发展", "建设", "建筑", "工程", "房地产",
    "地产", "置业", "物业", "咨询", "管理", "服务", "物流", "运输", "航空", "铁路", "交通",
    "公交", "地铁", "汽车", "能源", "电力", "供电", "石油", "化工", "燃气", "热力", "水务",
    "自来水", "环保", "医药", "制药", "生物", "医疗", "食品", "饮料", "啤酒", "酒业",
    "农业", "文化", "传媒", "广告", "教育", "广播", "出版", "旅游", "酒店", "餐饮", "百货",
    "商场", "超市", "钢铁", "纺织", "服装", "国际", "市", "省",
    "電力", "鉄道", "交通", "ガス", "証券", "保険", "空港", "観光", "不動産", "建設",
    "電機", "工業", "商事", "物産", "運輸", "製薬", "化学", "テレビ", "バス",
)  # fmt: skip

#: Institutions that exist once per city or province: a name ending in one of these keeps
#: its region ("北京师范大学" is not "上海师范大学", nor "北京银行" "上海银行").
REGIONAL_INSTITUTIONS = (
    "银行", "分行", "支行", "大学", "学院", "学校", "中学", "小学", "幼儿园", "医院",
    "卫生院", "电视台", "广播电台", "日报", "晚报", "报社", "研究院", "研究所", "设计院",
    "博物馆", "图书馆", "政府", "委员会", "分公司", "办事处", "协会", "商会",
    "銀行", "信用金庫", "信用組合", "大学", "高校", "病院", "放送", "新聞", "新聞社",
    "協会", "支店",
)  # fmt: skip

#: Also recognised in brackets after the start: "索尼（中国）", "阿里巴巴（中国）网络技术".
_BRACKETED_ONLY = ("中国", "中國")


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


_REGIONS = _alternation((*CN_REGIONS, *CN_CITIES, *(c + "市" for c in CN_CITIES), *JP_PREFECTURES))
_OPEN, _CLOSE = "[(（【\\[]", "[)）】\\]]"
_LEADING = re.compile(rf"^\s*(?:{_OPEN}\s*(?:{_REGIONS})\s*{_CLOSE}|(?:{_REGIONS}))\s*")
_BRACKETED = re.compile(rf"{_OPEN}\s*(?:{_REGIONS}|{_alternation(_BRACKETED_ONLY)})\s*{_CLOSE}")
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")
_GENERIC = frozenset(GENERIC_WORDS)
_GENERIC_LENGTHS = sorted({len(w) for w in GENERIC_WORDS}, reverse=True)
_INSTITUTIONS = tuple(REGIONAL_INSTITUTIONS)


def _without_generic_tail(core: str) -> str:
    """``core`` less one trailing generic word (the longest), or unchanged."""
    for n in _GENERIC_LENGTHS:
        if len(core) >= n and core[-n:] in _GENERIC:
            return core[:-n]
    return core


def _distinctive(rest: str) -> bool:
    """True when ``rest``, without its region, still names one company: it is not a
    regional institution, and something is left once its generic industry words are gone."""
    core = _NOT_LETTER_OR_DIGIT.sub("", company_suffix(rest))
    if core.endswith(_INSTITUTIONS):
        return False
    while True:
        shorter = _without_generic_tail(core)
        if shorter == core:
            return bool(core)
        core = shorter


@register_normalizer("region_prefix")
def region_prefix(value: str) -> str:
    """Remove leading regions (several: "广东省深圳市…", or one in brackets: "【北京】…")
    and bracketed regions further on ("腾讯科技（深圳）", "阿里巴巴（中国）网络技术"), as
    long as a distinctive name is left.

    >>> region_prefix("北京字节跳动科技"), region_prefix("广东省深圳市腾讯计算机系统")
    ('字节跳动科技', '腾讯计算机系统')
    >>> region_prefix("上海"), region_prefix("北京银行"), region_prefix("東京都ソフトウェア")
    ('上海', '北京银行', 'ソフトウェア')
    """
    while True:
        shorter = _LEADING.sub("", value, count=1)
        if shorter == value or not _distinctive(shorter):
            break
        value = shorter
    shorter = _BRACKETED.sub("", value).strip()
    return shorter if shorter != value and _distinctive(shorter) else value
