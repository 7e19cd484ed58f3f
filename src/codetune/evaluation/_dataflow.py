"""Variable dataflow graphs for CodeBLEU's dataflow match (GraphCodeBERT-style, Guo et al. 2021).

A node is one occurrence of a variable token; an edge says where its value comes from:
``comesFrom`` (a use reads an earlier definition) or ``computedFrom`` (an assignment computes it from
the tokens on its right). The Python, Java and JavaScript rules reproduce the reference rules used by
CodeBLEU so scores stay comparable; the C/C++ rules are ours (upstream applies its C# rules to C).

Each rule walks the tree-sitter tree left to right, threading ``states`` (variable name -> token
indices of its live definitions). Loops are walked twice so a use at the top of a loop body sees the
definitions from the end of the previous iteration.

Internal record: ``(name, idx, relation, parent_names, parent_idxs)``, ``idx`` being the position of the
token in the leaf-token sequence.
"""

from __future__ import annotations

from typing import ClassVar

from codetune import languages

Edge = tuple  # (name, idx, relation, parent_names: list[str], parent_idxs: list[int])
States = dict  # name -> list[int]

COMES, COMPUTED = "comesFrom", "computedFrom"
# Literal nodes that count as one token although the grammar gives them children.
_LITERAL_LEAVES = frozenset({"string_literal", "string", "character_literal"})
_C_LITERAL_LEAVES = _LITERAL_LEAVES | {"char_literal", "raw_string_literal", "system_lib_string"}
# C/C++ leaves that name types or labels, not variables.
_C_NON_VARIABLES = frozenset(
    {"primitive_type", "type_identifier", "statement_identifier", "namespace_identifier", "auto"}
)


class _Walker:
    """Shared machinery: token table, leaf rule, variable tokens, loop merging."""

    literal_leaves = _LITERAL_LEAVES
    non_variables: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, root, code: bytes) -> None:
        self.code = code
        self.tokens: dict[tuple[int, int], tuple[int, str]] = {}
        for i, node in enumerate(self._leaves(root)):
            self.tokens[(node.start_byte, node.end_byte)] = (
                i,
                code[node.start_byte : node.end_byte].decode("utf8", errors="replace"),
            )

    def is_leaf(self, node) -> bool:
        return (node.child_count == 0 or node.type in self.literal_leaves) and node.type != "comment"

    def _leaves(self, node) -> list:
        out, stack = [], [node]
        while stack:
            cur = stack.pop()
            if self.is_leaf(cur):
                out.append(cur)
            else:
                stack.extend(reversed(cur.children))
        return out

    def token(self, node) -> tuple[int, str]:
        key = (node.start_byte, node.end_byte)
        if key not in self.tokens:
            # A node the leaf walk did not list (seen inside tree-sitter ERROR nodes of broken code): give
            # it a fresh index so it takes part like any other token instead of crashing the metric.
            self.tokens[key] = (len(self.tokens), self.code[key[0] : key[1]].decode("utf8", errors="replace"))
        return self.tokens[key]

    def variables(self, node) -> list[tuple[int, str]]:
        """(idx, text) of the leaf tokens under ``node`` that are not keywords or punctuation."""
        if node is None:
            return []
        out = []
        for leaf in self._leaves(node):
            idx, text = self.token(leaf)
            if leaf.type != text and leaf.type not in self.non_variables:
                out.append((idx, text))
        return out

    def leaf(self, node, states: States) -> tuple[list[Edge], States]:
        idx, text = self.token(node)
        if node.type == text or node.type in self.non_variables:
            return [], states
        if text in states:
            return [(text, idx, COMES, [text], list(states[text]))], states
        if node.type == "identifier":
            states[text] = [idx]
        return [(text, idx, COMES, [], [])], states

    def sequence(self, nodes, states: States) -> tuple[list[Edge], States]:
        edges: list[Edge] = []
        for child in nodes:
            out, states = self.walk(child, states)
            edges += out
        return edges, states

    def define(self, names, values, relation: str, states: States, pairwise: bool) -> list[Edge]:
        """Edges from each defined name to the value tokens; the names become live definitions.

        ``pairwise`` emits one edge per (name, value) pair (Java/JS style, merged later); otherwise one
        edge per name listing all value tokens (Python style).
        """
        edges = []
        for idx1, name in names:
            if pairwise:
                edges += [(name, idx1, relation, [v], [i]) for i, v in values]
            else:
                edges.append((name, idx1, relation, [v for _, v in values], [i for i, _ in values]))
            states[name] = [idx1]
        return edges

    @staticmethod
    def merge_states(branches: list[States]) -> States:
        merged: States = {}
        for branch in branches:
            for key, idxs in branch.items():
                merged.setdefault(key, []).extend(idxs)
        return {key: sorted(set(idxs)) for key, idxs in merged.items()}

    @staticmethod
    def merge_loop(edges: list[Edge]) -> list[Edge]:
        """Collapse the duplicate edges of a loop walked twice: union of parents, sorted by name."""
        merged: dict[tuple, list] = {}
        for name, idx, rel, pnames, pidxs in edges:
            key = (name, idx, rel)
            if key not in merged:
                merged[key] = [pnames, pidxs]
            else:
                old = merged[key]
                merged[key] = [sorted(set(old[0] + pnames)), sorted(set(old[1] + pidxs))]
        return [(k[0], k[1], k[2], v[0], v[1]) for k, v in sorted(merged.items(), key=lambda kv: kv[0][1])]

    def walk(self, node, states: States) -> tuple[list[Edge], States]:  # pragma: no cover - abstract
        raise NotImplementedError


