"""The demo database's rows, generated deterministically from ``random.Random(42)``.

Every value (timestamps included) comes from the seed and fixed reference tables below, never from
the clock, so two loads anywhere give byte-identical data. Tables come out in foreign-key order with
explicit ids, ready for COPY. The shapes follow real service-area operations: weekend and Spring
Festival (春运) peaks, trucks dropping over the holiday, one area closed mid-period, one still
uploading its first data, a few soft-deleted rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

SEED = 42
FIRST_DAY = date(2024, 1, 1)
DAYS = 90
SPRING_FESTIVAL = date(2024, 2, 10)
VEHICLE_CLASSES = ("客车", "货车", "危化品", "城际")

# code, full name, short name, region, phone
COMPANIES = [
    ("JXJT", "江西省交通投资集团有限责任公司", "江西交投", "赣北片区", "0791-86246000"),
    ("GYGS", "江西赣粤高速公路股份有限公司", "赣粤高速", "赣中片区", "0791-86527021"),
    ("JHFW", "江西嘉和服务区经营管理有限公司", "嘉和服务区", "赣南片区", "0797-8163350"),
]

# code, name, highway number, start, end, length (km), opened
SECTIONS = [
    ("S001", "昌九高速", "G70", "南昌", "九江", "138.00", 1996),
    ("S002", "沪昆高速梨温段", "G60", "梨园", "温家圳", "245.60", 1998),
    ("S003", "昌樟高速", "G60", "南昌", "樟树", "80.30", 1997),
    ("S004", "沪昆高速樟宜段", "G60", "樟树", "宜春", "117.40", 2000),
    ("S005", "大广高速泰赣段", "G45", "泰和", "赣州", "128.00", 2004),
    ("S006", "杭瑞高速九景段", "G56", "九江", "景德镇", "142.50", 2006),
    ("S007", "济广高速景鹰段", "G35", "景德镇", "鹰潭", "124.70", 2006),
    ("S008", "南昌绕城高速", "G6001", "生米", "昌东", "62.80", 2011),
]

# name, city, longitude, latitude, company index, section codes (first one is the main section)
AREAS = [
    ("南昌服务区", "南昌市", "115.892151", "28.676493", 0, ["S001", "S008"]),
    ("庐山服务区", "九江市", "115.984260", "29.428420", 0, ["S001"]),
    ("永修服务区", "九江市", "115.809055", "29.021824", 0, ["S001"]),
    ("德安服务区", "九江市", "115.756880", "29.313340", 0, ["S001"]),
    ("九江服务区", "九江市", "116.001930", "29.705077", 0, ["S001", "S006"]),
    ("鄱阳湖服务区", "上饶市", "116.694390", "29.005620", 0, ["S006"]),
    ("景德镇服务区", "景德镇市", "117.178420", "29.268835", 0, ["S006", "S007"]),
    ("鹰潭服务区", "鹰潭市", "117.069202", "28.260189", 1, ["S007", "S002"]),
    ("上饶服务区", "上饶市", "117.943433", "28.454863", 1, ["S002"]),
    ("抚州服务区", "抚州市", "116.358181", "27.949217", 1, ["S002"]),
    ("进贤服务区", "南昌市", "116.241240", "28.376730", 1, ["S002"]),
    ("樟树服务区", "宜春市", "115.546152", "28.055853", 1, ["S003", "S004"]),
    ("丰城服务区", "宜春市", "115.771093", "28.159141", 1, ["S003"]),
    ("新余服务区", "新余市", "114.917346", "27.817808", 1, ["S004"]),
    ("宜春服务区", "宜春市", "114.416785", "27.815743", 2, ["S004"]),
    ("吉安服务区", "吉安市", "114.992912", "27.113039", 2, ["S005"]),
    ("泰和服务区", "吉安市", "114.908870", "26.790164", 2, ["S005"]),
    ("井冈山服务区", "吉安市", "114.289182", "26.748047", 2, ["S005"]),
    ("赣州服务区", "赣州市", "114.935029", "25.831829", 2, ["S005"]),
    ("南康服务区", "赣州市", "114.765238", "25.661721", 2, ["S005"]),
]
CLOSED_AREA = "德安服务区"  # closed for renovation on CLOSED_FROM
CLOSED_FROM = FIRST_DAY + timedelta(days=61)
UPLOADING_AREA = "南康服务区"  # newly connected: status 上传数据, patchy uploads

MERCHANT_BRANDS = {
    "餐饮": ["中式快餐", "赣味米粉", "瓦罐煨汤", "老乡鸡", "肯德基"],
    "便利店": ["易捷便利店", "服务区超市"],
    "加油站": ["中石化加油站", "中石油加油站"],
    "充电站": ["国网充电站", "特来电充电站"],
    "汽修": ["汽车维修站"],
    "特产": ["江西特产", "南丰蜜桔专卖", "景德镇瓷器"],
}
STAFF = ["admin", "system", "张伟", "李娜", "王芳", "刘洋"]


@dataclass(frozen=True)
class TableRows:
    """One table's rows in column order, to be copied in as they are."""

    schema: str
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _at(day: date, rng: random.Random, hour_from: int, hour_to: int) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(
        hours=rng.randint(hour_from, hour_to), minutes=rng.randint(0, 59), seconds=rng.randint(0, 59)
    )


