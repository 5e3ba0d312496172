"""The sandbox's small GraphQL implementation, against a toy schema."""

from __future__ import annotations

import pytest

from botctl.sandbox import graphql as g


def _schema() -> g.Schema:
    books = [{"__typename": "Book", "id": str(i), "title": f"Book {i}", "tags": ["a", "b"]} for i in range(3)]

    def r_books(parent, args, ctx):
        return books[: args.get("first", 3)]

    def r_boom(parent, args, ctx):
        raise g.FieldError("nope", {"code": "BOOM"})

    types = {
        "Query": g.ObjectType("Query", {
            "books": g.FieldDef("[Book!]!", {"first": g.Arg("Int", 3), "order": g.Arg("Order")}, r_books),
            "book": g.FieldDef("Book", {"id": g.Arg("ID!")}, lambda p, a, c: next((b for b in books if b["id"] == a["id"]), None)),
            "boom": g.FieldDef("String", resolve=r_boom),
            "echo": g.FieldDef("String", {"text": g.Arg("String")}, lambda p, a, c: a.get("text")),
        }),
        "Book": g.ObjectType("Book", {"id": g.FieldDef("ID!"), "title": g.FieldDef("String!"),
                                      "tags": g.FieldDef("[String!]!")}, ("Node",)),
    }  # fmt: skip
    return g.Schema(
        "Query", types, {"Order": frozenset({"ASC", "DESC"})}, {"Node": {"id": g.FieldDef("ID!")}}
    )


SCHEMA = _schema()


def run(query: str, variables=None, operation_name=None):
    req = g.prepare(SCHEMA, query, variables, operation_name)
    return g.execute(SCHEMA, req, None, None)


def test_aliases_fragments_directives_and_variables():
    data, errors = run(
        """
        # a comment
        query Q($n: Int = 2, $skipTags: Boolean!) {
          first: books(first: $n, order: ASC) { ...B tags @skip(if: $skipTags) }
          one: book(id: "1") { ... on Book { title } __typename }
          echo(text: \"\"\"
              block
              string\"\"\")
        }
        fragment B on Book { id }
        """,
        {"skipTags": True},
    )
    assert errors == []
    assert data == {
        "first": [{"id": "0"}, {"id": "1"}],
        "one": {"title": "Book 1", "__typename": "Book"},
        "echo": "block\nstring",
    }


def test_resolver_errors_null_the_field_with_a_path():
    data, errors = run("{ boom books(first: 1) { id } }")
    assert data == {"boom": None, "books": [{"id": "0"}]}
    assert errors[0].to_dict() == {"message": "nope", "locations": [{"line": 1, "column": 3}], "path": ["boom"],
                                   "extensions": {"code": "BOOM"}}  # fmt: skip


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ books { nope } }", "Field 'nope' doesn't exist on type 'Book'"),
        ("{ books(bad: 1) { id } }", "Field 'books' doesn't accept argument 'bad'"),
        ("{ book { id } }", "Field 'book' is missing required arguments: id"),
        ("{ books }", "Field must have selections (field 'books' returns Book but has no selections."),
        (
            "{ books { id { x } } }",
            "Selections can't be made on scalars (field 'id' returns ID but has selections [x])",
        ),
        ("{ books { ...Missing } }", "Fragment Missing was used, but not defined"),
        (
            "{ books(order: SIDEWAYS) { id } }",
            "Argument 'order' on Field 'books' has an invalid value (SIDEWAYS).",
        ),
        ("{ books(first: $n) { id } }", "Variable $n is used by anonymous query but not declared"),
        ("mutation { x }", "Schema is not configured for mutations"),
        ("{ books { ...A } } fragment A on Book { id ...A }", "Fragment A contains an infinite loop"),
    ],
)
def test_validation_errors(query, message):
    with pytest.raises(g.ValidationErrors) as info:
        run(query)
    assert info.value.errors[0].message.startswith(message)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ books { id }", "Unexpected end of document"),
        ("{ books { id } } }", 'Parse error on "}" (RCURLY) at [1, 18]'),
        ("{\n  books(first: ) { id } }", 'Parse error on ")" (RPAREN) at [2, 16]'),
        ("", "Unexpected end of document"),
    ],
)
def test_parse_errors(query, message):
    with pytest.raises(g.GraphQLError) as info:
        g.parse(query)
    assert info.value.message == message


def test_variable_coercion_and_operation_choice():
    with pytest.raises(g.ValidationErrors) as info:
        run("query ($n: Int!) { books(first: $n) { id } }", {"n": "two"})
    assert info.value.errors[0].message == "Variable $n of type Int! was provided invalid value"
    with pytest.raises(g.ValidationErrors):
        run("query A { books { id } } query B { books { id } }")
    data, _ = run("query A { books(first: 1) { id } } query B { book(id: 2) { title } }", operation_name="B")
    assert data == {"book": {"title": "Book 2"}}
