"""
A small GraphQL executor for emulators: documents parsed by graphql-core, data from dicts.

Rule 1: graphql-core is imported lazily (the ``testing`` extra); nothing here is needed by the
adapters themselves.

Rule 2: with a schema, documents and variables are validated exactly as a server would
(``graphql.validate`` and variable coercion); without one, the executor still honours the
document: aliases, fragments, ``@skip``/``@include``, arguments from variables, so the response
has the shape the client asked for.

Resolution: a source is a mapping; a field's value is ``source[name]``, called with the field's
arguments (as keywords) when it is callable. Lists are completed element by element. That is
enough to emulate a server from plain Python state.

Cost: Shopify's published model. Scalars and enums 0, objects 1, connections (fields with
``first``/``last``) 2 plus that many times their node, mutation root fields 10. The actual cost
refunds the connection slots that were not filled.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


__all__ = ["Executed", "GraphQLRequestError", "Prepared", "load_schema", "prepare"]

MUTATION_COST = 10
CONNECTION_COST = 2


class GraphQLRequestError(Exception):
    """The document or its variables were rejected before execution (a 200 with ``errors``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("message")) for e in errors))
        self.errors = errors


@functools.lru_cache(maxsize=8)
def load_schema(path: str) -> Any:
    """Load an introspection result (``.json`` or ``.json.gz``) as a client schema (cached)."""
    from graphql import build_client_schema  # noqa: PLC0415 - optional dependency

    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    data = json.loads(raw)
    if "data" in data:
        data = data["data"]
    return build_client_schema(data, assume_valid=True)


class Prepared:
    """A parsed operation with coerced variables, ready to cost and execute."""

    def __init__(
        self,
        document: Any,
        operation: Any,
        variables: Mapping[str, Any],
        deprecations: Sequence[str],
    ) -> None:
        self.document = document
        self.operation = operation
        self.variables = dict(variables)
        self.deprecations = tuple(deprecations)
        from graphql import FragmentDefinitionNode  # noqa: PLC0415

        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    @property
    def kind(self) -> str:
        """``query`` or ``mutation``."""
        return str(self.operation.operation.value)

    @property
    def name(self) -> str | None:
        """The operation name."""
        return self.operation.name.value if self.operation.name else None

    # -- values ---------------------------------------------------------------------------------

    def value(self, node: Any) -> Any:
        """The Python value of an AST value node, variables resolved."""
        from graphql import (  # noqa: PLC0415
            ListValueNode,
            NullValueNode,
            ObjectValueNode,
            VariableNode,
            value_from_ast_untyped,
        )

        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, ListValueNode):
            return [self.value(v) for v in node.values]
        if isinstance(node, ObjectValueNode):
            return {f.name.value: self.value(f.value) for f in node.fields}
        if isinstance(node, NullValueNode):
            return None
        return value_from_ast_untyped(node)

    def args(self, node: Any) -> dict[str, Any]:
        """A field's or directive's arguments."""
        return {a.name.value: self.value(a.value) for a in node.arguments or ()}

    def directive(self, node: Any, name: str) -> dict[str, Any] | None:
        """The arguments of directive *name* on *node*, if present."""
        for d in node.directives or ():
            if d.name.value == name:
                return self.args(d)
        return None

    def _included(self, node: Any) -> bool:
        skip = self.directive(node, "skip")
        if skip is not None and skip.get("if"):
            return False
        include = self.directive(node, "include")
        return not (include is not None and not include.get("if"))

    def fields(self, selection_set: Any, typename: str | None = None) -> list[Any]:
        """The field nodes of *selection_set*, fragments expanded for *typename*."""
        from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode  # noqa: PLC0415

        out: list[Any] = []
        for sel in selection_set.selections if selection_set else ():
            if not self._included(sel):
                continue
            if isinstance(sel, FieldNode):
                out.append(sel)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = self.fragments[sel.name.value]
                if _applies(fragment.type_condition, typename):
                    out.extend(self.fields(fragment.selection_set, typename))
            elif isinstance(sel, InlineFragmentNode) and _applies(sel.type_condition, typename):
                out.extend(self.fields(sel.selection_set, typename))
        return out

    # -- cost -----------------------------------------------------------------------------------

    def cost(self) -> int:
        """The requested cost of the operation."""
        mutation = self.kind == "mutation"
        total = 0
        for node in self.fields(self.operation.selection_set):
            total += (MUTATION_COST if mutation else 0) + self._field_cost(node, root=mutation)
        return total

    def _field_cost(self, node: Any, *, root: bool = False) -> int:
        if node.selection_set is None:
            return 0
        args = self.args(node)
        size = args.get("first") or args.get("last")
        if isinstance(size, int):
            return CONNECTION_COST + self._connection_cost(node, size)
        own = 0 if root else 1
        return own + sum(self._field_cost(f) for f in self.fields(node.selection_set))

    def node_cost(self, node: Any) -> int:
        """The cost of one node of connection field *node*."""
        total = 0
        for child in self.fields(node.selection_set):
            name = child.name.value
            if name == "nodes":
                total += 1 + sum(self._field_cost(f) for f in self.fields(child.selection_set))
            elif name == "edges":
                for edge_field in self.fields(child.selection_set):
                    if edge_field.name.value == "node":
                        total += 1 + sum(
                            self._field_cost(f) for f in self.fields(edge_field.selection_set)
                        )
        return total

    def _connection_cost(self, node: Any, size: int) -> int:
        others = sum(
            self._field_cost(c)
            for c in self.fields(node.selection_set)
            if c.name.value not in {"nodes", "edges"}
        )
        return size * self.node_cost(node) + others

    # -- execution ------------------------------------------------------------------------------

    def execute(self, root: Mapping[str, Any]) -> Executed:
        """Resolve the operation against *root*; mutations run in document order."""
        run = Executed(self)
        data = run.select(self.operation.selection_set, root)
        run.data = data
        return run


