"""Prompt texts of the openai provider, in the task's language (Chinese or English).

Each prompt asks for one JSON object of a fixed shape; the provider validates the shape and the
client re-asks once when it is wrong. The pair prompt states the SQL rules that keep step 3's
repair loop idle: PostgreSQL only, one SELECT, only the listed tables and columns, and identifiers
quoted exactly where they need it.
"""

from __future__ import annotations

PROMPTS = {
    "zh": {
        "system": "你是资深数据分析师和 PostgreSQL 专家。只输出一个 JSON 对象，不要解释，不要代码块。",
        "themes": """业务背景：{context}
数据库：{database}

下面是该数据库部分表的数据字典（Markdown）：

{dictionaries}

请根据业务背景和这些表，提出 {count} 个适合做数据分析问答的业务主题。每个主题给出：
- name：主题名称（简短的中文）
- description：主题描述（一两句话）
- related_tables：相关的表，只能使用上面数据字典中出现的表名，非 public 模式写成 schema.table
- entities：涉及的业务实体（中文）
- metrics：关键业务指标（中文）

输出格式：{{"themes":[{{"name":"...","description":"...","related_tables":["..."],"entities":["..."],"metrics":["..."]}}]}}""",
        "pairs": """业务背景：{context}
数据库：{database}
主题：{theme}
主题描述：{description}
相关表：{tables}
业务实体：{entities}
业务指标：{metrics}

可用表的数据字典（Markdown）：

{dictionaries}

请围绕该主题写 {count} 个「问题 + SQL」对：问题用中文、像业务人员会问的那样具体；SQL 必须回答该问题。
SQL 规则：
- PostgreSQL 方言，每个 SQL 只有一条 SELECT 语句（可用 WITH），不要分号，不要注释。
- 只使用上面数据字典中列出的表和列；多表查询时给每个表起别名，列都带别名前缀。
- 非 public 模式的表写成 schema.table；含大写字母、空格、特殊字符或是保留字的标识符要用双引号，大小写与数据字典一致。{quoting}
- 枚举列只使用数据字典中给出的枚举值，字符串用单引号。
- 问题类型要多样：计数、求和/平均等聚合、Top-N 排名、按月趋势（date_trunc）、沿外键的多表关联、按枚举值筛选。

输出格式：{{"pairs":[{{"question":"...","sql":"..."}}]}}""",
        "quoting": "\n- 以下标识符必须原样加双引号书写：{names}。",
        "summary": """业务背景：{context}
数据库：{database}

表概览：
{tables}

已识别的业务主题：
{themes}

请为一个判断「用户问题是否应查询该数据库」的路由提示词总结这个数据库：
- business_scope：数据库的业务范围（两三句话）
- entities：核心业务实体，每个给出 name（实体名称和表名）和 fields（主要字段）
- metrics：关键业务指标

输出格式：{{"business_scope":"...","entities":[{{"name":"...","fields":["..."]}}],"metrics":["..."]}}""",
        "implied_joins": "按列名推断的关联（数据库未声明外键）：",
        "none": "（无）",
        "sep": "、",
    },
    "en": {
        "system": "You are a senior data analyst and PostgreSQL expert. Reply with one JSON object only: no explanation, no code fences.",
        "themes": """Business context: {context}
Database: {database}

Data dictionaries (markdown) of some tables of this database:

{dictionaries}

From the business context and these tables, propose {count} business themes suitable for analytical questions. For each theme give:
- name: a short theme name
- description: one or two sentences
- related_tables: the related tables, using only table names from the dictionaries above (schema.table outside schema public)
- entities: the business entities involved
- metrics: the key business metrics

Format: {{"themes":[{{"name":"...","description":"...","related_tables":["..."],"entities":["..."],"metrics":["..."]}}]}}""",
        "pairs": """Business context: {context}
Database: {database}
Theme: {theme}
Theme description: {description}
Related tables: {tables}
Business entities: {entities}
Business metrics: {metrics}

Data dictionaries (markdown) of the tables you may use:

{dictionaries}

Write {count} question/SQL pairs about this theme: questions in English, concrete, as a business user would ask them; each SQL must answer its question.
SQL rules:
- PostgreSQL dialect; exactly one SELECT statement per SQL (WITH allowed), no semicolon, no comments.
- Use only tables and columns listed in the dictionaries above; alias every table in joins and prefix every column with its alias.
- Write tables outside schema public as schema.table; put identifiers with capitals, spaces, special characters or reserved words in double quotes, spelled exactly as in the dictionaries.{quoting}
- Filter enum columns only on the enum values the dictionaries list; strings in single quotes.
- Mix the kinds of question: counts, aggregates (sum/avg), top-N rankings, monthly trends (date_trunc), joins along foreign keys, filters on enum values.

Format: {{"pairs":[{{"question":"...","sql":"..."}}]}}""",
        "quoting": "\n- These identifiers must be written in double quotes exactly as shown: {names}.",
        "summary": """Business context: {context}
Database: {database}

Tables:
{tables}

Business themes found:
{themes}

Summarise this database for a router prompt that decides whether a user's question should be answered from it:
- business_scope: the database's business scope (two or three sentences)
- entities: the core business entities, each with name (entity and table name) and fields (main fields)
- metrics: the key business metrics

Format: {{"business_scope":"...","entities":[{{"name":"...","fields":["..."]}}],"metrics":["..."]}}""",
        "implied_joins": "Joins implied by column names (no foreign key declared):",
        "none": "(none)",
        "sep": ", ",
    },
}