def _by_idx(edges: list[Edge]) -> list[Edge]:
    return sorted(edges, key=lambda e: e[1])


class _PythonWalker(_Walker):
    def _sides(self, node):
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        lefts = [c for c in left.children if c.type != ","]
        rights = [c for c in right.children if c.type != ","]
        # Tuple unpacking pairs targets with values; anything else is one target, one value.
        if len(lefts) != len(rights) or not lefts:
            lefts, rights = [left], [right]
        return lefts, rights

    def _assign_pairs(self, lefts, rights, states: States) -> tuple[list[Edge], States]:
        edges, states = self.sequence(rights, states)
        for left, right in zip(lefts, rights):
            edges += self.define(self.variables(left), self.variables(right), COMPUTED, states, pairwise=False)
        return edges, states

    def walk(self, node, states: States) -> tuple[list[Edge], States]:
        states = dict(states)
        kind = node.type
        if self.is_leaf(node):
            return self.leaf(node, states)
        if kind == "default_parameter":
            name, value = node.child_by_field_name("name"), node.child_by_field_name("value")
            edges, states = self.walk(value, states)
            return _by_idx(
                edges + self.define(self.variables(name), self.variables(value), COMES, states, pairwise=True)
            ), states
        if kind in ("assignment", "augmented_assignment", "for_in_clause"):
            if kind == "for_in_clause":
                lefts, rights = [node.child_by_field_name("left")], [node.children[-1]]
            elif node.child_by_field_name("right") is None:  # annotation only: `x: int`
                return [], states
            else:
                lefts, rights = self._sides(node)
            edges, states = self._assign_pairs(lefts, rights, states)
            return _by_idx(edges), states
        if kind == "if_statement":
            edges, current, branches, has_else = [], dict(states), [], False
            for child in node.children:
                if child.type in ("elif_clause", "else_clause"):
                    has_else = has_else or "else" in child.type
                    out, branch = self.walk(child, states)
                    branches.append(branch)
                else:
                    out, current = self.walk(child, current)
                edges += out
            branches.append(current)
            if not has_else:
                branches.append(states)
            return _by_idx(edges), self.merge_states(branches)
        if kind == "for_statement":
            edges = []
            for _ in range(2):
                lefts, rights = self._sides(node)
                out, states = self._assign_pairs(lefts, rights, states)
                edges += out
                if node.children[-1].type == "block":  # upstream skips the body of a for-else
                    out, states = self.walk(node.children[-1], states)
                    edges += out
            return _by_idx(self.merge_loop(edges)), states
        if kind == "while_statement":
            edges = []
            for _ in range(2):
                out, states = self.sequence(node.children, states)
                edges += out
            return _by_idx(self.merge_loop(edges)), states
        # Comprehensions: bind the loop variable before reading the element expression.
        first = [c for c in node.children if c.type == "for_in_clause"]
        rest = [c for c in node.children if c.type != "for_in_clause"]
        edges, states = self.sequence(first + rest, states)
        return _by_idx(edges), states


