"""Names for the demo company's world: companies and people in Chinese, Japanese and English,
places by region, and the words activities and cases are written with.

Company names are unique *after* the duplicate rules' normalization (legal forms and place
prefixes removed, case and width folded): :class:`CompanyNames` maps each ordinal to a
distinct core name through a permutation chosen by the seed, so a million accounts never
trip the account's ``same_name`` rule.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

CULTURES = ("zh", "ja", "en")

# --- companies ----------------------------------------------------------------------------

ZH_FIRST = (
    "华信",
    "恒远",
    "泰和",
    "嘉禾",
    "鼎盛",
    "瑞丰",
    "天成",
    "宏图",
    "博远",
    "中达",
    "金桥",
    "长青",
    "安泰",
    "汇通",
    "众诚",
    "永鑫",
    "新元",
    "联创",
    "康宁",
    "德润",
    "启明",
    "昊天",
    "锦程",
    "中科",
    "星河",
    "蓝海",
    "腾飞",
    "美达",
    "正泰",
    "润和",
    "百川",
    "九州",
    "盛世",
    "同心",
    "海纳",
    "利源",
    "东升",
    "光华",
    "万象",
    "卓越",
)
ZH_SECOND = (
    "",
    "智",
    "达",
    "信",
    "通",
    "明",
    "诚",
    "和",
    "远",
    "创",
    "合",
    "顺",
    "丰",
    "盈",
    "晟",
    "邦",
)
ZH_TRADE = {
    "manufacturing": ("精密机械", "电子制造", "汽车零部件", "新材料"),
    "it_software": ("软件", "信息技术", "数据科技", "云计算"),
    "finance": ("投资管理", "融资租赁", "保险经纪"),
    "retail": ("商贸", "零售连锁", "供应链"),
    "healthcare": ("医疗器械", "生物医药", "健康管理"),
    "education": ("教育科技", "职业培训"),
    "government": ("城市建设投资", "公共服务"),
    "real_estate": ("置业", "建筑工程", "物业服务"),
    "energy": ("新能源", "电力工程", "环保科技"),
    "logistics": ("物流", "国际货运", "冷链运输"),
    "telecom": ("通信技术", "网络工程"),
    "media": ("文化传媒", "广告"),
    "professional_services": ("咨询", "人力资源", "会计服务"),
    "other": ("实业", "贸易"),
}
ZH_FORMS = ("有限公司", "股份有限公司", "有限责任公司", "集团有限公司")

JA_FIRST = (
    "山田",
    "東和",
    "大和",
    "富士",
    "青葉",
    "桜井",
    "北斗",
    "日進",
    "光洋",
    "三協",
    "中央",
    "昭和",
    "朝日",
    "栄光",
    "平和",
    "明星",
    "丸紅",
    "高砂",
    "若葉",
    "白鷺",
    "旭",
    "松風",
    "泉",
    "藤森",
    "千代田",
    "協和",
    "大成",
    "新星",
    "日本橋",
    "東邦",
)
JA_SECOND = ("", "総合", "テック", "システム", "ホールディングス", "インダストリー", "グローバル")
JA_TRADE = {
    "manufacturing": ("精工", "製作所", "電機"),
    "it_software": ("ソフトウェア", "情報システム", "データ"),
    "finance": ("証券", "リース", "保険サービス"),
    "retail": ("商事", "ストアーズ", "物産"),
    "healthcare": ("メディカル", "製薬", "ヘルスケア"),
    "education": ("教育研究所", "ラーニング"),
    "government": ("公共サービス", "都市開発"),
    "real_estate": ("建設", "不動産", "ハウジング"),
    "energy": ("エネルギー", "電力", "ガス"),
    "logistics": ("運輸", "ロジスティクス", "倉庫"),
    "telecom": ("通信", "ネットワークス"),
    "media": ("メディア", "広告社"),
    "professional_services": ("コンサルティング", "人材サービス"),
    "other": ("産業", "興業"),
}
JA_FORMS = ("株式会社", "(株)", "有限会社", "合同会社")

EN_FIRST = (
    "Northwind",
    "Bluewater",
    "Summit",
    "Pioneer",
    "Evergreen",
    "Crescent",
    "Redwood",
    "Silverline",
    "Harbor",
    "Keystone",
    "Granite",
    "Meridian",
    "Brightpath",
    "Oakridge",
    "Falcon",
    "Lakeside",
    "Sterling",
    "Horizon",
    "Cobalt",
    "Westfield",
    "Ironbridge",
    "Maple",
    "Beacon",
    "Atlas",
)
EN_SECOND = ("", "Global", "United", "Pacific", "Advanced", "First", "Premier", "Apex")
EN_TRADE = {
    "manufacturing": ("Manufacturing", "Precision", "Industries"),
    "it_software": ("Software", "Systems", "Digital"),
    "finance": ("Capital", "Financial", "Insurance"),
    "retail": ("Trading", "Retail", "Supply"),
    "healthcare": ("Medical", "Health", "Biotech"),
    "education": ("Learning", "Academy"),
    "government": ("Public Works", "Civic Services"),
    "real_estate": ("Properties", "Construction"),
    "energy": ("Energy", "Power", "Solar"),
    "logistics": ("Logistics", "Freight", "Shipping"),
    "telecom": ("Telecom", "Networks"),
    "media": ("Media", "Studios"),
    "professional_services": ("Consulting", "Partners", "Advisory"),
    "other": ("Holdings", "Enterprises"),
}
EN_FORMS = ("Inc.", "Ltd.", "Co., Ltd.", "Corporation", "LLC", "Pte. Ltd.")

INDUSTRIES = tuple(ZH_TRADE)


@dataclass(frozen=True)
class Place:
    region: str
    province: str
    city: str
    street: str


PLACES: dict[str, tuple[tuple[str, str, str], ...]] = {
    # region: (province, city, street) — streets are real-sounding, numbers added per account
    "north_china": (
        ("北京市", "北京", "朝阳区建国路"),
        ("天津市", "天津", "和平区南京路"),
        ("河北省", "石家庄", "长安区中山东路"),
        ("山西省", "太原", "小店区长风街"),
    ),
    "northeast_china": (
        ("辽宁省", "沈阳", "和平区青年大街"),
        ("辽宁省", "大连", "中山区人民路"),
        ("黑龙江省", "哈尔滨", "南岗区红军街"),
    ),
    "east_china": (
        ("上海市", "上海", "浦东新区世纪大道"),
        ("江苏省", "南京", "玄武区中山路"),
        ("江苏省", "苏州", "工业园区星湖街"),
        ("浙江省", "杭州", "西湖区文三路"),
        ("浙江省", "宁波", "鄞州区天童南路"),
        ("山东省", "青岛", "市南区香港中路"),
        ("福建省", "厦门", "思明区鹭江道"),
    ),
    "central_china": (
        ("湖北省", "武汉", "洪山区珞喻路"),
        ("湖南省", "长沙", "岳麓区麓谷大道"),
        ("河南省", "郑州", "金水区花园路"),
    ),
    "south_china": (
        ("广东省", "广州", "天河区天河路"),
        ("广东省", "深圳", "南山区科技园路"),
        ("广东省", "东莞", "南城区鸿福路"),
    ),
    "southwest_china": (
        ("四川省", "成都", "高新区天府大道"),
        ("重庆市", "重庆", "渝中区解放碑"),
        ("云南省", "昆明", "五华区东风西路"),
    ),
    "northwest_china": (("陕西省", "西安", "雁塔区高新路"), ("甘肃省", "兰州", "城关区东岗西路")),
    "hk_macao_taiwan": (
        ("香港", "Hong Kong", "Queen's Road Central"),
        ("台湾", "Taipei", "Xinyi Road Sec. 5"),
    ),
    "japan": (
        ("東京都", "千代田区", "丸の内"),
        ("東京都", "港区", "六本木"),
        ("大阪府", "大阪市", "北区梅田"),
        ("愛知県", "名古屋市", "中村区名駅"),
        ("福岡県", "福岡市", "博多区博多駅前"),
        ("神奈川県", "横浜市", "西区みなとみらい"),
    ),
    "overseas": (
        ("Singapore", "Singapore", "Raffles Place"),
        ("California", "San Jose", "North First Street"),
        ("England", "London", "Bishopsgate"),
        ("Bavaria", "Munich", "Leopoldstraße"),
    ),
}

CHINA_REGIONS = (
    ("east_china", 32),
    ("north_china", 18),
    ("south_china", 18),
    ("central_china", 10),
    ("southwest_china", 10),
    ("northeast_china", 6),
    ("northwest_china", 6),
)
REGION_GEO = {  # rough coordinates of the region's first city, for visit check-ins
    "north_china": (39.9, 116.4),
    "northeast_china": (41.8, 123.4),
    "east_china": (31.2, 121.5),
    "central_china": (30.6, 114.3),
    "south_china": (23.1, 113.3),
    "southwest_china": (30.6, 104.1),
    "northwest_china": (34.3, 108.9),
    "hk_macao_taiwan": (22.3, 114.2),
    "japan": (35.7, 139.7),
    "overseas": (1.3, 103.9),
}


class CompanyNames:
    """Distinct company names by ordinal: ``name(n, culture, industry)``.

    The core (first part, second part, trade word) of ordinal ``n`` is the ``n``-th element
    of a seed-chosen permutation of all cores of that culture; past the last core a number
    is added ("华信智软件 2"), which the normalizers keep. Legal forms and place prefixes
    vary freely: they are what the duplicate rules strip.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    @staticmethod
    def _parts(culture: str) -> tuple[Sequence[str], Sequence[str], dict[str, tuple[str, ...]]]:
        if culture == "zh":
            return ZH_FIRST, ZH_SECOND, ZH_TRADE
        if culture == "ja":
            return JA_FIRST, JA_SECOND, JA_TRADE
        return EN_FIRST, EN_SECOND, EN_TRADE

    def name(self, n: int, culture: str, industry: str, rng: random.Random) -> str:
        first, second, trades = self._parts(culture)
        trade_words = trades[industry]
        # The core space is the same for every industry of a culture (the trade word index
        # runs to the longest list; a shorter list wraps, so its name stays distinct as the
        # (first, second, index) triple is distinct and the index picks within the industry).
        width = max(len(t) for t in trades.values())
        total = len(first) * len(second) * width
        step = _coprime(total, self.seed + len(culture))
        k = (step * n + self.seed) % total
        cycle = n // total
        f, rest = divmod(k, len(second) * width)
        s, t = divmod(rest, width)
        trade = trade_words[t % len(trade_words)]
        if t >= len(trade_words):
            # the wrapped index would repeat a name of this industry: a branch word differs
            trade = f"{trade}{_BRANCH[culture][t // len(trade_words) - 1]}"
        suffix = f" {cycle + 1}" if cycle else ""
        if culture == "zh":
            place = rng.choice(("", "", "上海", "北京", "深圳", "杭州"))
            return f"{place}{first[f]}{second[s]}{trade}{suffix}{rng.choice(ZH_FORMS)}"
        if culture == "ja":
            form = rng.choice(JA_FORMS)
            core = f"{first[f]}{second[s]}{trade}{suffix}"
            return (
                f"{form}{core}"
                if form in ("株式会社", "有限会社") and rng.random() < 0.5
                else (f"{core}{form}")
            )
        core = " ".join(p for p in (first[f], second[s], trade) if p)
        return f"{core}{suffix} {rng.choice(EN_FORMS)}"


