"""The built-in glossary behind the heuristic (offline) provider: identifier words to phrases.

``describe_identifier`` splits a database name (snake_case, camelCase, digits), maps its words and
multi-word phrases through the table below, and composes a short Chinese or English phrase
("customer_id" -> "客户编号" / "Customer ID"). Words it does not know are kept as they are, so the
result is never invented, only translated. Everything here is deterministic: the same name always
gives the same phrase.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

Language = Literal["zh", "en"]

# One entry a line: ``key  中文  [english phrase]``. A key with underscores is a multi-word phrase
# matched before its single words; the English phrase defaults to the key's words. Pinyin-initial
# abbreviations common in Chinese schemas are listed only where they cannot be read as English.
_TABLE = """
# --- identifiers, codes, numbers --------------------------------------------------------
id              编号        ID
uuid            UUID        UUID
guid            GUID        GUID
key             键
pk              主键        primary key
fk              外键        foreign key
no              编号        number
nbr             编号        number
num             号码        number
number          号码
seq             序号        sequence
sequence        序列
serial          序列号
code            编码
abbr            缩写        abbreviation
abbreviation    缩写
ref             引用        reference
reference       引用
idx             索引        index
index           索引
sort            排序
rank            排名
level           级别
grade           等级
tier            层级
version         版本
ver             版本        version
rev             修订        revision
revision        修订
hash            哈希值
token           令牌
uid             用户编号    user ID
# --- quantities and money ----------------------------------------------------------------
qty             数量        quantity
quantity        数量
cnt             数量        count
count           数量
amt             金额        amount
amount          金额
sum             合计        sum
total           总计
total_amount    总金额      total amount
total_price     总价        total price
total_sales     销售总额    total sales
total_cost      总成本      total cost
subtotal        小计
avg             平均        average
average         平均
min             最小        minimum
max             最大        maximum
pct             百分比      percent
percent         百分比
percentage      百分比
ratio           比率
rate            费率
price           价格
unit_price      单价        unit price
cost            成本
fee             费用
charge          费用
tax             税额
discount        折扣
revenue         营业收入
income          收入
sales           销售额
sale            销售
profit          利润
margin          毛利
balance         余额
budget          预算
salary          薪资
wage            工资
commission      佣金
bonus           奖金
rent            租金
freight         运费
deposit         押金
payment         支付
pay             支付        payment
paid            已支付
refund          退款
currency        币种
money           金额
cash            现金
credit          信用
debit           借记
points          积分
score           分数
weight          重量
height          高度
width           宽度
length          长度
size            大小
volume          容量
capacity        容量
area            区域
distance        距离
duration        时长
km              公里        km
kg              千克        kg
bytes           字节数
milliseconds    毫秒数
seconds         秒数
minutes         分钟数
hours           小时数
days            天数
stock           库存
units           单位数量
unit            单位
unit_cost       单位成本    unit cost
units_in_stock  库存数量    units in stock
units_on_order  订购中数量  units on order
quantity_per_unit 每单位数量 quantity per unit
reorder_level   再订购水平  reorder level
# --- dates and times --------------------------------------------------------------------
date            日期
dt              日期        date
time            时间
datetime        日期时间
timestamp       时间戳
ts              时间        time
at              时间        time
ym              年月        year-month
ymd             年月日      date
year            年份
yr              年份        year
month           月份
mon             月份        month
week            周
day             日
hour            小时
minute          分钟
quarter         季度
period          期间
start           开始
end             结束
begin           开始
finish          完成
from            起始
to              截止
expire          过期
expiry          过期
expires         过期
due             到期
birth           出生
birthday        生日
birth_date      出生日期
hire            入职
hire_date       入职日期
age             年龄
created         创建
create          创建
creation        创建
updated         更新
update          更新
modified        修改
modify          修改
deleted         删除
delete          删除
removed         删除
inserted        插入
changed         变更
last_update     最后更新时间 last update time
last_updated    最后更新时间 last updated time
last_modified   最后修改时间 last modified time
last_login      最后登录时间 last login time
created_at      创建时间    creation time
updated_at      更新时间    update time
deleted_at      删除时间    deletion time
modified_at     修改时间    modification time
created_by      创建人      created by
updated_by      更新人      updated by
modified_by     修改人      modified by
deleted_by      删除人      deleted by
release_year    发行年份    release year
opened          开通
open            开放
closed          关闭
close           关闭
required        要求
shipped         发货
ordered         下单
returned        归还
return          归还
rental_date     租借日期    rental date
oper            营业        operation
operation       操作
operate         操作
# --- people and organisations -----------------------------------------------------------
user            用户
usr             用户        user
username        用户名
login           登录
password        密码
pwd             密码        password
passwd          密码        password
person          人员
people          人员
member          会员
customer        客户
cust            客户        customer
client          客户
employee        员工
emp             员工        employee
staff           员工
manager         经理
mgr             经理        manager
supervisor      主管
owner           所有者
operator        操作员
admin           管理员
agent           代理人
rep             代表        representative
support         支持
support_rep     客服代表    support representative
reports_to      上级        reports to
contact         联系
contact_name    联系人      contact name
contact_title   联系人职务  contact title
title_of_courtesy 尊称     title of courtesy
vendor          供应商
supplier        供应商
shipper         承运商
carrier         承运商
company         公司
corp            公司        corporation
org             组织        organization
organization    组织
dept            部门        department
department      部门
division        事业部
branch          分支机构
team            团队
group           组
role            角色
author          作者
composer        作曲者
artist          艺术家
actor           演员
director        导演
student         学生
teacher         教师
patient         患者
doctor          医生
driver          司机
merchant        商户
tenant          租户
partner         合作伙伴
account         账户
acct            账户        account
# --- names, text, contact details -------------------------------------------------------
name            名称
nm              名称        name
first_name      名          first name
last_name       姓          last name
middle_name     中间名      middle name
full_name       全名        full name
fullname        全名        full name
nickname        昵称
short_name      简称        short name
alias           别名
title           标题
label           标签
tag             标签
tags            标签
desc            描述        description
descr           描述        description
description     描述
summary         摘要
comment         备注
comments        备注
remark          备注
remarks         备注
note            备注
notes           备注
memo            备注
text            文本
content         内容
message         消息
msg             消息        message
body            正文
subject         主题
keyword         关键词
keywords        关键词
fulltext        全文检索    full-text search
email           电子邮箱    email
mail            邮件
phone           电话
tel             电话        telephone
mobile          手机号
cell            手机
fax             传真
extension       分机号
homepage        主页
website         网站
url             链接        URL
uri             URI         URI
link            链接
address         地址
addr            地址        address
street          街道
district        区县
city            城市
state           状态
billing_state   账单所在州/省 billing state
ship_state      收货州/省   shipping state
state_province  州/省       state/province
us_state        美国州      US state
us_states       美国州      US states
state_name      州名        state name
state_abbr      州缩写      state abbreviation
state_region    州所属地区  state region
province        省份
prov            省份        province
county          县
region          地区
zone            区域
country         国家
nation          国家
zip             邮编        ZIP code
postal          邮政
postal_code     邮政编码    postal code
postcode        邮政编码    postcode
zipcode         邮政编码    ZIP code
location        位置
loc             位置        location
position        位置
latitude        纬度
lat             纬度        latitude
longitude       经度
lng             经度        longitude
lon             经度        longitude
gender          性别
sex             性别
language        语言
lang            语言        language
locale          区域设置
timezone        时区
image           图片
img             图片        image
picture         图片
pic             图片        picture
photo           照片
photo_path      照片路径    photo path
avatar          头像
logo            标志
icon            图标
file            文件
path            路径
attachment      附件
document        文档
doc             文档        document
# --- business objects -------------------------------------------------------------------
order           订单
ord             订单        order
order_date      下单日期    order date
item            明细项      item
line            行
invoice_line    发票明细    invoice line
order_line      订单明细    order line
row_count       行数        row count
detail          明细
details         明细
product         产品
prod            产品        product
goods           商品
sku             SKU         SKU
category        类别
cat             类别        category
catalog         目录
brand           品牌
model           型号
spec            规格        specification
inventory       库存
inv             库存        inventory
warehouse       仓库
store           门店
shop            店铺
invoice         发票
bill            账单
billing         账单
receipt         收据
transaction     交易
txn             交易        transaction
trade           交易
contract        合同
lease           租约
rental          租借
rent_out        出租        rent out
film            电影
movie           电影
track           曲目
album           专辑
genre           流派
playlist        播放列表
media           媒体
media_type      媒体类型    media type
song            歌曲
book            图书
special         特殊
feature         特性
features        特性
special_features 特殊功能   special features
rating          评级
replacement     重置
replacement_cost 重置成本   replacement cost
rental_rate     租金        rental rate
rental_duration 租期        rental duration
territory       销售区域    territory
shipment        货运
ship            发货
ship_via        承运方式    shipped via
shipping        运输
delivery        配送
demo            演示
demographics    人口统计
project         项目
task            任务
job             作业
event           事件
log             日志
record          记录
history         历史
audit           审计
report          报表
stat            统计        statistic
stats           统计        statistics
statistics      统计
metric          指标
config          配置        configuration
setting         设置
settings        设置
param           参数        parameter
parameter       参数
option          选项
policy          策略
rule            规则
plan            计划
schedule        计划
course          课程
class           类别
vehicle_class   车型        vehicle class
length_km       长度（公里） length (km)
exchange        兑换
exchange_rate   汇率        exchange rate
coupon          优惠券
promotion       促销
campaign        活动
gift            礼品
approval        审批
application     申请
apply           申请
service         服务
service_area    服务区      service area
section         路段
road            道路
road_section    路段        road section
route           路线
highway         高速公路
lane            车道
toll            通行费
station         站点
stake           桩
stake_no        桩号        stake number
direction       方向
point           点
start_point     起点        start point
end_point       终点        end point
vehicle         车辆
car             车辆
truck           货车
parking         停车
space           位
spaces          位
parking_spaces  停车位数量  parking spaces
fuel            燃油
charging        充电
upload          上传
uploaded        上传
download        下载
error           错误
error_message   错误信息    error message
err             错误        error
exception       异常
retry           重试
batch           批次
file_name       文件名      file name
source          来源
src             来源        source
target          目标
dest            目的地      destination
dst             目标        destination
origin          起源
channel         渠道
platform        平台
device          设备
ip              IP地址      IP address
host            主机
port            端口
session         会话
visit           访问
click           点击
view            视图
views           浏览量
page            页面
site            站点
# --- flags and states -------------------------------------------------------------------
status          状态
stat_code       状态码      status code
state_code      状态码      state code
flag            标志
is              是否        whether
has             是否有      whether has
enabled         启用
enable          启用
disabled        禁用
active          有效
activebool      有效        active
inactive        无效
valid           有效
visible         可见
hidden          隐藏
locked          锁定
verified        已验证
approved        已批准
discontinued    已停产
default         默认
primary         主
main            主要
public          公开
private         私有
type            类型
kind            种类
mode            模式
method          方式
way             方式
reason          原因
result          结果
success         成功
fail            失败
failed          失败
pending         待处理
# --- relations and structure ------------------------------------------------------------
parent          父级
child           子级
children        子级
sub             子          sub
super           上级
root            根
node            节点
tree            树
list            列表
info            信息
information     信息
data            数据
value           值
val             值          value
values          值
amount_due      应付金额    amount due
old             旧
new             新
prev            上一个      previous
previous        上一个
next            下一个
current         当前
cur             当前        current
original        原始
orig            原始        original
first           首个
last            最后
latest          最新
initial         初始
final           最终
other           其他
extra           额外
additional      附加
estimated       预计
actual          实际
planned         计划
expected        预期
monthly         月度
daily           每日
weekly          每周
yearly          年度
annual          年度
hourly          每小时
local           本地
global          全局
internal        内部
external        外部
home            家庭
work            工作
office          办公
business        营业
business_days   营业天数    business days
sections        路段
# --- pinyin initials common in Chinese schemas -----------------------------------------
mc              名称        name
bm              编码        code
dm              代码        code
lx              类型        type
zt              状态        status
rq              日期        date
je              金额        amount
sl              数量        quantity
dz              地址        address
bz              备注        remark
xh              序号        sequence number
sj              时间        time
fwq             服务区      service area
wx              微信        WeChat
zfb             支付宝      Alipay
rmb             现金        cash (RMB)
"""

_SUFFIXES = {"at": ("时间", "time"), "on": ("日期", "date"), "by": ("人", "by")}
# "sales_by_store", "price_per_unit": the grouping reads first in Chinese, last in English.
_CONNECTORS = {"by": ("按{group}统计的{what}", "{what} by {group}"), "per": ("每{group}{what}", "{what} per {group}")}
_MAX_PHRASE = 3
_PREFIXES = {"v", "vw", "t", "tb", "tbl"}  # "v_sales", "t_user": naming-convention prefixes, not words
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\W\d_a-zA-Z]+")
_ASCII_WORD = re.compile(r"[A-Za-z0-9 ()\-/]+")


def _load(table: str) -> dict[tuple[str, ...], tuple[str, str]]:
    entries: dict[tuple[str, ...], tuple[str, str]] = {}
    for raw in table.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, zh, *english = line.split()
        words = tuple(key.split("_"))
        entries[words] = (zh, " ".join(english) or " ".join(words))
    return entries


GLOSSARY: dict[tuple[str, ...], tuple[str, str]] = _load(_TABLE)


def split_identifier(name: str) -> list[str]:
    """Words of an identifier, lower-cased: ``lastUpdate2`` -> ``["last", "update", "2"]``."""
    return [w.lower() for w in _WORD.findall(name)]


def singular_noun(word: str) -> str:
    """The glossary's singular of a plural word (``orders`` -> ``order``), else the word itself."""
    return _singular(word) or word