class _CFamilyWalker(_Walker):
    """Java and JavaScript (reference rules) and, with overrides, C and C++ (our rules)."""

    assignment: tuple[str, ...] = ("assignment_expression",)
    declarator = "variable_declarator"
    increment = "update_expression"
    for_init = "local_variable_declaration"
    enhanced_for: ClassVar[dict[str, tuple[str, str, str]]] = {"enhanced_for_statement": ("name", "value", "body")}
    while_like: tuple[str, ...] = ("while_statement",)
    merge_entry_states = False  # JavaScript: also merge the states from before the `if`

    def declared(self, node):
        return self.variables(node.child_by_field_name("name"))

    def walk_declarator(self, node, states: States) -> tuple[list[Edge], States]:
        value = node.child_by_field_name("value")
        names = self.declared(node)
        if value is None:
            edges = [(name, idx, COMES, [], []) for idx, name in names]
            for idx, name in names:
                states[name] = [idx]
            return _by_idx(edges), states
        edges, states = self.walk(value, states)
        return _by_idx(edges + self.define(names, self.variables(value), COMES, states, pairwise=True)), states

    def walk_if(self, node, states: States) -> tuple[list[Edge], States]:
        edges, current, branches, in_else, has_else = [], dict(states), [], False, False
        for child in node.children:
            has_else = has_else or "else" in child.type
            if child.type not in ("if_statement", "else") and not in_else:
                out, current = self.walk(child, current)
            else:
                in_else = True
                out, branch = self.walk(child, states)
                branches.append(branch)
            edges += out
        branches.append(current)
        if not has_else:
            branches.append(states)
        if self.merge_entry_states:
            branches.append(states)
        return _by_idx(edges), self.merge_states(branches)

    def walk_for(self, node, states: States) -> tuple[list[Edge], States]:
        edges, states = self.sequence(node.children, states)
        after_init = False
        for child in node.children:
            if after_init:
                out, states = self.walk(child, states)
                edges += out
            elif child.type == self.for_init:
                after_init = True
        return _by_idx(self.merge_loop(edges)), states

    def walk(self, node, states: States) -> tuple[list[Edge], States]:
        states = dict(states)
        kind = node.type
        if self.is_leaf(node):
            return self.leaf(node, states)
        if kind == self.declarator:
            return self.walk_declarator(node, states)
        if kind in self.assignment:
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            edges, states = self.walk(right, states)
            return _by_idx(
                edges + self.define(self.variables(left), self.variables(right), COMPUTED, states, pairwise=True)
            ), states
        if kind == self.increment:
            tokens = self.variables(node)
            return _by_idx(self.define(tokens, tokens, COMPUTED, states, pairwise=True)), states
        if kind == "if_statement":
            return self.walk_if(node, states)
        if kind == "for_statement":
            return self.walk_for(node, states)
        if kind in self.enhanced_for:
            name_f, value_f, body_f = self.enhanced_for[kind]
            name, value, body = (node.child_by_field_name(f) for f in (name_f, value_f, body_f))
            edges = []
            for _ in range(2):
                out, states = self.walk(value, states)
                edges += out + self.define(
                    self.variables(name), self.variables(value), COMPUTED, states, pairwise=True
                )
                out, states = self.walk(body, states)
                edges += out
            return _by_idx(self.merge_loop(edges)), states
        if kind in self.while_like:
            edges = []
            for _ in range(2):
                out, states = self.sequence(node.children, states)
                edges += out
            return _by_idx(self.merge_loop(edges)), states
        edges, states = self.sequence(node.children, states)
        return _by_idx(edges), states


class _JavaWalker(_CFamilyWalker):
    pass


class _JavaScriptWalker(_CFamilyWalker):
    # Reference rule set: plain `x = y` (assignment_expression) is not an assignment rule there.
    assignment = ("assignment_pattern", "augmented_assignment_expression")
    for_init = "variable_declaration"
    enhanced_for: ClassVar[dict[str, tuple[str, str, str]]] = {}
    merge_entry_states = True