class Executed:
    """The result of `Prepared.execute`: the data and the refund of unfilled connection slots."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.data: dict[str, Any] = {}
        self.refund = 0
        #: The root fields resolved, with their ``@idempotent`` key if any.
        self.roots: list[tuple[str, str | None]] = []

    def select(self, selection_set: Any, source: Any, *, root: bool = True) -> dict[str, Any]:
        p = self.prepared
        typename = source.get("__typename") if isinstance(source, Mapping) else None
        out: dict[str, Any] = {}
        for node in p.fields(selection_set, typename):
            name = node.name.value
            key = node.alias.value if node.alias else name
            if root:
                key_args = p.directive(node, "idempotent")
                self.roots.append((name, (key_args or {}).get("key")))
            if name == "__typename":
                out[key] = typename
                continue
            value = source.get(name) if isinstance(source, Mapping) else None
            args = p.args(node)
            if callable(value):
                value = value(**args)
            out[key] = self.complete(node, value, args)
        return out

    def complete(self, node: Any, value: Any, args: Mapping[str, Any]) -> Any:
        if value is None or node.selection_set is None:
            return value
        if isinstance(value, list):
            return [self.complete(node, v, {}) for v in value]
        size = args.get("first") or args.get("last")
        if isinstance(size, int) and isinstance(value, Mapping):
            filled = len(value.get("nodes") or value.get("edges") or ())
            self.refund += max(0, size - filled) * self.prepared.node_cost(node)
        return self.select(node.selection_set, value, root=False)


def _applies(condition: Any, typename: str | None) -> bool:
    return condition is None or typename is None or condition.name.value == typename


@functools.lru_cache(maxsize=1)
def _deprecation_rule() -> type[Any]:
    """
    A validation rule listing deprecated fields, arguments, input fields and enum values used.

    graphql-core's ``NoDeprecatedCustomRule`` reads AST nodes to name deprecated arguments,
    and a client schema (built from introspection) has none, so it crashes there.
    """
    from graphql import GraphQLError  # noqa: PLC0415
    from graphql.validation import ValidationRule  # noqa: PLC0415

    class DeprecatedUse(ValidationRule):
        def _report(self, name: str, node: Any) -> None:
            self.report_error(GraphQLError(name, node))

        def enter_field(self, node: Any, *_args: Any) -> None:
            field_def = self.context.get_field_def()
            parent = self.context.get_parent_type()
            if field_def is not None and field_def.deprecation_reason is not None and parent:
                self._report(f"{parent.name}.{node.name.value}", node)

        def enter_argument(self, node: Any, *args: Any) -> None:
            arg_def = self.context.get_argument()
            if arg_def is None or arg_def.deprecation_reason is None:
                return
            directive = self.context.get_directive()
            if directive is not None:
                self._report(f"@{directive.name}.{node.name.value}", node)
                return
            ancestors = args[3] if len(args) > 3 else ()  # noqa: PLR2004 - visitor signature
            field_node = ancestors[-1] if ancestors else None
            parent = self.context.get_parent_type()
            field_name = getattr(getattr(field_node, "name", None), "value", "?")
            owner = parent.name if parent is not None else "?"
            self._report(f"{owner}.{field_name}.{node.name.value}", node)

        def enter_object_field(self, node: Any, *_args: Any) -> None:
            from graphql import get_named_type, is_input_object_type  # noqa: PLC0415

            parent = get_named_type(self.context.get_parent_input_type())
            if is_input_object_type(parent):
                field = parent.fields.get(node.name.value)
                if field is not None and field.deprecation_reason is not None:
                    self._report(f"{parent.name}.{node.name.value}", node)

        def enter_enum_value(self, node: Any, *_args: Any) -> None:
            value = self.context.get_enum_value()
            enum_type = get_named_type_lazy(self.context.get_input_type())
            if value is not None and value.deprecation_reason is not None and enum_type:
                self._report(f"{enum_type.name}.{node.value}", node)

    return DeprecatedUse


def get_named_type_lazy(type_: Any) -> Any:
    """``graphql.get_named_type`` without importing graphql at module level."""
    from graphql import get_named_type  # noqa: PLC0415

    return get_named_type(type_)


def _deprecated_values(type_: Any, value: Any, out: set[str]) -> None:
    """Deprecated input fields and enum values used inside variable *value*."""
    from graphql import (  # noqa: PLC0415
        get_nullable_type,
        is_enum_type,
        is_input_object_type,
        is_list_type,
    )

    type_ = get_nullable_type(type_)
    if value is None:
        return
    if is_list_type(type_) and isinstance(value, list):
        for item in value:
            _deprecated_values(type_.of_type, item, out)
    elif is_input_object_type(type_) and isinstance(value, Mapping):
        for name, item in value.items():
            field = type_.fields.get(name)
            if field is None:
                continue
            if field.deprecation_reason is not None:
                out.add(f"{type_.name}.{name}")
            _deprecated_values(field.type, item, out)
    elif is_enum_type(type_) and isinstance(value, str):
        enum_value = type_.values.get(value)
        if enum_value is not None and enum_value.deprecation_reason is not None:
            out.add(f"{type_.name}.{value}")


def find_deprecations(schema: Any, document: Any, variables: Mapping[str, Any]) -> list[str]:
    """
    Everything deprecated that *document* and its *variables* use, as ``Type.field`` names
    (the form of ``X-Shopify-API-Deprecated-Reason``).
    """
    from graphql import validate  # noqa: PLC0415

    found = {e.message for e in validate(schema, document, [_deprecation_rule()])}
    return sorted(found | set(_variable_deprecations(schema, document, variables)))


def _variable_deprecations(schema: Any, document: Any, variables: Mapping[str, Any]) -> set[str]:
    from graphql import OperationDefinitionNode, type_from_ast  # noqa: PLC0415

    found: set[str] = set()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for var in definition.variable_definitions or ():
                var_type = type_from_ast(schema, var.type)
                if var_type is not None:
                    _deprecated_values(var_type, variables.get(var.variable.name.value), found)
    return found


def prepare(
    body: Mapping[str, Any],
    *,
    schema: Any | None,
    known_roots: Callable[[str], set[str]],
) -> Prepared:
    """
    Parse the request *body*; validate against *schema* if given.

    Raises:
        GraphQLRequestError: syntax errors, validation errors, bad variables, unknown operation.
    """
    from graphql import GraphQLError, OperationDefinitionNode  # noqa: PLC0415

    query = body.get("query")
    if not isinstance(query, str):
        raise GraphQLRequestError([{"message": "Parameter 'query' is required"}])
    variables = body.get("variables") or {}
    if not isinstance(variables, Mapping):
        raise GraphQLRequestError([{"message": "Parameter 'variables' must be an object"}])
    try:
        document, errors, static = _checked(query, schema)
    except GraphQLError as exc:
        raise GraphQLRequestError([dict(exc.formatted)]) from None
    if errors:
        raise GraphQLRequestError([dict(e) for e in errors])
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    wanted = body.get("operationName")
    chosen = [o for o in operations if not wanted or (o.name and o.name.value == wanted)]
    if len(chosen) != 1:
        raise GraphQLRequestError(
            [{"message": "Must provide exactly one operation (operationName)"}]
        )
    operation = chosen[0]
    deprecations: list[str] = []
    if schema is not None:
        from graphql.execution.values import get_variable_values  # noqa: PLC0415

        coerced = get_variable_values(schema, operation.variable_definitions or (), dict(variables))
        if isinstance(coerced, list):
            raise GraphQLRequestError([dict(e.formatted) for e in coerced])
        # graphql-core 3.3 returns VariableValues(sources, coerced); 3.2 a plain dict.
        values: Any = getattr(coerced, "coerced", coerced)
        variables = dict(values)
        # What the client sent, not the coerced values: coercion fills in schema defaults.
        raw = body.get("variables") or {}
        deprecations = sorted(static | _variable_deprecations(schema, document, raw))
    prepared = Prepared(document, operation, _with_defaults(operation, variables), deprecations)
    if schema is None:
        allowed = known_roots(prepared.kind)
        unknown = [
            f.name.value
            for f in prepared.fields(operation.selection_set)
            if f.name.value not in allowed and f.name.value != "__typename"
        ]
        if unknown:
            root = "QueryRoot" if prepared.kind == "query" else "Mutation"
            raise GraphQLRequestError(
                [
                    {
                        "message": f"Field '{name}' doesn't exist on type '{root}'",
                        "extensions": {"code": "undefinedField"},
                    }
                    for name in unknown
                ]
            )
    return prepared


@functools.lru_cache(maxsize=256)
def _checked(query: str, schema: Any) -> tuple[Any, tuple[Any, ...], frozenset[str]]:
    """Parse and validate *query* once per schema (documents are constants in practice)."""
    from graphql import parse, validate  # noqa: PLC0415

    document = parse(query)
    if schema is None:
        return document, (), frozenset()
    errors = tuple(e.formatted for e in validate(schema, document))
    if errors:
        return document, errors, frozenset()
    used = frozenset(e.message for e in validate(schema, document, [_deprecation_rule()]))
    return document, (), used


def _with_defaults(operation: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
    from graphql import value_from_ast_untyped  # noqa: PLC0415

    out = dict(variables)
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in out and definition.default_value is not None:
            out[name] = value_from_ast_untyped(definition.default_value)
    return out