def _holiday_factor(day: date) -> float:
    """Passenger traffic multiplier: 春运 ramps up to the festival and stays high for the return trip."""
    offset = (day - SPRING_FESTIVAL).days
    if -3 <= offset <= 7:
        return 1.9
    if -17 <= offset <= 24:
        return 1.35
    return 1.15 if day.weekday() >= 5 else 1.0


def _companies(rng: random.Random) -> TableRows:
    rows = []
    for i, (code, name, short, region, phone) in enumerate(COMPANIES, start=1):
        created = _at(date(2018, 3, 1) + timedelta(days=rng.randint(0, 300)), rng, 9, 17)
        rows.append((i, code, name, short, region, phone, created, None, "admin", None))
    columns = ("id", "company_code", "company_name", "short_name", "region", "contact_phone",
               "created_at", "updated_at", "created_by", "delete_ts")
    return TableRows("public", "company", columns, rows)


def _sections() -> TableRows:
    rows = [
        (i, code, name, highway, start, end, Decimal(length), opened)
        for i, (code, name, highway, start, end, length, opened) in enumerate(SECTIONS, start=1)
    ]
    columns = ("id", "section_code", "section_name", "highway_no", "start_point", "end_point", "length_km",
               "opened_year")
    return TableRows("public", "road_section", columns, rows)


def _areas(rng: random.Random) -> TableRows:
    rows = []
    for i, (name, city, lon, lat, company, _sections) in enumerate(AREAS, start=1):
        if name == CLOSED_AREA:
            state = "关闭"
        elif name == UPLOADING_AREA:
            state = "上传数据"
        else:
            state = "开放"
        area_type = rng.choices(["信息化服务区", "智能化服务区", "普通服务区"], weights=[5, 3, 2])[0]
        opened_on = date(rng.randint(1997, 2016), rng.randint(1, 12), rng.randint(1, 28))
        created = _at(date(2019, 1, 1) + timedelta(days=rng.randint(0, 700)), rng, 9, 18)
        updated = _at(CLOSED_FROM, rng, 9, 12) if state == "关闭" else None
        rows.append((
            i, f"SA{i:04d}", name, company + 1, area_type, state, "江西省", city, Decimal(lon), Decimal(lat),
            rng.randrange(120, 620, 10), opened_on, created, updated, rng.choice(STAFF[:2]), None,
        ))
    columns = ("id", "service_area_code", "service_area_name", "company_id", "service_area_type", "service_state",
               "province", "city", "longitude", "latitude", "parking_spaces", "opened_on", "created_at",
               "updated_at", "created_by", "delete_ts")
    return TableRows("public", "service_area", columns, rows)


def _area_sections(rng: random.Random) -> TableRows:
    section_ids = {code: i for i, (code, *_rest) in enumerate(SECTIONS, start=1)}
    rows = []
    for area_id, (*_head, codes) in enumerate(AREAS, start=1):
        for code in codes:
            stake = f"K{rng.randint(3, 240)}+{rng.randrange(0, 1000, 50):03d}"
            direction = rng.choices(["双向", "上行", "下行"], weights=[6, 1, 1])[0]
            rows.append((area_id, section_ids[code], direction, stake))
    return TableRows("public", "service_area_section", ("service_area_id", "section_id", "direction", "stake_no"), rows)


def _merchants(rng: random.Random) -> TableRows:
    rows = []
    merchant_id = 0
    for area_id, (area_name, *_rest) in enumerate(AREAS, start=1):
        categories = ["餐饮", "便利店", "加油站"] + rng.sample(["餐饮", "充电站", "汽修", "特产"], rng.randint(1, 4))
        for n, category in enumerate(categories, start=1):
            merchant_id += 1
            start = date(2021, 1, 1) + timedelta(days=rng.randint(0, 900))
            end = start + timedelta(days=365 * rng.choice([1, 2, 3, 5]))
            created = _at(start - timedelta(days=rng.randint(3, 30)), rng, 9, 18)
            deleted = _at(end, rng, 9, 18) if end < FIRST_DAY and rng.random() < 0.6 else None
            rows.append((
                merchant_id, f"SA{area_id:04d}-M{n:02d}", f"{area_name.removesuffix('服务区')}{rng.choice(MERCHANT_BRANDS[category])}",
                area_id, category, _money(rng.randrange(800_000, 6_000_000, 50_000)), start, end, created,
                deleted, rng.choice(STAFF), deleted,
            ))
    columns = ("id", "merchant_code", "merchant_name", "service_area_id", "category", "monthly_rent",
               "contract_start", "contract_end", "created_at", "updated_at", "created_by", "delete_ts")
    return TableRows("public", "merchant", columns, rows)


