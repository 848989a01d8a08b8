"""Which dataclass fields the product code reads, found by a small static type inference over its syntax tree.

A read is `x.field` (or `getattr(x, "field")`) where `x` is known to hold an instance of a class: a parameter
annotated with it (or passed one at a call site), `self` in its methods, a field or return value annotated
with it, or a name assigned or looped over from one of those. Comments, docstrings and strings are never
reads, and `other.seed` does not count for `TrainingArgs.seed`. `getattr(x, f.name) for f in fields(C)` copies
every field of C out of x: such a field counts as read from x only where the copy's field is read in turn.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SEQUENCES = {"list", "tuple", "Sequence", "Iterable", "Iterator", "set", "frozenset", "Generator"}
_SAME_ITEMS = {"sorted", "list", "tuple", "reversed", "iter", "set"}


@dataclass
class Reads:
    """What `field_reads` found; `read` answers per class and field."""

    fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # class -> field -> annotation (method: return)
    methods: dict[tuple[str, str], ast.FunctionDef] = field(default_factory=dict)
    reads: set[tuple[str, str]] = field(default_factory=set)  # (class, field)
    copies: set[tuple[str, str]] = field(default_factory=set)  # (class read from, class its fields go to)

    def read(self, cls: str, name: str) -> bool:
        return (cls, name) in self.reads or any(
            source == cls and name in self.fields.get(target, {}) and self.read(target, name)
            for source, target in self.copies)

    def field_type(self, cls: str, name: str) -> Any:
        return _annotation(self.fields.get(cls, {}).get(name))


def field_reads(scanned: list[Path], typed: list[Path]) -> Reads:
    """The reads in `scanned`; the classes and functions of `typed` (a superset) give the types, and calls in
    `scanned` the types of parameters that have no annotation."""
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in typed}
    found = Reads()
    functions: dict[str, ast.FunctionDef] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                found.fields[node.name] = _members(node)
                found.methods.update({(node.name, f.name): f for f in node.body if isinstance(f, ast.FunctionDef)})
            elif isinstance(node, ast.FunctionDef):
                functions.setdefault(node.name, node)
    passed: dict[tuple[int, str], Any] = {}  # (id of a function, parameter) -> type seen at a call site
    for _ in range(3):  # call sites type the parameters of the functions they call, which may call others
        before = dict(passed)
        for path in scanned:
            _Scan(found, functions, passed).module(trees[path])
        if passed == before:
            break
    return found


def _members(node: ast.ClassDef) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members[item.target.id] = item.annotation
        elif isinstance(item, ast.FunctionDef):
            members[item.name] = item.returns
    return members


def _annotation(node: Any) -> Any:
    """A type: a class name, ("iter", item type), ("tuple", types) or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _annotation(ast.parse(node.value, mode="eval").body)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _annotation(node.left) or _annotation(node.right)
    if isinstance(node, ast.Subscript):
        base, args = _annotation(node.value), node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Optional":
            return _annotation(args[0])
        if base == "tuple" and not any(isinstance(a, ast.Constant) and a.value is ... for a in args):
            return ("tuple", tuple(_annotation(a) for a in args))
        if base in _SEQUENCES:
            return ("iter", _annotation(args[0]))
    return None


def _item(kind: Any) -> Any:
    if isinstance(kind, tuple) and kind[0] == "iter":
        return kind[1]
    return kind if isinstance(kind, tuple) and kind[0] == "strs" else None


def _strings(node: ast.AST) -> Any:
    """("strs", the names) for a literal tuple, list or set of strings, or a dict with string keys."""
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
    if items and all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
        return ("strs", frozenset(i.value for i in items))
    return None