_BRANCH = {
    "zh": ("科技", "发展", "服务"),
    "ja": ("テクノ", "開発", "サービス"),
    "en": ("Works", "Labs", "Services"),
}


def _coprime(total: int, seed: int) -> int:
    """A multiplier coprime to ``total``: ``n -> step * n + c (mod total)`` is a permutation."""
    step = 7919 + 2 * (seed % 1000)
    while math.gcd(step, total) != 1:
        step += 1
    return step


# --- people -------------------------------------------------------------------------------

ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
ZH_GIVEN = (
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "霞",
    "平",
    "刚",
    "桂英",
    "建华",
    "文",
    "华",
    "晓东",
    "海燕",
    "志强",
    "雪",
    "斌",
    "婷",
    "宇",
    "浩然",
    "子涵",
    "欣怡",
    "梓轩",
    "思远",
    "佳琪",
)
JA_SURNAMES = (
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "伊藤",
    "渡辺",
    "山本",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山田",
    "佐々木",
    "山口",
    "松本",
    "井上",
    "木村",
    "林",
    "斎藤",
    "清水",
)
JA_GIVEN = (
    "翔太",
    "陽菜",
    "大輔",
    "美咲",
    "健一",
    "由美",
    "拓也",
    "愛",
    "直樹",
    "恵",
    "誠",
    "さくら",
    "浩二",
    "真由美",
    "亮",
    "結衣",
    "隆",
    "彩",
    "和也",
    "明美",
)
EN_GIVEN = (
    "James",
    "Mary",
    "Robert",
    "Linda",
    "Michael",
    "Sarah",
    "David",
    "Emma",
    "Daniel",
    "Olivia",
    "Thomas",
    "Sophie",
    "Andrew",
    "Grace",
    "Peter",
    "Hannah",
    "Mark",
    "Chloe",
    "Paul",
    "Laura",
)
EN_SURNAMES = (
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Davies",
    "Evans",
    "Walker",
    "Wright",
    "Clarke",
    "Hughes",
    "Green",
    "Hall",
    "Wood",
    "Turner",
    "Harris",
    "Lewis",
    "Baker",
    "Young",
    "King",
)
ROMAJI = {
    "佐藤": "sato",
    "鈴木": "suzuki",
    "高橋": "takahashi",
    "田中": "tanaka",
    "伊藤": "ito",
    "渡辺": "watanabe",
    "山本": "yamamoto",
    "中村": "nakamura",
    "小林": "kobayashi",
    "加藤": "kato",
    "吉田": "yoshida",
    "山田": "yamada",
    "佐々木": "sasaki",
    "山口": "yamaguchi",
    "松本": "matsumoto",
    "井上": "inoue",
    "木村": "kimura",
    "林": "hayashi",
    "斎藤": "saito",
    "清水": "shimizu",
}
PINYIN = dict(
    zip(
        ZH_SURNAMES,
        (
            "wang",
            "li",
            "zhang",
            "liu",
            "chen",
            "yang",
            "huang",
            "zhao",
            "wu",
            "zhou",
            "xu",
            "sun",
            "ma",
            "zhu",
            "hu",
            "guo",
            "he",
            "gao",
            "lin",
            "luo",
            "zheng",
            "liang",
            "xie",
            "song",
            "tang",
            "xu",
            "han",
            "feng",
            "deng",
            "cao",
            "peng",
            "zeng",
            "xiao",
            "tian",
            "dong",
            "yuan",
            "pan",
        ),
        strict=True,
    )
)


