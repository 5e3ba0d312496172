"""A small GraphQL implementation: enough of the language to serve real client queries against a
hand-written schema (the sandbox's Shopify Admin subset).

graphql-core is not a dependency of botctl, so this parses the executable part of the GraphQL
spec (October 2021 edition): operations with variables and defaults, aliases, arguments of every
literal kind, named and inline fragments, `@include`/`@skip`, `__typename`. It validates
fields, arguments and selections against the schema before executing, and reports errors the way
graphql-ruby (Shopify's server) words them. Not supported: introspection (`__schema`, `__type`),
subscriptions, custom directives, input-object coercion beyond plain JSON values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# --- errors --------------------------------------------------------------------------------------


class GraphQLError(Exception):
    def __init__(
        self,
        message: str,
        *,
        loc: tuple[int, int] | None = None,
        path: list[Any] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.path = path
        self.extensions = extensions

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.loc:
            out["locations"] = [{"line": self.loc[0], "column": self.loc[1]}]
        if self.path is not None:
            out["path"] = self.path
        if self.extensions:
            out["extensions"] = self.extensions
        return out


class FieldError(Exception):
    """Raised by a resolver: the field becomes null and the error is reported with its path."""

    def __init__(self, message: str, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


# --- lexer ---------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[!$&():=@\[\]{}|])
  | (?P<block>\"\"\"(?:\\\"\"\"|[^"]|"(?!""))*\"\"\")
  | (?P<string>"(?:\\.|[^"\\\n\r])*")
  | (?P<float>-?(?:0|[1-9]\d*)(?:\.\d+(?:[eE][+-]?\d+)?|[eE][+-]?\d+))
  | (?P<int>-?(?:0|[1-9]\d*))
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # punct, name, int, float, string, eof
    value: str
    line: int
    col: int


def _tokens(source: str) -> list[Token]:
    out: list[Token] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(source):
        m = _TOKEN_RE.match(source, pos)
        if not m:
            raise GraphQLError(
                f'Parse error on "{source[pos]}" (error) at [{line}, {pos - line_start + 1}]',
                loc=(line, pos - line_start + 1),
            )
        kind = m.lastgroup or ""
        text = m.group()
        col = pos - line_start + 1
        if kind == "block":
            out.append(Token("string", _block_string(text[3:-3]), line, col))
        elif kind == "string":
            out.append(Token("string", json.loads(text), line, col))
        elif kind == "spread":
            out.append(Token("punct", "...", line, col))
        elif kind != "ws":
            out.append(Token(kind, text, line, col))
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = pos + text.rfind("\n") + 1
        pos = m.end()
    out.append(Token("eof", "", line, pos - line_start + 1))
    return out


def _block_string(raw: str) -> str:
    lines = raw.replace('\\"""', '"""').splitlines()
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines[1:] if ln.strip()), default=0)
    lines = [lines[0], *(ln[indent:] for ln in lines[1:])] if lines else []
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


# --- AST -----------------------------------------------------------------------------------------


@dataclass
class Var:
    name: str


@dataclass
class EnumV:
    name: str


@dataclass
class Directive:
    name: str
    args: dict[str, Any]
    loc: tuple[int, int]


@dataclass
class Field:
    name: str
    alias: str | None
    args: dict[str, Any]
    directives: list[Directive]
    selections: list[Any] | None
    loc: tuple[int, int]

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class Spread:
    name: str
    directives: list[Directive]
    loc: tuple[int, int]


@dataclass
class InlineFragment:
    type_condition: str | None
    directives: list[Directive]
    selections: list[Any]
    loc: tuple[int, int]


@dataclass
class TypeRef:
    name: str | None
    of: TypeRef | None = None
    non_null: bool = False

    def __str__(self) -> str:
        inner = f"[{self.of}]" if self.of else str(self.name)
        return inner + ("!" if self.non_null else "")


@dataclass
class VarDef:
    name: str
    type: TypeRef
    default: Any
    has_default: bool
    loc: tuple[int, int]


@dataclass
class Operation:
    kind: str
    name: str | None
    variables: list[VarDef]
    directives: list[Directive]
    selections: list[Any]
    loc: tuple[int, int]


@dataclass
class Fragment:
    name: str
    type_condition: str
    directives: list[Directive]
    selections: list[Any]
    loc: tuple[int, int]


@dataclass
class Document:
    operations: list[Operation]
    fragments: dict[str, Fragment]


class _Parser:
    def __init__(self, source: str) -> None:
        self.toks = _tokens(source)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def fail(self, tok: Token | None = None) -> GraphQLError:
        t = tok or self.tok
        if t.kind == "eof":
            return GraphQLError("Unexpected end of document", loc=(t.line, t.col))
        kinds = {
            "punct": _PUNCT_NAMES.get(t.value, t.value),
            "name": "IDENTIFIER",
            "int": "INT",
            "float": "FLOAT",
            "string": "STRING",
        }
        shown = t.value if t.kind != "string" else json.dumps(t.value)[1:-1]
        return GraphQLError(
            f'Parse error on "{shown}" ({kinds[t.kind]}) at [{t.line}, {t.col}]', loc=(t.line, t.col)
        )

    def peek(self, value: str, kind: str = "punct") -> bool:
        return self.tok.kind == kind and self.tok.value == value

    def take(self, value: str | None = None, kind: str = "punct") -> Token:
        t = self.tok
        if t.kind != kind or (value is not None and t.value != value):
            raise self.fail()
        self.i += 1
        return t

    def name(self) -> str:
        return self.take(kind="name").value

    def document(self) -> Document:
        ops: list[Operation] = []
        frags: dict[str, Fragment] = {}
        if self.tok.kind == "eof":
            raise GraphQLError("Unexpected end of document", loc=(self.tok.line, self.tok.col))
        while self.tok.kind != "eof":
            t = self.tok
            if self.peek("{"):
                ops.append(Operation("query", None, [], [], self.selection_set(), (t.line, t.col)))
            elif t.kind == "name" and t.value in ("query", "mutation", "subscription"):
                ops.append(self.operation())
            elif t.kind == "name" and t.value == "fragment":
                frag = self.fragment()
                frags[frag.name] = frag
            else:
                raise self.fail()
        return Document(ops, frags)

    def operation(self) -> Operation:
        t = self.take(kind="name")
        name = self.name() if self.tok.kind == "name" else None
        variables: list[VarDef] = []
        if self.peek("("):
            self.take("(")
            while not self.peek(")"):
                vt = self.take("$")
                vname = self.name()
                self.take(":")
                vtype = self.type_ref()
                default, has_default = None, False
                if self.peek("="):
                    self.take("=")
                    default, has_default = self.value(const=True), True
                self.directives()
                variables.append(VarDef(vname, vtype, default, has_default, (vt.line, vt.col)))
            self.take(")")
        return Operation(t.value, name, variables, self.directives(), self.selection_set(), (t.line, t.col))

    def fragment(self) -> Fragment:
        t = self.take("fragment", "name")
        name = self.name()
        if name == "on":
            raise self.fail(self.toks[self.i - 1])
        self.take("on", "name")
        cond = self.name()
        return Fragment(name, cond, self.directives(), self.selection_set(), (t.line, t.col))

    def type_ref(self) -> TypeRef:
        if self.peek("["):
            self.take("[")
            inner = self.type_ref()
            self.take("]")
            ref = TypeRef(None, inner)
        else:
            ref = TypeRef(self.name())
        if self.peek("!"):
            self.take("!")
            ref.non_null = True
        return ref

    def directives(self) -> list[Directive]:
        out = []
        while self.peek("@"):
            t = self.take("@")
            out.append(Directive(self.name(), self.arguments(), (t.line, t.col)))
        return out

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.peek("("):
            self.take("(")
            while not self.peek(")"):
                name = self.name()
                self.take(":")
                args[name] = self.value(const=False)
            self.take(")")
        return args

    def selection_set(self) -> list[Any]:
        self.take("{")
        out: list[Any] = []
        while not self.peek("}"):
            out.append(self.selection())
        self.take("}")
        return out

    def selection(self) -> Any:
        t = self.tok
        if self.peek("..."):
            self.take("...")
            if self.tok.kind == "name" and self.tok.value != "on":
                return Spread(self.name(), self.directives(), (t.line, t.col))
            cond = None
            if self.peek("on", "name"):
                self.take("on", "name")
                cond = self.name()
            return InlineFragment(cond, self.directives(), self.selection_set(), (t.line, t.col))
        first = self.name()
        alias, name = None, first
        if self.peek(":"):
            self.take(":")
            alias, name = first, self.name()
        args = self.arguments()
        directives = self.directives()
        selections = self.selection_set() if self.peek("{") else None
        return Field(name, alias, args, directives, selections, (t.line, t.col))

    def value(self, *, const: bool) -> Any:
        t = self.tok
        if t.kind == "punct" and t.value == "$" and not const:
            self.take("$")
            return Var(self.name())
        if t.kind == "int":
            self.i += 1
            return int(t.value)
        if t.kind == "float":
            self.i += 1
            return float(t.value)
        if t.kind == "string":
            self.i += 1
            return t.value
        if t.kind == "name":
            self.i += 1
            return {"true": True, "false": False, "null": None}.get(t.value, EnumV(t.value))
        if self.peek("["):
            self.take("[")
            items = []
            while not self.peek("]"):
                items.append(self.value(const=const))
            self.take("]")
            return items
        if self.peek("{"):
            self.take("{")
            obj = {}
            while not self.peek("}"):
                key = self.name()
                self.take(":")
                obj[key] = self.value(const=const)
            self.take("}")
            return obj
        raise self.fail()


_PUNCT_NAMES = {
    "{": "LCURLY",
    "}": "RCURLY",
    "(": "LPAREN",
    ")": "RPAREN",
    "[": "LBRACKET",
    "]": "RBRACKET",
    ":": "COLON",
    "!": "BANG",
    "$": "VAR_SIGN",
    "=": "EQUALS",
    "@": "DIR_SIGN",
    "...": "ELLIPSIS",
    "|": "PIPE",
    "&": "AMP",
}


def parse(source: str) -> Document:
    return _Parser(source).document()


# --- schema --------------------------------------------------------------------------------------

SCALARS = {
    "String",
    "Int",
    "Float",
    "Boolean",
    "ID",
    "DateTime",
    "Decimal",
    "Money",
    "URL",
    "UnsignedInt64",
    "HTML",
    "JSON",
    "FormattedString",
}

Resolver = Callable[[Any, dict[str, Any], Any], Any]


@dataclass
class Arg:
    type: str
    default: Any = None


@dataclass
class FieldDef:
    type: str  # GraphQL type notation: "Order", "[LineItem!]!", "String"
    args: dict[str, Arg] = field(default_factory=dict)
    resolve: Resolver | None = None


@dataclass
class ObjectType:
    name: str
    fields: dict[str, FieldDef]
    interfaces: tuple[str, ...] = ()


@dataclass
class Schema:
    query: str
    types: dict[str, ObjectType]
    enums: dict[str, frozenset[str]]
    # Interface name -> shared fields; the concrete type of a value comes from its "__typename".
    interfaces: dict[str, dict[str, FieldDef]] = field(default_factory=dict)
    mutation: str | None = None

    def fields_of(self, type_name: str) -> dict[str, FieldDef] | None:
        if type_name in self.types:
            return self.types[type_name].fields
        return self.interfaces.get(type_name)

    def is_composite(self, type_name: str) -> bool:
        return type_name in self.types or type_name in self.interfaces

    def possible(self, type_name: str, concrete: str) -> bool:
        if type_name == concrete:
            return True
        t = self.types.get(concrete)
        return bool(t and type_name in t.interfaces)


def named_type(notation: str) -> str:
    return notation.strip("[]!")


def is_list(notation: str) -> bool:
    return notation.rstrip("!").startswith("[")


def non_null(notation: str) -> bool:
    return notation.endswith("!")


# --- validation ----------------------------------------------------------------------------------


@dataclass
class Request:
    document: Document
    operation: Operation
    variables: dict[str, Any]


def prepare(schema: Schema, source: str, variables: Any, operation_name: str | None) -> Request:
    """Parse, pick the operation, coerce variables and validate. Raises a list of GraphQLError."""
    doc = parse(source)
    if operation_name:
        ops = [o for o in doc.operations if o.name == operation_name]
        if not ops:
            raise ValidationErrors([GraphQLError(f'No operation named "{operation_name}"')])
        op = ops[0]
    elif len(doc.operations) == 1:
        op = doc.operations[0]
    elif not doc.operations:
        raise ValidationErrors([GraphQLError("Document contains no operations")])
    else:
        raise ValidationErrors([GraphQLError("An operation name is required")])
    errors: list[GraphQLError] = []
    values = _coerce_variables(schema, op, variables if isinstance(variables, dict) else {}, errors)
    root = schema.query if op.kind == "query" else schema.mutation if op.kind == "mutation" else None
    if root is None:
        errors.append(GraphQLError(f"Schema is not configured for {op.kind}s", loc=op.loc))
    else:
        op_path = f"{op.kind} {op.name}" if op.name else op.kind
        _validate(schema, doc, op, root, op.selections, [op_path], errors, set())
    if errors:
        raise ValidationErrors(errors)
    return Request(doc, op, values)


class ValidationErrors(Exception):
    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__(errors[0].message if errors else "invalid")
        self.errors = errors


def _coerce_variables(
    schema: Schema, op: Operation, provided: dict[str, Any], errors: list[GraphQLError]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for vd in op.variables:
        if vd.name in provided:
            value = provided[vd.name]
        elif vd.has_default:
            value = vd.default
        else:
            if vd.type.non_null:
                errors.append(
                    GraphQLError(
                        f"Variable ${vd.name} of type {vd.type} was provided invalid value",
                        loc=vd.loc,
                        extensions={
                            "value": None,
                            "problems": [{"path": [], "explanation": "Expected value to not be null"}],
                        },
                    )
                )
            continue
        problem = _type_problem(schema, vd.type, value)
        if problem:
            errors.append(
                GraphQLError(
                    f"Variable ${vd.name} of type {vd.type} was provided invalid value",
                    loc=vd.loc,
                    extensions={"value": value, "problems": [{"path": [], "explanation": problem}]},
                )
            )
        out[vd.name] = value
    return out


def _type_problem(schema: Schema, ref: TypeRef, value: Any) -> str | None:
    if value is None:
        return "Expected value to not be null" if ref.non_null else None
    if ref.of is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            p = _type_problem(schema, ref.of, item)
            if p:
                return p
        return None
    name = ref.name or ""
    checks: dict[str, Callable[[Any], bool]] = {
        "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "Boolean": lambda v: isinstance(v, bool),
        "String": lambda v: isinstance(v, str),
        "ID": lambda v: isinstance(v, str | int) and not isinstance(v, bool),
    }
    if name in checks and not checks[name](value):
        return f"Could not coerce value {json.dumps(value)} to {name}"
    if name in schema.enums and value not in schema.enums[name]:
        return f'Expected "{value}" to be one of: {", ".join(sorted(schema.enums[name]))}'
    return None


def _validate(
    schema: Schema,
    doc: Document,
    op: Operation,
    type_name: str,
    selections: list[Any],
    path: list[Any],
    errors: list[GraphQLError],
    seen_fragments: set[str],
) -> None:
    fields = schema.fields_of(type_name) or {}
    declared = {v.name for v in op.variables}
    for sel in selections:
        if isinstance(sel, Spread):
            frag = doc.fragments.get(sel.name)
            if frag is None:
                errors.append(
                    GraphQLError(
                        f"Fragment {sel.name} was used, but not defined",
                        loc=sel.loc,
                        path=[*path, f"... {sel.name}"],
                    )
                )
                continue
            if sel.name in seen_fragments:
                errors.append(GraphQLError(f"Fragment {sel.name} contains an infinite loop", loc=sel.loc))
                continue
            if not schema.is_composite(frag.type_condition):
                errors.append(
                    GraphQLError(
                        f"No such type {frag.type_condition}, so it can't be a fragment condition",
                        loc=frag.loc,
                    )
                )
                continue
            _validate(
                schema,
                doc,
                op,
                frag.type_condition,
                frag.selections,
                path,
                errors,
                seen_fragments | {sel.name},
            )
            continue
        if isinstance(sel, InlineFragment):
            cond = sel.type_condition or type_name
            if not schema.is_composite(cond):
                errors.append(
                    GraphQLError(f"No such type {cond}, so it can't be a fragment condition", loc=sel.loc)
                )
                continue
            _validate(schema, doc, op, cond, sel.selections, path, errors, seen_fragments)
            continue
        fpath = [*path, sel.key]
        for d in sel.directives:
            if d.name not in ("include", "skip"):
                errors.append(GraphQLError(f"Directive @{d.name} is not defined", loc=d.loc, path=fpath))
            _check_vars(d.args, declared, sel, errors, fpath, op)
        if sel.name == "__typename":
            if sel.selections:
                errors.append(_scalar_selection_error(sel, "String", fpath))
            continue
        fd = fields.get(sel.name)
        if fd is None:
            errors.append(
                GraphQLError(
                    f"Field '{sel.name}' doesn't exist on type '{type_name}'",
                    loc=sel.loc,
                    path=fpath,
                    extensions={"code": "undefinedField", "typeName": type_name, "fieldName": sel.name},
                )
            )
            continue
        for arg in sel.args:
            if arg not in fd.args:
                errors.append(
                    GraphQLError(
                        f"Field '{sel.name}' doesn't accept argument '{arg}'",
                        loc=sel.loc,
                        path=[*fpath, arg],
                        extensions={
                            "code": "argumentNotAccepted",
                            "name": sel.name,
                            "typeName": "Field",
                            "argumentName": arg,
                        },
                    )
                )
        missing = [
            a
            for a, spec in fd.args.items()
            if non_null(spec.type) and spec.default is None and a not in sel.args
        ]
        if missing:
            errors.append(
                GraphQLError(
                    f"Field '{sel.name}' is missing required arguments: {', '.join(missing)}",
                    loc=sel.loc,
                    path=fpath,
                    extensions={
                        "code": "missingRequiredArguments",
                        "className": "Field",
                        "name": sel.name,
                        "arguments": ", ".join(missing),
                    },
                )
            )
        for arg, value in sel.args.items():
            spec = fd.args.get(arg)
            if spec is not None and not _has_var(value):
                problem = _type_problem(schema, _parse_type(spec.type), _literal(value))
                if problem:
                    errors.append(
                        GraphQLError(
                            f"Argument '{arg}' on Field '{sel.name}' has an invalid value ({_show(value)}). Expected "
                            f"type '{spec.type}'.",
                            loc=sel.loc,
                            path=[*fpath, arg],
                            extensions={
                                "code": "argumentLiteralsIncompatible",
                                "typeName": "Field",
                                "argumentName": arg,
                            },
                        )
                    )
        _check_vars(sel.args, declared, sel, errors, fpath, op)
        target = named_type(fd.type)
        if schema.is_composite(target):
            if not sel.selections:
                errors.append(
                    GraphQLError(
                        f"Field must have selections (field '{sel.name}' returns {target} but has no selections. Did you "
                        f"mean '{sel.name} {{ ... }}'?)",
                        loc=sel.loc,
                        path=fpath,
                        extensions={
                            "code": "selectionMismatch",
                            "nodeName": f"field '{sel.name}'",
                            "typeName": target,
                        },
                    )
                )
            else:
                _validate(schema, doc, op, target, sel.selections, fpath, errors, seen_fragments)
        elif sel.selections:
            errors.append(_scalar_selection_error(sel, target, fpath))


def _scalar_selection_error(sel: Field, target: str, path: list[Any]) -> GraphQLError:
    names = ", ".join(s.name for s in sel.selections or [] if isinstance(s, Field))
    return GraphQLError(
        f"Selections can't be made on scalars (field '{sel.name}' returns {target} but has selections [{names}])",
        loc=sel.loc,
        path=path,
        extensions={"code": "selectionMismatch", "nodeName": f"field '{sel.name}'", "typeName": target},
    )


def _check_vars(
    args: dict[str, Any],
    declared: set[str],
    sel: Field,
    errors: list[GraphQLError],
    path: list[Any],
    op: Operation,
) -> None:
    for value in args.values():
        for var in _vars_in(value):
            if var not in declared:
                errors.append(
                    GraphQLError(
                        f"Variable ${var} is used by {op.name or 'anonymous query'} but not declared",
                        loc=sel.loc,
                        path=path,
                        extensions={"code": "variableNotDefined", "variableName": var},
                    )
                )


def _vars_in(value: Any) -> list[str]:
    if isinstance(value, Var):
        return [value.name]
    if isinstance(value, list):
        return [n for v in value for n in _vars_in(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _vars_in(v)]
    return []


def _has_var(value: Any) -> bool:
    return bool(_vars_in(value))


def _literal(value: Any) -> Any:
    if isinstance(value, EnumV):
        return value.name
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    return value


def _show(value: Any) -> str:
    v = _literal(value)
    return json.dumps(v) if not isinstance(value, EnumV) else value.name


def _parse_type(notation: str) -> TypeRef:
    nn = notation.endswith("!")
    core = notation[:-1] if nn else notation
    if core.startswith("["):
        return TypeRef(None, _parse_type(core[1:-1]), nn)
    return TypeRef(core, None, nn)


def resolve_value(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, Var):
        return variables.get(value.name)
    if isinstance(value, EnumV):
        return value.name
    if isinstance(value, list):
        return [resolve_value(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: resolve_value(v, variables) for k, v in value.items()}
    return value


# --- execution -----------------------------------------------------------------------------------


@dataclass
class Execution:
    schema: Schema
    request: Request
    context: Any
    errors: list[GraphQLError] = field(default_factory=list)


def execute(
    schema: Schema, request: Request, root: Any, context: Any
) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
    ex = Execution(schema, request, context)
    root_type = schema.query if request.operation.kind == "query" else str(schema.mutation)
    data = _execute_selections(ex, root_type, root, request.operation.selections, [])
    return data, ex.errors


def _skipped(ex: Execution, directives: list[Directive]) -> bool:
    for d in directives:
        cond = bool(resolve_value(d.args.get("if"), ex.request.variables))
        if (d.name == "skip" and cond) or (d.name == "include" and not cond):
            return True
    return False


def collect_fields(
    ex: Execution,
    type_name: str,
    selections: list[Any],
    out: dict[str, list[Field]] | None = None,
    seen: set[str] | None = None,
) -> dict[str, list[Field]]:
    out = {} if out is None else out
    seen = set() if seen is None else seen
    for sel in selections:
        if _skipped(ex, sel.directives):
            continue
        if isinstance(sel, Field):
            out.setdefault(sel.key, []).append(sel)
        elif isinstance(sel, InlineFragment):
            if sel.type_condition is None or ex.schema.possible(sel.type_condition, type_name):
                collect_fields(ex, type_name, sel.selections, out, seen)
        elif isinstance(sel, Spread) and sel.name not in seen:
            seen.add(sel.name)
            frag = ex.request.document.fragments[sel.name]
            if ex.schema.possible(frag.type_condition, type_name):
                collect_fields(ex, type_name, frag.selections, out, seen)
    return out


def _execute_selections(
    ex: Execution, type_name: str, parent: Any, selections: list[Any], path: list[Any]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    fields = ex.schema.fields_of(type_name) or {}
    for key, group in collect_fields(ex, type_name, selections).items():
        first = group[0]
        subs = [s for f in group for s in (f.selections or [])]
        fpath = [*path, key]
        if first.name == "__typename":
            result[key] = type_name
            continue
        fd = fields[first.name]
        args = {name: spec.default for name, spec in fd.args.items() if spec.default is not None}
        args.update(
            {
                k: _coerce_id(fd.args[k].type, resolve_value(v, ex.request.variables))
                for k, v in first.args.items()
            }
        )
        try:
            value = (
                fd.resolve(parent, args, ex.context) if fd.resolve else _default_resolve(parent, first.name)
            )
        except FieldError as exc:
            ex.errors.append(GraphQLError(exc.message, loc=first.loc, path=fpath, extensions=exc.extensions))
            result[key] = None
            continue
        result[key] = _complete(ex, fd.type, value, subs, fpath)
    return result


def _coerce_id(notation: str, value: Any) -> Any:
    """ID inputs accept ints and strings; resolvers always see strings (spec §3.5.5)."""
    if named_type(notation) != "ID" or value is None:
        return value
    if isinstance(value, list):
        return [_coerce_id(notation.rstrip("!")[1:-1], v) for v in value]
    return str(value)


def _default_resolve(parent: Any, name: str) -> Any:
    if isinstance(parent, dict):
        return parent.get(name)
    return getattr(parent, name, None)


def _complete(ex: Execution, notation: str, value: Any, subs: list[Any], path: list[Any]) -> Any:
    if value is None:
        return None
    core = notation.rstrip("!")
    if core.startswith("["):
        inner = core[1:-1]
        return [_complete(ex, inner, v, subs, [*path, i]) for i, v in enumerate(value)]
    target = named_type(notation)
    if ex.schema.is_composite(target):
        concrete = value.get("__typename", target) if isinstance(value, dict) else target
        return _execute_selections(ex, concrete, value, subs, path)
    return value


def selection_fields(
    request: Request | None, selections: list[Any] | None, seen: frozenset[str] = frozenset()
) -> list[Field]:
    """Flattened fields of a selection set (fragments included), for cost estimates."""
    out: list[Field] = []
    for sel in selections or []:
        if isinstance(sel, Field):
            out.append(sel)
        elif isinstance(sel, InlineFragment):
            out += selection_fields(request, sel.selections, seen)
        elif isinstance(sel, Spread) and request is not None and sel.name not in seen:
            frag = request.document.fragments.get(sel.name)
            if frag:
                out += selection_fields(request, frag.selections, seen | {sel.name})
    return out
