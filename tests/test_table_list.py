import pytest

from dp.table_list import TableListError, TableName, parse_table_list, render_table_list


def test_lines_commas_comments_and_defaults():
    text = """
# the core tables
public.film, actor   -- two on one line
   Store  # unquoted names fold to lower case
inventory -- trailing comment
"""
    assert parse_table_list(text) == [
        TableName("public", "film"),
        TableName("public", "actor"),
        TableName("public", "store"),
        TableName("public", "inventory"),
    ]


def test_quoted_names_keep_case_and_special_characters():
    tables = parse_table_list('"Sales"."Order Lines", "a,b"."x#y", "say ""hi"""')
    assert tables == [
        TableName("Sales", "Order Lines"),
        TableName("a,b", "x#y"),
        TableName("public", 'say "hi"'),
    ]


def test_non_ascii_names():
    assert parse_table_list("运营.服务区\n收入") == [TableName("运营", "服务区"), TableName("public", "收入")]


def test_duplicates_removed_after_normalising():
    assert parse_table_list("t\npublic.t\nPUBLIC.T\n\"public\".\"t\"\n\"T\"") == [
        TableName("public", "t"),
        TableName("public", "T"),
    ]


def test_every_bad_line_is_reported_with_its_number():
    with pytest.raises(TableListError) as err:
        parse_table_list("good\ndb.schema.table\nbad name\n\"open\n,x")
    problems = err.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4", "line 5"]
    assert "schema.table" in problems[0]
    assert "double quotes" in problems[1]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n-- another"])
def test_zero_tables_is_an_error(text):
    with pytest.raises(TableListError, match="names no table"):
        parse_table_list(text)


def test_file_bases_are_unique_and_safe():
    tables = [
        TableName("public", "film"),
        TableName("sales", "film"),
        TableName("a__b", "c"),
        TableName("a", "b__c"),
        TableName("public", "x/y"),
        TableName("public", "a__b__c"),
    ]
    tables += [TableName("public", "metadata"), TableName("public", "Metadata")]  # step 2 writes metadata_detail.md
    bases = [t.file_base for t in tables]
    assert bases[:2] == ["film", "sales__film"]
    assert bases[-2:] == ["public__metadata", "public__Metadata"]
    assert len(set(bases)) == len(bases)
    assert all("/" not in b for b in bases)


def test_render_round_trips():
    tables = parse_table_list('film\n"Sales"."Order Lines"\nother.x')
    assert parse_table_list(render_table_list(tables)) == tables


def test_quote_ident_matches_postgres(business_server_url):
    from dp.database import connection
    from dp.table_list import quote_ident

    names = ["film", "Film", "order", "select", "user", "name", "type", "服务区", "a b", 'q"x', "_x", "x$y", "1abc"]
    with connection(business_server_url) as conn:
        cur = conn.cursor()
        cur.execute("SELECT quote_ident(n) FROM unnest(%s::text[]) AS n", (names,))
        expected = [row[0] for row in cur.fetchall()]
    assert [quote_ident(n) for n in names] == expected
