import pytest

from dp.llm.glossary import GLOSSARY, describe_identifier, split_identifier


def test_glossary_is_large_and_covers_common_abbreviations():
    assert len(GLOSSARY) >= 400
    abbreviations = "id no num qty amt cnt desc addr tel dt ts ym org dept emp cust prod cat inv pay sub ref src dst img pic url usr pwd"
    for word in abbreviations.split():
        assert (word,) in GLOSSARY, word


@pytest.mark.parametrize(
    "name, parts",
    [
        ("customer_id", ["customer", "id"]),
        ("lastUpdate", ["last", "update"]),
        ("InvoiceLineId", ["invoice", "line", "id"]),
        ("HTTPServerName", ["http", "server", "name"]),
        ("address2", ["address", "2"]),
        ("payment_p2022_01", ["payment", "p", "2022", "01"]),
        ("客户_name", ["客户", "name"]),
    ],
)
def test_split_identifier(name, parts):
    assert split_identifier(name) == parts


@pytest.mark.parametrize(
    "name, zh, en",
    [
        ("customer_id", "客户编号", "Customer ID"),
        ("created_at", "创建时间", "Creation time"),
        ("last_update", "最后更新时间", "Last update time"),
        ("LastUpdate", "最后更新时间", "Last update time"),
        ("order_qty", "订单数量", "Order quantity"),
        ("emp_dept_no", "员工部门编号", "Employee department number"),
        ("is_active", "是否有效", "Whether active"),
        ("created_by", "创建人", "Created by"),
        ("opened_on", "开通日期", "Opened date"),
        ("unit_price", "单价", "Unit price"),
        ("orders", "订单", "Orders"),
        ("categories", "类别", "Categories"),
        ("bss_service_area", "bss服务区", "Bss service area"),
        ("fwq_mc", "服务区名称", "Service area name"),
        ("sales_by_film_category", "按电影类别统计的销售额", "Sales by film category"),
        ("price_per_unit", "每单位价格", "Price per unit"),
        ("v_area_monthly_revenue", "区域月度营业收入", "Area monthly revenue"),
        ("address2", "地址2", "Address 2"),
        ("xyzzy_code", "xyzzy编码", "Xyzzy code"),
        ("foo_bar", "foo bar", "Foo bar"),
    ],
)
def test_describe_identifier(name, zh, en):
    assert describe_identifier(name, "zh") == zh
    assert describe_identifier(name, "en") == en


def test_unknown_words_are_kept_not_invented():
    assert describe_identifier("qwerty", "zh") == "qwerty"
    assert describe_identifier("", "en") == ""
