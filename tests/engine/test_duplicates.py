"""engine.duplicates: normalizers, match keys, rules and similarity, with real-looking names."""

from __future__ import annotations

import doctest
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import crm_definitions
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import duplicates
from engine.duplicates import (
    Duplicate,
    MatchRule,
    UnknownNormalizer,
    _company,
    _regions,
    _text,
    find_duplicates,
    get_normalizer,
    match_key,
    normalizer_names,
    register_normalizer,
    rules,
    similarity,
    unregister_normalizer,
)
from metamodel import load_packages
from metamodel.schema import NORMALIZERS

# The account name rule of the CRM package, in its order.
NAME = ["case", "space", "width", "company_suffix", "region_prefix", "punctuation"]


def name_key(value: str) -> str:
    return match_key(value, NAME)


def same(*values: str, normalizers: list[str] = NAME) -> bool:
    return len({match_key(v, normalizers) for v in values}) == 1


# --- the registry ---------------------------------------------------------------------


def test_the_built_ins_are_the_names_the_definition_language_allows() -> None:
    assert set(normalizer_names()) == set(NORMALIZERS)


def test_every_crm_duplicate_rule_compiles() -> None:
    model = load_packages([crm_definitions.PATH])
    compiled = [
        MatchRule.from_definition(rule) for entity in model for rule in entity.duplicate_rules
    ]
    assert {rule.name for rule in compiled} >= {"same_name", "same_phone"}


@pytest.fixture
def kana() -> Iterator[str]:
    """A package's own normalizer: hiragana folded to katakana."""

    @register_normalizer("kana")
    def to_katakana(value: str) -> str:
        return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in value)

    yield "kana"
    unregister_normalizer("kana")


def test_a_package_registers_its_own_normalizer(kana: str) -> None:
    assert kana in normalizer_names()
    assert match_key("そにー株式会社", [kana, "company_suffix"]) == "ソニー"
    rule = MatchRule("same_name", ("name",), (kana, "company_suffix"))
    assert rule.matches({"name": "そにー"}, {"name": "ソニー(株)"})


def test_a_name_is_registered_once_unless_replaced(kana: str) -> None:
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        register_normalizer(kana, str.upper)
    register_normalizer(kana, str.upper, replace=True)
    assert get_normalizer(kana) is str.upper


def test_a_name_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="lower-case identifier"):
        register_normalizer("Full Width", str.upper)


def test_an_unknown_normalizer_suggests_the_nearest() -> None:
    with pytest.raises(
        UnknownNormalizer, match=r"unknown normalizer 'phon' \(did you mean 'phone'\?\)"
    ):
        match_key("x", ["phon"])
    with pytest.raises(UnknownNormalizer, match="known normalizers: case, company_suffix"):
        MatchRule("r", ("name",), ("casefold_everything",))


@pytest.mark.parametrize("module", [duplicates, _text, _company, _regions, rules])
def test_docstring_examples(module: ModuleType) -> None:
    failed, _ = doctest.testmod(module)
    assert failed == 0


DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_normalizer_is_documented() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \|", (DOCS / "duplicates.md").read_text(), re.M))
    assert set(normalizer_names()) <= documented


@pytest.mark.parametrize(
    ("name", "a", "b"),
    [  # the examples of docs/definitions.md's normalizer table
        ("case", "ACME", "acme"),
        (
            "space",
            "Acme  Trading",
            "Acme Trading",
        ),  # the table says "AcmeTrading": see docs/duplicates.md
        ("width", "ＡＢＣ１２３", "ABC123"),
        ("company_suffix", "华为技术有限公司", "华为技术"),
        ("company_suffix", "トヨタ自動車株式会社", "トヨタ自動車"),
        ("company_suffix", "Acme Co., Ltd.", "Acme"),
        ("region_prefix", "上海华为技术", "华为技术"),
        ("phone", "+86 138-0013-8000", "13800138000"),
        ("punctuation", "Acme, Inc.", "Acme Inc"),
    ],
)
def test_the_documented_examples_hold(name: str, a: str, b: str) -> None:
    assert match_key(a, [name]) == match_key(b, [name])