class _CWalker(_CFamilyWalker):
    """C rules (ours): declarations define the declared identifier, branches merge properly."""

    literal_leaves = _C_LITERAL_LEAVES
    non_variables = _C_NON_VARIABLES
    declarator = "init_declarator"
    enhanced_for: ClassVar[dict[str, tuple[str, str, str]]] = {}
    while_like = ("while_statement", "do_statement")

    def declared(self, node):
        # Unwrap pointer/array/reference declarators down to the declared name: `int *p[3] = ...` -> p.
        cur = node.child_by_field_name("declarator")
        while cur is not None and cur.type not in ("identifier", "field_identifier"):
            nxt = cur.child_by_field_name("declarator")
            if nxt is None:
                named = [c for c in cur.named_children if c.type in ("identifier", "field_identifier")]
                nxt = named[0] if named else None
            cur = nxt
        return self.variables(cur) if cur is not None else []

    def walk(self, node, states: States) -> tuple[list[Edge], States]:
        if node.type == "declaration":
            # `int a, b = c;`: plain declarators define without a value; init_declarators via the rule.
            states = dict(states)
            edges = []
            for child in node.children_by_field_name("declarator"):
                if child.type == self.declarator:
                    out, states = self.walk(child, states)
                    edges += out
                else:
                    wrapper = _Wrapper(child)
                    for idx, name in self.declared(wrapper):
                        edges.append((name, idx, COMES, [], []))
                        states[name] = [idx]
            return _by_idx(edges), states
        return super().walk(node, states)

    def walk_if(self, node, states: States) -> tuple[list[Edge], States]:
        # condition first; then each branch starts from the state after the condition.
        cond = node.child_by_field_name("condition")
        edges, after_cond = self.walk(cond, states) if cond is not None else ([], dict(states))
        branches = []
        for field_name in ("consequence", "alternative"):
            branch_node = node.child_by_field_name(field_name)
            if branch_node is None:
                branches.append(after_cond)
                continue
            out, branch = self.walk(branch_node, after_cond)
            edges += out
            branches.append(branch)
        return _by_idx(edges), self.merge_states(branches)

    def walk_for(self, node, states: States) -> tuple[list[Edge], States]:
        # Everything once, then all but the initializer again (the loop's second iteration).
        init = node.child_by_field_name("initializer")
        edges, states = self.sequence(node.children, states)
        rest = [c for c in node.children if init is None or c.id != init.id]
        out, states = self.sequence(rest, states)
        return _by_idx(self.merge_loop(edges + out)), states


class _CppWalker(_CWalker):
    def walk(self, node, states: States) -> tuple[list[Edge], States]:
        if node.type == "for_range_loop":
            # The loop variable may be wrapped (`auto& x`); define the declared name itself.
            decl = node.child_by_field_name("declarator")
            value, body = node.child_by_field_name("right"), node.child_by_field_name("body")
            names = self.declared(_Wrapper(decl)) if decl is not None else []
            states = dict(states)
            edges = []
            for _ in range(2):
                out, states = self.walk(value, states)
                edges += out + self.define(names, self.variables(value), COMPUTED, states, pairwise=True)
                out, states = self.walk(body, states)
                edges += out
            return _by_idx(self.merge_loop(edges)), states
        return super().walk(node, states)


class _Wrapper:
    """Presents a declarator as the `declarator` field of a parent, for `_CWalker.declared`."""

    def __init__(self, node) -> None:
        self._node = node

    def child_by_field_name(self, name: str):
        return self._node if name == "declarator" else None


def extract_dataflow(tree, code: str, language: str) -> list[tuple[str, str, list[str]]]:
    """Dataflow edges ``(variable, relation, parent_variables)`` of ``code``, in token order.

    Only nodes that take part in some edge are kept (a variable with no source and no reader is
    dropped); several edges into the same token are merged into one.
    """
    walker = languages.load(languages.get(language).codebleu.walker)(tree.root_node, code.encode("utf8"))
    try:
        edges, _ = walker.walk(tree.root_node, {})
    except RecursionError:  # pathologically deep code: no dataflow rather than a crash
        edges = []
    edges = _by_idx(edges)
    linked = {e[1] for e in edges if e[4]} | {i for e in edges for i in e[4]}
    merged: dict[int, Edge] = {}
    for name, idx, rel, pnames, pidxs in edges:
        if idx not in linked:
            continue
        if idx in merged:
            old = merged[idx]
            merged[idx] = (name, idx, rel, sorted(set(old[3] + pnames)), sorted(set(old[4] + pidxs)))
        else:
            merged[idx] = (name, idx, rel, pnames, pidxs)
    return [(e[0], e[2], list(e[3])) for e in merged.values()]