def person(culture: str, rng: random.Random) -> tuple[str, str]:
    """A person's name and an e-mail local part for it."""
    if culture == "zh":
        surname = rng.choice(ZH_SURNAMES)
        return surname + rng.choice(ZH_GIVEN), f"{PINYIN[surname]}{rng.randrange(10, 999)}"
    if culture == "ja":
        surname = rng.choice(JA_SURNAMES)
        return f"{surname} {rng.choice(JA_GIVEN)}", f"{ROMAJI[surname]}.{rng.randrange(10, 99)}"
    given, surname = rng.choice(EN_GIVEN), rng.choice(EN_SURNAMES)
    return f"{given} {surname}", f"{given[0].lower()}.{surname.lower()}"


TITLES = {
    "zh": (
        ("总经理", "总经办"),
        ("采购经理", "采购部"),
        ("IT总监", "信息中心"),
        ("财务总监", "财务部"),
        ("销售副总", "销售部"),
        ("项目经理", "项目部"),
        ("行政主管", "行政部"),
        ("技术工程师", "技术部"),
    ),
    "ja": (
        ("代表取締役", "経営企画部"),
        ("購買部長", "購買部"),
        ("情報システム部長", "情報システム部"),
        ("経理課長", "経理部"),
        ("営業部長", "営業部"),
        ("プロジェクトマネージャー", "開発部"),
        ("総務担当", "総務部"),
    ),
    "en": (
        ("CEO", "Management"),
        ("Head of Procurement", "Procurement"),
        ("CIO", "IT"),
        ("CFO", "Finance"),
        ("VP Sales", "Sales"),
        ("Project Manager", "Operations"),
        ("Office Manager", "Administration"),
    ),
}