# --- one normalizer at a time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("case", "ACME Straße", "acme strasse"),
        ("case", "Ａｃｍｅ", "ａｃｍｅ"),
        ("space", "  Acme \t\n Trading  ", "Acme Trading"),
        ("space", "ソニー\u3000株式会社", "ソニー株式会社"),
        ("space", "字节 跳动 科技", "字节跳动科技"),
        ("space", "IBM 中国", "IBM中国"),
        ("space", "Ｓｏｎｙ\u3000Ｃｏｒｐ", "Ｓｏｎｙ Ｃｏｒｐ"),
        ("space", "Acme\u200bTrading\u00a0Co", "AcmeTrading Co"),
        ("space", "삼성 전자", "삼성 전자"),  # Korean separates words
        ("width", "ＡＣＭＥ　１２３", "ACME 123"),
        ("width", "ｿﾆｰ ﾐｭｰｼﾞｯｸ", "ソニー ミュージック"),
        ("width", "㈱トヨタ", "(株)トヨタ"),
        ("width", "（有限公司）", "(有限公司)"),
        ("punctuation", "【北京】字节跳动（科技）", "北京字节跳动科技"),
        ("punctuation", "「ソニー」・ミュージック", "ソニーミュージック"),
        ("punctuation", "ソニー", "ソニー"),  # the long-vowel mark is a letter
        ("punctuation", "A.B.C. Trading", "ABC Trading"),
        ("punctuation", "Coca-Cola", "Coca Cola"),
        ("punctuation", "O'Brien & Sons, Ltd.", "OBrien Sons Ltd"),
        ("punctuation", "华为—技术〜有限公司", "华为技术有限公司"),
        ("punctuation", "Acme™ | Widgets", "Acme Widgets"),
        ("punctuation", "、。，：；！？", ""),
    ],
)
def test_normalizer(name: str, value: str, expected: str) -> None:
    assert get_normalizer(name)(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("北京字节跳动科技有限公司", "北京字节跳动科技"),
        ("北京字节跳动科技(有限公司)", "北京字节跳动科技"),
        ("北京字节跳动科技（有限公司）", "北京字节跳动科技"),
        ("阿里巴巴集团控股有限公司", "阿里巴巴集团控股"),
        ("海尔集团", "海尔"),
        ("万科企业股份有限公司", "万科企业"),
        ("华为技术有限责任公司", "华为技术"),
        ("万达集团股份有限公司", "万达"),
        ("中国平安保险(集团)股份有限公司", "中国平安保险"),
        ("台積電有限公司", "台積電"),
        ("字节跳动北京分公司", "字节跳动北京分公司"),  # a branch keeps 分公司
        ("株式会社ソニー", "ソニー"),
        ("ソニー株式会社", "ソニー"),
        ("ソニー (株)", "ソニー"),
        ("㈱ソニー", "ソニー"),
        ("（株）ソニー", "ソニー"),
        ("有限会社山田商店", "山田商店"),
        ("合同会社DMM.com", "DMM.com"),
        ("山田商店(有)", "山田商店"),
        ("一般社団法人日本経済団体連合会", "日本経済団体連合会"),
        ("NPO法人フローレンス", "フローレンス"),
        ("医療法人社団 山田会", "山田会"),
        ("Toyota Motor Kabushiki Kaisha", "Toyota Motor"),
        ("德勤华永会计师事务所（特殊普通合伙）", "德勤华永会计师事务所"),
        ("红杉资本投资中心(有限合伙)", "红杉资本投资中心"),
        ("Acme Corporation", "Acme"),
        ("Acme Corp.", "Acme"),
        ("acme corp", "acme"),
        ("Acme, Inc.", "Acme"),
        ("Acme Incorporated", "Acme"),
        ("Acme Co., Ltd.", "Acme"),
        ("Acme Co.,Ltd", "Acme"),
        ("ACME CO.LTD.", "ACME"),
        ("acme company limited", "acme"),
        ("Acme LLC", "Acme"),
        ("Acme Holdings PLC", "Acme Holdings"),
        ("Siemens AG", "Siemens"),
        ("Robert Bosch GmbH", "Robert Bosch"),
        ("Acme Pte. Ltd.", "Acme"),
        ("Shenzhen Acme Technology Co., Ltd.", "Shenzhen Acme Technology"),
        ("华为 Co., Ltd.", "华为"),
        ("Acmeinc", "Acmeinc"),  # no boundary, no suffix
        ("Costco", "Costco"),
        ("Limited Brands Inc.", "Limited Brands"),
    ],
)
def test_company_suffix(value: str, expected: str) -> None:
    assert get_normalizer("company_suffix")(value) == expected