def _singular(word: str) -> str | None:
    for suffix, replacement in (("ies", "y"), ("ses", "s"), ("xes", "x"), ("ches", "ch"), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            candidate = word[: -len(suffix)] + replacement
            if (candidate,) in GLOSSARY:
                return candidate
    return None


def _lookup_word(word: str) -> tuple[str, str] | None:
    found = GLOSSARY.get((word,))
    if found:
        return found
    singular = _singular(word)
    if singular:
        zh, en = GLOSSARY[(singular,)]
        return zh, (word if en == singular else en)
    return None


def _translate(words: list[str]) -> list[tuple[str, str]]:
    """(zh, en) per phrase, longest glossary phrase first; unknown words map to themselves."""
    parts: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        for size in range(min(_MAX_PHRASE, len(words) - i), 1, -1):
            found = GLOSSARY.get(tuple(words[i : i + size]))
            if found:
                parts.append(found)
                i += size
                break
        else:
            word = words[i]
            if i == len(words) - 1 and i > 0 and word in _SUFFIXES:
                parts.append(_SUFFIXES[word])
            else:
                parts.append(_lookup_word(word) or (word, word))
            i += 1
    return parts


def _join_zh(pieces: list[str]) -> str:
    out = ""
    for piece in pieces:
        if out and _ASCII_WORD.fullmatch(out[-1]) and _ASCII_WORD.fullmatch(piece[0]):
            out += " "
        out += piece
    return out


def _join_en(pieces: list[str]) -> str:
    text = " ".join(p for p in pieces if p)
    return text[:1].upper() + text[1:]


@functools.lru_cache(maxsize=65536)  # pure; column names repeat across tables (step 1 bench: 1,000 tables)
def describe_identifier(name: str, language: Language) -> str:
    """A short natural phrase for a column or table name, in Chinese (``zh``) or English (``en``)."""
    words = split_identifier(name)
    if len(words) > 1 and words[0] in _PREFIXES:
        words = words[1:]
    if not words:
        return name
    for connector, (zh_pattern, en_pattern) in _CONNECTORS.items():
        if connector in words[1:-1]:
            cut = words.index(connector, 1)
            what, group = _translate(words[:cut]), _translate(words[cut + 1 :])
            if language == "zh":
                return zh_pattern.format(what=_join_zh([zh for zh, _ in what]), group=_join_zh([zh for zh, _ in group]))
            phrase = en_pattern.format(what=" ".join(en for _, en in what), group=" ".join(en for _, en in group))
            return _join_en([phrase])
    parts = _translate(words)
    if language == "zh":
        return _join_zh([zh for zh, _ in parts])
    return _join_en([en for _, en in parts])