def phone(culture: str, rng: random.Random, mobile: bool) -> str:
    if culture == "zh":
        if mobile:
            return f"1{rng.choice('3578')}{rng.randrange(0, 10)}{rng.randrange(10**7, 10**8)}"
        return f"0{rng.randrange(10, 999)}-{rng.randrange(10**7, 10**8)}"
    if culture == "ja":
        if mobile:
            return f"0{rng.choice('789')}0-{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}"
        return f"0{rng.randrange(3, 99)}-{rng.randrange(100, 9999)}-{rng.randrange(1000, 9999)}"
    country = rng.choice(("65", "1", "44", "49"))
    return f"+{country} {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}"


def domain(company: str, ordinal: int, culture: str) -> str:
    """A made-up web domain for a company (ASCII, unique by ordinal)."""
    tld = {"zh": "cn", "ja": "jp", "en": "com"}[culture]
    letters = "".join(ch for ch in company.lower() if ch.isascii() and ch.isalnum())[:12]
    return f"{letters or 'corp'}{ordinal}.example.{tld}"


# --- what people write ----------------------------------------------------------------------

ACTIVITY_SUBJECTS = {
    "zh": {
        "call": ("电话沟通需求", "电话回访", "确认报价细节"),
        "visit": ("上门拜访", "现场演示"),
        "email": ("发送方案资料", "邮件确认合同条款"),
        "meeting": ("需求研讨会", "商务谈判会议"),
        "message": ("微信沟通进度",),
        "note": ("内部备注：客户预算情况",),
    },
    "ja": {
        "call": ("電話でヒアリング", "フォロー電話", "見積内容の確認"),
        "visit": ("訪問打ち合わせ", "現地デモ"),
        "email": ("提案資料の送付", "契約条件のメール確認"),
        "meeting": ("要件定義ミーティング", "価格交渉"),
        "message": ("チャットで進捗確認",),
        "note": ("社内メモ：予算状況",),
    },
    "en": {
        "call": ("Discovery call", "Follow-up call", "Pricing questions"),
        "visit": ("On-site visit", "Product demo on site"),
        "email": ("Sent the proposal", "Contract terms by e-mail"),
        "meeting": ("Requirements workshop", "Commercial negotiation"),
        "message": ("Chat about next steps",),
        "note": ("Internal note: budget",),
    },
}
NEXT_STEPS = {
    "zh": ("准备报价单", "安排技术交流", "等待客户内部审批", "发送合同草稿", "约见决策人"),
    "ja": (
        "見積書を作成",
        "技術説明会を設定",
        "社内稟議の結果待ち",
        "契約書案を送付",
        "決裁者と面談",
    ),
    "en": (
        "Prepare the quote",
        "Set up a technical session",
        "Wait for their approval",
        "Send the draft contract",
        "Meet the decision maker",
    ),
}
CASE_SUBJECTS = {
    "complaint": {
        "zh": "交付延迟投诉",
        "ja": "納期遅延のクレーム",
        "en": "Complaint about late delivery",
    },
    "inquiry": {
        "zh": "咨询功能使用方法",
        "ja": "機能の使い方の問い合わせ",
        "en": "How-to question",
    },
    "fault": {"zh": "设备故障报修", "ja": "機器故障の修理依頼", "en": "Device fault reported"},
    "return_refund": {
        "zh": "申请退货退款",
        "ja": "返品・返金の依頼",
        "en": "Return and refund request",
    },
    "suggestion": {"zh": "产品改进建议", "ja": "製品改善の提案", "en": "Product suggestion"},
    "other": {"zh": "其他问题", "ja": "その他の問い合わせ", "en": "Other request"},
}
RESOLUTIONS = {
    "zh": ("已远程协助解决", "已更换备件", "已补发货物并致歉", "已办理退款"),
    "ja": ("リモートで解決済み", "部品を交換済み", "再送してお詫び済み", "返金処理済み"),
    "en": ("Solved remotely", "Replaced the part", "Re-shipped with an apology", "Refund issued"),
}