@pytest.mark.parametrize(
    "value",
    ["有限公司", "股份有限公司", "公司", "集团", "株式会社", "(株)", "㈱", "Inc.", "Ltd",
     "Co., Ltd.", "Corporation", "Limited", "GmbH"],
)  # fmt: skip
def test_a_name_that_is_only_a_legal_form_is_kept(value: str) -> None:
    assert get_normalizer("company_suffix")(value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("北京字节跳动科技", "字节跳动科技"),
        ("北京市字节跳动科技", "字节跳动科技"),
        ("上海市大众交通", "大众交通"),
        ("广东省深圳市腾讯计算机系统", "腾讯计算机系统"),
        ("深圳腾讯计算机系统", "腾讯计算机系统"),
        ("内蒙古自治区伊利实业", "伊利实业"),
        ("内蒙古伊利实业", "伊利实业"),
        ("广西壮族自治区柳州五菱", "柳州五菱"),
        ("北京京东世纪贸易", "京东世纪贸易"),
        ("腾讯科技(深圳)", "腾讯科技"),
        ("索尼（中国）", "索尼"),
        ("阿里巴巴（中国）网络技术", "阿里巴巴网络技术"),
        ("Sony (中国) Music", "Sony  Music"),
        ("東京都ソフトバンク", "ソフトバンク"),
        ("神奈川県日産自動車", "日産自動車"),
        ("北海道ニトリ", "ニトリ"),
        ("東京エレクトロン", "東京エレクトロン"),  # bare 東京 is part of the name
        ("Beijing Acme", "Beijing Acme"),  # only Chinese and Japanese names
    ],
)
def test_region_prefix(value: str, expected: str) -> None:
    assert get_normalizer("region_prefix")(value) == expected


@pytest.mark.parametrize(
    "value",
    ["上海", "北京市", "广东省", "内蒙古自治区", "東京都", "北海道", "北京银行", "上海银行",
     "北京大学", "上海电视台", "海南航空", "青岛啤酒", "大阪府ガス", "北京科技", "（北京）",
     "北京师范大学", "上海市第一人民医院", "上海浦东发展银行", "北京电力工程", "東京都民銀行",
     "北京银行股份有限公司", "中国银行(香港)", "北海道新聞社"],
)  # fmt: skip
def test_a_region_with_no_distinctive_name_after_it_is_kept(value: str) -> None:
    assert get_normalizer("region_prefix")(value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+86 138-0013-8000", "13800138000"),
        ("13800138000", "13800138000"),
        ("0086 138 0013 8000", "13800138000"),
        ("86 138 0013 8000", "13800138000"),
        ("+86 (138) 0013 8000", "13800138000"),
        ("013800138000", "13800138000"),  # a mobile dialled with the long-distance 0
        ("１３８－００１３－８０００", "13800138000"),
        ("010-8888-6666", "01088886666"),
        ("+86 10 8888 6666", "01088886666"),
        ("+86 (0)10 8888 6666", "01088886666"),
        ("(021) 5555-0000", "02155550000"),
        ("+86 21 5555 0000", "02155550000"),
        ("03-1234-5678", "0312345678"),
        ("+81 3 1234 5678", "0312345678"),
        ("+81-(0)3-1234-5678", "0312345678"),
        ("(+81) 3-1234-5678", "0312345678"),
        ("Tel: +86 138 0013 8000", "13800138000"),
        ("＋８１ ３ １２３４ ５６７８", "0312345678"),
        ("0081 3 1234 5678", "0312345678"),
        ("090-1234-5678", "09012345678"),
        ("+81 90 1234 5678", "09012345678"),
        ("010-8888-6666转8001", "01088886666"),
        ("03-1234-5678 内線 123", "0312345678"),
        ("+1 (415) 555-0100 ext. 12", "14155550100"),
        ("+44 20 7946 0958", "442079460958"),
        ("n/a", ""),
        ("", ""),
    ],
)
def test_phone(value: str, expected: str) -> None:
    assert get_normalizer("phone")(value) == expected