def _open_days(area_name: str) -> list[date]:
    days = [FIRST_DAY + timedelta(days=n) for n in range(DAYS)]
    return [d for d in days if not (area_name == CLOSED_AREA and d >= CLOSED_FROM)]


def _business_days(rng: random.Random) -> TableRows:
    # Payment methods: 微信 (wx), 支付宝 (zfb), 现金 (rmb), 行吧 (xs): share of revenue, average ticket in cents.
    methods = [(0.46, 3_800), (0.30, 4_200), (0.09, 5_500), (0.15, 3_500)]
    rows = []
    row_id = 0
    for area_id, (area_name, *_rest) in enumerate(AREAS, start=1):
        base = rng.randint(2_500_000, 15_000_000)  # cents per ordinary day
        for day in _open_days(area_name):
            if area_name == UPLOADING_AREA and rng.random() < 0.2:
                continue  # a day that never arrived
            total = int(base * _holiday_factor(day) * rng.uniform(0.85, 1.15))
            values: list[Any] = []
            for share, ticket in methods:
                amount = int(total * share * rng.uniform(0.8, 1.2))
                values += [_money(amount), max(1, round(amount / (ticket * rng.uniform(0.9, 1.1))))]
            pay_sum = sum(values[0::2], Decimal("0.00"))
            order_sum = sum(values[1::2])
            source = rng.choices(["系统同步", "接口上传", "手工录入"], weights=[85, 10, 5])[0]
            created = _at(day + timedelta(days=1), rng, 1, 3)
            deleted = _at(day + timedelta(days=2), rng, 9, 17) if rng.random() < 0.01 else None
            row_id += 1
            rows.append((row_id, day, area_id, area_name, *values, pay_sum, order_sum, source, created, deleted))
    columns = ("id", "oper_date", "service_area_id", "service_area_name", "wx", "wx_order", "zfb", "zfb_order",
               "rmb", "rmb_order", "xs", "xs_order", "pay_sum", "order_sum", "source_type", "created_at", "delete_ts")
    return TableRows("public", "business_day_data", columns, rows)


def _vehicle_counts(rng: random.Random) -> TableRows:
    rows = []
    for area_id, (area_name, *_rest) in enumerate(AREAS, start=1):
        bases = {"客车": rng.randint(1_500, 6_000), "货车": rng.randint(800, 3_000),
                 "危化品": rng.randint(10, 80), "城际": rng.randint(50, 400)}
        for day in _open_days(area_name):
            holiday = _holiday_factor(day)
            for vehicle_class in VEHICLE_CLASSES:
                # Passenger cars pour out over the festival while trucks and hazardous goods stay home.
                if vehicle_class in ("客车", "城际"):
                    factor = holiday
                else:
                    factor = 2.0 - holiday if holiday > 1.3 else 1.0
                rows.append((day, area_id, vehicle_class, int(bases[vehicle_class] * factor * rng.uniform(0.8, 1.2))))
    return TableRows("public", "vehicle_day_count", ("oper_date", "service_area_id", "vehicle_class", "vehicle_count"), rows)


def _upload_log(rng: random.Random) -> TableRows:
    errors = ["连接超时", "数据格式错误：缺少支付方式字段", "重复上传", "接口返回500"]
    rows = []
    row_id = 0
    for area_id, (area_name, *_rest) in enumerate(AREAS, start=1):
        failure_rate = 0.25 if area_name == UPLOADING_AREA else 0.03
        for day in _open_days(area_name):
            roll = rng.random()
            status = "失败" if roll < failure_rate else "部分成功" if roll < failure_rate + 0.05 else "成功"
            count = 0 if status == "失败" else rng.randint(200, 2_000) // (2 if status == "部分成功" else 1)
            error = rng.choice(errors) if status != "成功" else None
            row_id += 1
            rows.append((row_id, area_id, day, status, count, error, _at(day + timedelta(days=1), rng, 0, 4)))
    columns = ("id", "service_area_id", "upload_date", "upload_status", "row_count", "error_message", "uploaded_at")
    return TableRows("ops", "data_upload_log", columns, rows)


def generate() -> list[TableRows]:
    """All tables' rows in load (foreign-key) order; the same on every call."""
    rng = random.Random(SEED)
    return [
        _companies(rng),
        _sections(),
        _areas(rng),
        _area_sections(rng),
        _merchants(rng),
        _business_days(rng),
        _vehicle_counts(rng),
        _upload_log(rng),
    ]