class _Scan:
    def __init__(self, found: Reads, functions: dict[str, ast.FunctionDef], passed: dict):
        self.found, self.functions, self.passed = found, functions, passed

    def module(self, tree: ast.Module) -> None:
        env: dict[str, Any] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and _strings(node.value):
                for target in node.targets:
                    self.bind(target, _strings(node.value), env)
        self.block(tree.body, env, None)

    def block(self, body: list[ast.stmt], env: dict[str, Any], owner: str | None) -> None:
        for node in body:
            self.statement(node, env, owner)

    def statement(self, node: ast.stmt, env: dict[str, Any], owner: str | None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.function(node, dict(env), owner)
        elif isinstance(node, ast.ClassDef):
            self.block(node.body, dict(env), node.name)
        elif isinstance(node, ast.Assign):
            self.expression(node.value, env)
            for target in node.targets:
                self.bind(target, self.type(node.value, env), env)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self.expression(node.value, env)
            self.bind(node.target, _annotation(node.annotation) or self.type(node.value, env), env)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expression(node.iter, env)
            self.bind(node.target, _item(self.type(node.iter, env)), env)
            self.block(node.body + node.orelse, env, owner)
        else:
            self.children(node, env, owner)

    def children(self, node: ast.AST, env: dict[str, Any], owner: str | None = None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self.statement(child, env, owner)
            elif isinstance(child, ast.expr):
                self.expression(child, env)
            elif isinstance(child, (ast.keyword, ast.withitem, ast.excepthandler, ast.match_case)):
                self.children(child, env, owner)

    def function(self, node: ast.FunctionDef, env: dict[str, Any], owner: str | None) -> None:
        params = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        for index, arg in enumerate(params):
            env[arg.arg] = _annotation(arg.annotation) or self.passed.get((id(node), arg.arg))
            if index == 0 and owner and not any(_annotation(d) == "staticmethod" for d in node.decorator_list):
                is_class = any(_annotation(d) == "classmethod" for d in node.decorator_list)
                env[arg.arg] = ("class", owner) if is_class else owner
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d]:
            self.expression(default, env)
        self.block(node.body, env, None)

    def bind(self, target: ast.expr, kind: Any, env: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = kind
        elif isinstance(target, (ast.Tuple, ast.List)):
            parts = kind[1] if isinstance(kind, tuple) and kind[0] == "tuple" else ()
            for index, element in enumerate(target.elts):
                self.bind(element, parts[index] if index < len(parts) else None, env)

    def expression(self, node: ast.expr, env: dict[str, Any]) -> None:
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            env = self.comprehension(node, env, walk=True)
        elif isinstance(node, ast.Lambda):
            env = {**env, **{a.arg: None for a in node.args.args}}
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            self.note_read(self.type(node.value, env), node.attr)
        elif isinstance(node, ast.Call):
            self.call(node, env)
        self.children(node, env)

    def comprehension(self, node: ast.expr, env: dict[str, Any], walk: bool = False) -> dict[str, Any]:
        """The names a comprehension binds; `walk` also notes the reads in its loops and conditions."""
        inner = dict(env)
        for generator in node.generators:
            if walk:
                self.expression(generator.iter, inner)
            self.bind(generator.target, _item(self.type(generator.iter, inner)), inner)
            for condition in generator.ifs if walk else ():
                self.expression(condition, inner)
        return inner

    def note_read(self, owner: Any, name: str) -> None:
        if isinstance(owner, str):
            self.found.reads.add((owner, name))

    def call(self, node: ast.Call, env: dict[str, Any]) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
            self.getattr(self.type(node.args[0], env), node.args[1], env)
        callee = self.callee(node, env)
        if callee is not None:
            params = [a.arg for a in callee.args.posonlyargs + callee.args.args]
            params = params[1:] if isinstance(node.func, ast.Attribute) else params  # self
            given = list(zip(params, node.args)) + [(k.arg, k.value) for k in node.keywords if k.arg]
            for param, value in given:
                kind = self.type(value, env)
                if kind is not None:
                    self.passed.setdefault((id(callee), param), kind)

    def getattr(self, owner: Any, which: ast.expr, env: dict[str, Any]) -> None:
        """`getattr(owner, "name")`, a name from a literal list of names, or `f.name` for `f in fields(C)`."""
        names = self.type(which, env)
        if isinstance(which, ast.Constant) and isinstance(which.value, str):
            self.note_read(owner, which.value)
        elif isinstance(names, tuple) and names[0] == "strs":
            for name in names[1]:
                self.note_read(owner, name)
        elif isinstance(which, ast.Attribute) and which.attr == "name" and isinstance(owner, str):
            copied = self.type(which.value, env)
            if isinstance(copied, tuple) and copied[0] == "field of":
                self.found.copies.add((owner, copied[1]))

    def callee(self, node: ast.Call, env: dict[str, Any]) -> ast.FunctionDef | None:
        """The function a call runs: a module function by name, or a method of an instance whose type is known."""
        if isinstance(node.func, ast.Name):
            return self.functions.get(node.func.id)
        owner = self.type(node.func.value, env) if isinstance(node.func, ast.Attribute) else None
        return self.found.methods.get((owner, node.func.attr)) if isinstance(owner, str) else None

    def type(self, node: ast.expr, env: dict[str, Any]) -> Any:
        """The type of an expression, as far as annotations and assignments tell; None when unknown."""
        if isinstance(node, ast.Name):
            return env.get(node.id) or (("class", node.id) if node.id in self.found.fields else None)
        if isinstance(node, ast.Attribute):
            owner = self.type(node.value, env)
            return self.found.field_type(owner, node.attr) if isinstance(owner, str) else None
        if isinstance(node, ast.Subscript):
            owner = self.type(node.value, env)
            if isinstance(owner, tuple) and owner[0] == "tuple" and isinstance(node.slice, ast.Constant):
                index, types = node.slice.value, owner[1]
                return types[index] if isinstance(index, int) and -len(types) <= index < len(types) else None
            return _item(owner)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return _strings(node) or ("tuple", tuple(self.type(e, env) for e in node.elts))
        if isinstance(node, ast.Dict):
            return _strings(node)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return ("iter", self.type(node.elt, self.comprehension(node, env)))
        if isinstance(node, ast.IfExp):
            return self.type(node.body, env) or self.type(node.orelse, env)
        if isinstance(node, ast.BoolOp):
            return next((k for k in (self.type(v, env) for v in node.values) if k is not None), None)
        if isinstance(node, ast.Call):
            return self.result(node, env)
        return None

    def result(self, node: ast.Call, env: dict[str, Any]) -> Any:
        args = [self.type(a, env) for a in node.args]
        if isinstance(node.func, ast.Attribute):
            owner = self.type(node.func.value, env)
            if isinstance(owner, tuple) and owner[0] == "strs":
                return ("iter", ("tuple", (owner, None))) if node.func.attr == "items" else owner
            owner = owner[1] if isinstance(owner, tuple) and owner[0] == "class" else owner
            return self.found.field_type(owner, node.func.attr) if isinstance(owner, str) else None
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name in self.found.fields:
            return name
        if name == "fields" and args:
            owner = args[0][1] if isinstance(args[0], tuple) and args[0][0] == "class" else args[0]
            return ("iter", ("field of", owner))
        if name in ("next", "min", "max") and args:
            return _item(args[0])
        if name in _SAME_ITEMS and args:
            return args[0]
        if name == "replace" and args:
            return args[0]
        if name == "enumerate" and args:
            return ("iter", ("tuple", ("int", _item(args[0]))))
        if name == "zip":
            return ("iter", ("tuple", tuple(_item(a) for a in args)))
        callee = self.functions.get(name) if name else None
        return _annotation(callee.returns) if callee is not None else None