@given(st.text(alphabet="0123456789", max_size=24))
def test_digits_alone_are_read_as_they_are(digits: str) -> None:
    """What the phone normalizer's second pass takes without reading it again."""
    assert _text._phone_parts(digits) == (digits, False)


@given(
    st.text(alphabet=" \t\n\u3000\u00a0\u200b\ufeffaZ字节ｿ.,-", max_size=16) | st.text(max_size=16)
)
def test_tidy_leaves_text_without_whitespace_as_it_is(value: str) -> None:
    spaced = _text._SPACES.sub(" ", _text._INVISIBLE.sub("", value)).strip()
    assert _text.tidy(value) == _text._SPACE_BY_CJK.sub("", spaced)


@given(st.text(alphabet="aZ0９字节ｿー𠀀.,'・~®-（） \u3000", max_size=12) | st.text(max_size=12))
def test_punctuation_leaves_letters_and_digits_alone_as_they_are(value: str) -> None:
    """The shortcut for a name of letters and digits gives what the full pass gives."""
    full = value.translate(_text._punctuation_table())
    if _text._ASTRAL.search(full):
        full = "".join(" " if _text._is_punctuation(ch) else ch for ch in full)
    assert _text.punctuation(value) == _text.tidy(full)


def test_different_phones_stay_apart() -> None:
    phones = ["13800138000", "13800138001", "010-8888-6666", "021-8888-6666", "03-8888-6666",
              "+1 010 8888 6666", "+44 20 7946 0958", "+44 20 7946 0959"]  # fmt: skip
    assert len({match_key(p, ["phone"]) for p in phones}) == len(phones)


# Names as people type them: CJK, kana (both widths), Latin, digits, spaces and punctuation.
names = st.text(
    st.one_of(
        st.sampled_from(
            "北京上海市省有限公司株式会社集团银行字节跳动科技ソニーｿﾆｰ(株)㈱（）【】・ー、。"
        ),
        st.sampled_from(" \u3000\t.,-'&()"),
        st.characters(codec="utf-8"),
    ),
    max_size=24,
)


@given(names)
def test_a_name_with_letters_never_loses_them_all(value: str) -> None:
    for name in ("company_suffix", "region_prefix"):
        if any(ch.isalnum() for ch in value):
            assert any(ch.isalnum() for ch in get_normalizer(name)(value))


@given(names)
def test_simple_normalizers_are_idempotent(value: str) -> None:
    for name in ("space", "width", "punctuation", "phone"):
        fn = get_normalizer(name)
        assert fn(fn(value)) == fn(value)


@given(names, names)
def test_similarity_is_symmetric_and_bounded(a: str, b: str) -> None:
    assert similarity(a, b) == similarity(b, a)
    assert 0.0 <= similarity(a, b) <= 1.0


# --- the account rule, whole ----------------------------------------------------------

SAME_COMPANY = [
    ("Acme Corporation", "ACME  corporation", "Acme Corp.", "acme corp", "ACME, Inc.",
     "Ａｃｍｅ　Ｃｏｒｐｏｒａｔｉｏｎ", "Acme Co., Ltd."),
    ("北京字节跳动科技有限公司", "字节跳动科技", "北京字节跳动科技（有限公司）",
     "北京市字节跳动科技有限公司", "字节跳动 科技 有限公司", "【北京】字节跳动科技"),
    ("株式会社ソニー", "ソニー株式会社", "ｿﾆｰ(株)", "㈱ソニー", "ソニー　株式会社", "（株）ソニー"),
    ("ソニー・ミュージックエンタテインメント", "ソニーミュージックエンタテインメント(株)",
     "株式会社 ｿﾆｰ･ﾐｭｰｼﾞｯｸｴﾝﾀﾃｲﾝﾒﾝﾄ"),
    ("腾讯科技（深圳）有限公司", "腾讯科技(深圳)有限公司", "深圳腾讯科技有限公司"),
    ("Coca-Cola Company", "Coca Cola Co.", "COCA-COLA"),
]  # fmt: skip


@pytest.mark.parametrize("names", SAME_COMPANY, ids=lambda names: names[0])
def test_spellings_of_one_company_share_a_key(names: tuple[str, ...]) -> None:
    assert len({name_key(n) for n in names}) == 1, {n: name_key(n) for n in names}


DIFFERENT = [
    "有限公司", "公司", "Inc.", "Ltd", "上海", "北京", "北京银行", "上海银行", "北京大学",
    "株式会社", "(株)", "Acme", "Acme Trading", "字节跳动科技", "字节跳动", "腾讯科技",
    "腾讯音乐", "ソニー", "ソニー損害保険", "トヨタ自動車", "日産自動車", "Sony", "Sony Music",
    "上海电视台", "北京电视台", "字节跳动北京分公司", "字节跳动上海分公司", "東京都", "大阪府",
    "北京师范大学", "上海师范大学", "北京交通大学", "上海交通大学", "北京市第一人民医院",
    "上海市第一人民医院", "北京电力工程有限公司", "上海电力工程有限公司", "中国银行(香港)",
    "中国银行（澳门）有限公司", "北京农商银行", "上海农商银行",
]  # fmt: skip


def test_different_companies_keep_different_keys() -> None:
    keys = {name: name_key(name) for name in DIFFERENT}
    clashes = [(a, b) for a, b in itertools.combinations(DIFFERENT, 2) if keys[a] == keys[b]]
    assert clashes == []


@pytest.mark.parametrize(
    "name", ["有限公司", "Inc.", "上海", "株式会社", "東京都", "(株)", "Co., Ltd."]
)
def test_no_name_collapses_to_an_empty_key(name: str) -> None:
    assert name_key(name) != ""


@pytest.mark.parametrize("value", [None, "", "   ", "\u3000", "・", "()"])
def test_a_blank_value_has_an_empty_key(value: str | None) -> None:
    assert match_key(value, NAME) == ""


def test_a_number_is_keyed_as_its_text() -> None:
    assert match_key(13800138000, ["phone"]) == "13800138000"
    assert match_key(13800138000.0, ["phone"]) == "13800138000"  # a spreadsheet cell
    assert match_key(2.5, []) == "2.5"


def test_a_key_never_holds_the_separator() -> None:
    assert match_key("Acme\x1fTrading", []) == "Acme Trading"


def test_no_normalizers_only_trims() -> None:
    assert match_key("  Acme  ", []) == "Acme"


# --- rules -----------------------------------------------------------------------------

name_rule = MatchRule("same_name", ("name",), tuple(NAME))
phone_rule = MatchRule("same_phone", ("phone",), ("phone",))


def test_a_one_field_rule_keys_the_field() -> None:
    assert name_rule.keys({"name": "北京字节跳动科技有限公司"}) == ("字节跳动科技",)
    assert name_rule.keys({"name": ""}) == ()
    assert name_rule.keys({}) == ()


def test_match_all_needs_every_field() -> None:
    rule = MatchRule("name_and_city", ("name", "city"), ("case", "space"), match="all")
    a = {"name": "Acme", "city": "Shanghai"}
    assert rule.keys(a) == ("acme\x1fshanghai",)
    assert rule.matches(a, {"name": "ACME", "city": " shanghai"})
    assert not rule.matches(a, {"name": "ACME", "city": "Beijing"})
    assert rule.keys({"name": "Acme", "city": None}) == ()
    assert not rule.matches({"name": "Acme"}, {"name": "Acme"})  # blank city: no evidence


def test_match_any_needs_one_field_whichever_holds_it() -> None:
    rule = MatchRule("same_contact", ("phone", "mobile"), ("phone",), match="any")
    a = {"phone": "010-8888-6666", "mobile": "+86 138 0013 8000"}
    assert rule.keys(a) == ("01088886666", "13800138000")
    assert rule.matches(a, {"phone": "", "mobile": "13800138000"})
    assert rule.matches(a, {"phone": "13800138000", "mobile": ""})  # the other field
    assert not rule.matches(a, {"phone": "13800138001", "mobile": None})
    assert rule.keys({"phone": None, "mobile": "13800138000"}) == ("13800138000",)
    assert rule.keys({"phone": "13800138000", "mobile": "+8613800138000"}) == ("13800138000",)


def test_rules_that_normalize_alike_share_a_key_space() -> None:
    model = load_packages([crm_definitions.PATH])
    rules = {
        (entity.name, rule.name): MatchRule.from_definition(rule)
        for entity in model
        for rule in entity.duplicate_rules
    }
    account_name, lead_company = rules["account", "same_name"], rules["lead", "same_company"]
    account_phone, lead_phone = rules["account", "same_phone"], rules["lead", "same_phone"]
    assert account_name.key_space == lead_company.key_space
    assert account_phone.key_space == lead_phone.key_space == "each:phone"
    assert account_name.key_space != account_phone.key_space
    leads = [
        (7, {"name": "张伟", "company": "北京字节跳动科技有限公司", "mobile": "", "phone": ""}),
        (8, {"name": "Acme", "company": "Apex", "mobile": "+86 138 0013 8000", "phone": ""}),
    ]
    account = {"name": "字节跳动科技", "phone": "13800138000"}
    found = find_duplicates(account_name, account, leads, candidate_rule=lead_company)
    assert found == [Duplicate(7, 1.0)]  # by company, not by the lead's own name
    found = find_duplicates(account_phone, account, leads, candidate_rule=lead_phone)
    assert found == [Duplicate(8, 1.0)]  # by the lead's mobile
    with pytest.raises(ValueError, match="give them the same normalizers"):
        find_duplicates(account_name, account, leads, candidate_rule=lead_phone)


def test_match_all_keys_need_the_same_number_of_fields() -> None:
    two = MatchRule("r", ("name", "city"), ("case",))
    assert two.key_space == "all2:case"
    with pytest.raises(ValueError, match="compares 2 keys at once"):
        two.score_keys(("acme",), ("acme",))


def test_blank_values_are_never_duplicates() -> None:
    assert not phone_rule.matches({"phone": ""}, {"phone": ""})
    assert not phone_rule.matches({"phone": None}, {})


def test_a_rule_is_compiled_from_a_definition() -> None:
    model = load_packages([crm_definitions.PATH])
    definition = next(r for r in model.entity("account").duplicate_rules if r.name == "same_phone")
    rule = MatchRule.from_definition(definition, fuzzy=None)
    assert (rule.name, rule.fields, rule.normalize, rule.match) == (
        "same_phone", ("phone",), ("phone",), "all")  # fmt: skip
    assert rule.matches({"phone": "+86 138-0013-8000"}, {"phone": "0086 138 0013 8000"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fields": ()}, "needs at least one field"),
        ({"match": "some"}, "match must be 'all' or 'any'"),
        ({"fuzzy": 0}, "fuzzy must be a similarity above 0 and at most 1"),
        ({"fuzzy": 90}, "fuzzy must be a similarity above 0 and at most 1"),
    ],
)
def test_a_bad_rule_is_refused_with_a_reason(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "r", "fields": ("name",), **kwargs}
    with pytest.raises(ValueError, match=message):
        MatchRule(**arguments)  # type: ignore[arg-type]


def test_a_definition_with_a_bad_match_is_refused() -> None:
    @dataclass(frozen=True)
    class Definition:
        name: str = "r"
        fields: tuple[str, ...] = ("name",)
        normalize: tuple[str, ...] = ("case",)
        match: str = "every"

    with pytest.raises(ValueError, match="match must be 'all' or 'any', not 'every'"):
        MatchRule.from_definition(Definition())


def test_rules_are_frozen_and_compare_by_definition() -> None:
    assert name_rule == MatchRule("same_name", ("name",), tuple(NAME))
    with pytest.raises(AttributeError):
        name_rule.fuzzy = 0.5  # type: ignore[misc]


# --- similarity and fuzzy rules --------------------------------------------------------


def test_similarity() -> None:
    assert similarity("字节跳动科技", "字节跳动科技") == 1.0
    assert similarity("字节跳动", "字节跳动科技") == pytest.approx(0.8)
    assert similarity("acme", "") == 0.0
    assert similarity("", "") == 0.0
    assert similarity("ソニー", "トヨタ") == 0.0


def test_a_fuzzy_rule_catches_a_typo_an_exact_one_misses() -> None:
    fuzzy = MatchRule("similar_name", ("name",), tuple(NAME), fuzzy=0.9)
    a, b = {"name": "Acme International Trading Co., Ltd."}, {"name": "ACME Internatonal Trading"}
    assert not name_rule.matches(a, b)
    assert fuzzy.matches(a, b)
    assert fuzzy.score(a, b) == pytest.approx(0.98, abs=0.01)
    assert not fuzzy.matches(a, {"name": "Apex International Shipping"})
    assert fuzzy.score(a, {"name": ""}) == 0.0


def test_fuzzy_match_all_takes_the_weakest_field_and_any_the_strongest() -> None:
    a = {"name": "Acme Trading", "city": "Shanghai"}
    b = {"name": "Acme Tradng", "city": "Beijing"}
    both = MatchRule("r", ("name", "city"), ("case",), match="all", fuzzy=0.9)
    either = MatchRule("r", ("name", "city"), ("case",), match="any", fuzzy=0.9)
    assert both.score(a, b) == pytest.approx(similarity("shanghai", "beijing"))
    assert not both.matches(a, b)
    assert either.score(a, b) == pytest.approx(similarity("acme trading", "acme tradng"))
    assert either.matches(a, b)


# --- find_duplicates -------------------------------------------------------------------

ACCOUNTS = [
    (1, {"name": "北京字节跳动科技有限公司", "phone": "010-8888-6666"}),
    (2, {"name": "ソニー株式会社", "phone": "+81 3 1234 5678"}),
    (3, {"name": "Acme Corporation", "phone": "+86 138-0013-8000"}),
    (4, {"name": "北京银行", "phone": ""}),
    (5, {"name": "上海银行", "phone": None}),
]


@pytest.mark.parametrize(
    ("rule", "record", "found"),
    [
        (name_rule, {"name": "字节跳动科技"}, [1]),
        (name_rule, {"name": "ｿﾆｰ(株)"}, [2]),
        (name_rule, {"name": "ACME  corporation"}, [3]),
        (name_rule, {"name": "上海银行股份有限公司"}, [5]),
        (name_rule, {"name": "有限公司"}, []),
        (phone_rule, {"phone": "0086 138 0013 8000"}, [3]),
        (phone_rule, {"phone": "03-1234-5678"}, [2]),
        (phone_rule, {"phone": ""}, []),
    ],
)
def test_find_duplicates(rule: MatchRule, record: dict[str, str], found: list[int]) -> None:
    assert [d.id for d in find_duplicates(rule, record, ACCOUNTS)] == found


def test_find_duplicates_skips_the_record_itself_and_ranks_by_score() -> None:
    rule = MatchRule("similar_name", ("name",), tuple(NAME), fuzzy=0.75)
    rows = [(1, {"name": "字节跳动"}), (2, {"name": "字节跳动科技"}), (3, {"name": "腾讯科技"})]
    assert find_duplicates(rule, {"name": "北京字节跳动科技有限公司"}, rows, exclude=2) == [
        Duplicate(1, pytest.approx(0.8))
    ]
    assert [d.id for d in find_duplicates(rule, {"name": "字节跳动科技"}, rows)] == [2, 1]


def test_keys_find_duplicates_inside_an_import_file() -> None:
    rows = ["Acme Corp.", "北京字节跳动科技有限公司", "ACME  corporation", "字节跳动科技", "Apex"]
    first: dict[str, int] = {}
    repeats = []
    for number, name in enumerate(rows, start=2):  # row 1 holds the headers
        for key in name_rule.keys({"name": name}):
            if key in first:
                repeats.append((number, first[key]))
            else:
                first[key] = number
    assert repeats == [(4, 2), (5, 3)]
