#!/usr/bin/env python3
"""Generate libpagekite's API artefacts from spec/pagekite.toml.

    python3 spec/generate.py            write every generated file
    python3 spec/generate.py --check    exit 1, naming stale files, if any
                                        file on disk differs from the spec

Outputs (paths relative to the repository root):
    c/include/pagekite.h, c/libpagekite.map, doc/API.md,
    python/pagekite/_cdef.py, python/pagekite/_enums.py, bindings/swig/pagekite.i,
    c/src/pk_names.h,
    spec/pagekite.json (the resolved spec the binding generators and the
    builds read; a copy ships in the Python package as _spec.json)

Standard library only (Python >= 3.11).  Output is deterministic: it depends
on the spec alone.  The generator never guesses: every name, type and rule
comes from the spec, and anything it does not know is an error.
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import re
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec" / "pagekite.toml"
GENERATED_BY = "spec/generate.py from spec/pagekite.toml"
MGR_TYPE = "pagekite_mgr"
WHEN_KEYS = ("before_start", "any_time", "while_running", "lifecycle")
GROUP_KEYS = ("version", "status", "kite", "flag", "log", "counter", "tls", "event", "error",
              "service")
ROLES = ("constructor", "destructor")


class SpecError(Exception):
    pass


# ---------------------------------------------------------------- loading


def load(path: Path = SPEC) -> dict:
    """Parse and validate the spec; returns the TOML data, checked."""
    with open(path, "rb") as f:
        spec = tomllib.load(f)
    validate(spec)
    return spec


def _eval_expr(expr: str, known: dict[str, int]) -> int:
    """Evaluate a constant expression made of names, ints and | & << >>."""
    ops = {ast.BitOr: operator.or_, ast.BitAnd: operator.and_,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift}

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Name):
            if node.id not in known:
                raise SpecError(f"expr {expr!r}: {node.id} is not an earlier int constant")
            return known[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise SpecError(f"expr {expr!r}: unsupported syntax")

    return ev(ast.parse(expr, mode="eval"))


def validate(spec: dict) -> None:
    def need(table: dict, keys: tuple[str, ...], what: str) -> None:
        for k in keys:
            if k not in table:
                raise SpecError(f"{what}: missing {k!r}")

    need(spec, ("library", "when", "sections", "types", "groups", "constants", "functions"), "spec")
    need(spec["library"], ("name", "version", "soname_major", "version_node", "header_guard",
                           "java_package", "java_class", "java_jni_library", "intro"), "library")
    when = [w["key"] for w in spec["when"]]
    if tuple(when) != WHEN_KEYS:
        raise SpecError(f"[[when]] keys must be exactly {WHEN_KEYS}, got {when}")
    groups = [g["key"] for g in spec["groups"]]
    if tuple(groups) != GROUP_KEYS:
        raise SpecError(f"[[groups]] keys must be exactly {GROUP_KEYS}, got {groups}")
    sections = {s["key"] for s in spec["sections"]}
    types = {t["c"]: t for t in spec["types"]}

    seen: set[str] = set()
    ints: dict[str, int] = {}
    for c in spec["constants"]:
        need(c, ("name", "group", "type", "value", "since", "doc"), f"constant {c.get('name')}")
        name = c["name"]
        if name in seen:
            raise SpecError(f"constant {name} defined twice")
        seen.add(name)
        if c["group"] not in groups:
            raise SpecError(f"constant {name}: unknown group {c['group']!r}")
        if c["type"] == "string":
            if not isinstance(c["value"], str):
                raise SpecError(f"constant {name}: string value expected")
            if "hex_digits" in c or "expr" in c:
                raise SpecError(f"constant {name}: hex_digits/expr only for ints")
        elif c["type"] == "int":
            if not isinstance(c["value"], int) or isinstance(c["value"], bool):
                raise SpecError(f"constant {name}: int value expected")
            if "expr" in c:
                if "hex_digits" in c:
                    raise SpecError(f"constant {name}: expr and hex_digits exclude each other")
                got = _eval_expr(c["expr"], ints)
                if got != c["value"]:
                    raise SpecError(f"constant {name}: expr gives {got:#x}, value is {c['value']:#x}")
            ints[name] = c["value"]
        else:
            raise SpecError(f"constant {name}: type must be string or int")

    names: dict[str, set[str]] = {k: set() for k in ("c", "java", "python", "node", "lua")}
    for fn in spec["functions"]:
        need(fn, ("c", "java", "python", "node", "lua", "section", "when", "since",
                  "summary", "doc", "returns"), f"function {fn.get('c')}")
        for k, used in names.items():
            if fn[k] in used:
                raise SpecError(f"function {fn['c']}: {k} name {fn[k]!r} used twice")
            used.add(fn[k])
        if not fn["c"].startswith("pagekite_"):
            raise SpecError(f"function {fn['c']}: C names start with pagekite_")
        if fn["section"] not in sections:
            raise SpecError(f"function {fn['c']}: unknown section {fn['section']!r}")
        if fn["when"] not in when:
            raise SpecError(f"function {fn['c']}: unknown when {fn['when']!r}")
        need(fn["returns"], ("type", "doc", "failure"), f"function {fn['c']} returns")
        rtype = fn["returns"]["type"]
        if rtype not in types:
            raise SpecError(f"function {fn['c']}: unknown return type {rtype!r}")
        role = fn.get("role")
        if role is not None and role not in ROLES:
            raise SpecError(f"function {fn['c']}: role must be one of {ROLES}")
        if (role == "constructor") != (rtype == MGR_TYPE):
            raise SpecError(f"function {fn['c']}: exactly the constructors return {MGR_TYPE}")
        args = fn.get("args", [])
        argnames = set()
        for i, a in enumerate(args):
            need(a, ("name", "type", "doc"), f"function {fn['c']} argument {i}")
            if a["type"] not in types:
                raise SpecError(f"function {fn['c']}: unknown argument type {a['type']!r}")
            if a["name"] in argnames:
                raise SpecError(f"function {fn['c']}: argument {a['name']} twice")
            argnames.add(a["name"])
            if a["type"] == MGR_TYPE and (i != 0 or a["name"] != "mgr"):
                raise SpecError(f"function {fn['c']}: the manager is always the first argument, mgr")
            validate_nullable(fn["c"], a)
        if role == "destructor" and not (args and args[0]["type"] == MGR_TYPE):
            raise SpecError(f"function {fn['c']}: a destructor takes the manager")
        lua = fn.get("idiomatic", {}).get("lua")
        if not isinstance(lua, str) or not re.fullmatch(r"(m:|pagekite\.)[a-z_]+|raw only", lua):
            raise SpecError(f"function {fn['c']}: idiomatic = {{ lua = \"m:NAME\" | "
                            "\"pagekite.NAME\" | \"raw only\" }} is required")
    validate_structs(spec, types)
    for g in spec["groups"]:
        prefix = g.get("enum_prefix")
        if "python_enum" in g and prefix is None:
            raise SpecError(f"group {g['key']}: python_enum needs enum_prefix")
        if prefix is not None and not enum_members(spec, g):
            raise SpecError(f"group {g['key']}: no constant starts with {prefix}")


# "NULL" as a value of the argument, not "NULL-terminated" (a char ** list).
_MENTIONS_NULL = re.compile(r"\bNULL\b(?!-terminated)")


def validate_nullable(fname: str, a: dict) -> None:
    """nullable = true exactly where the argument's doc says what NULL means.
    The manager is the exception: every call takes a NULL one (and fails with
    its failure value, as the intro says), so it carries no flag."""
    flag = a.get("nullable", False)
    if a["type"] == MGR_TYPE:
        if "nullable" in a:
            raise SpecError(f"function {fname}: the manager is always nullable; no flag")
        return
    if not isinstance(flag, bool):
        raise SpecError(f"function {fname} argument {a['name']}: nullable is true or false")
    if flag and not a["type"].endswith("*"):
        raise SpecError(f"function {fname} argument {a['name']}: only pointer arguments "
                        "can be nullable")
    said = bool(_MENTIONS_NULL.search(a["doc"]))
    if said and not flag:
        raise SpecError(f"function {fname} argument {a['name']}: its doc mentions NULL but is "
                        "not nullable (add nullable = true, or reword the doc)")
    if flag and not said:
        raise SpecError(f"function {fname} argument {a['name']}: nullable but its doc does not "
                        "say what NULL means")


def enum_members(spec: dict, group: dict) -> dict[str, int]:
    """SHORT_NAME -> value for an enum group (enum_prefix), in spec order."""
    prefix = group.get("enum_prefix")
    if prefix is None:
        return {}
    return {c["name"].removeprefix(prefix): c["value"] for c in spec["constants"]
            if c["group"] == group["key"] and c["name"].startswith(prefix)
            and c.get("enum_member", True)}


FIELD_TYPES = ("int", "long long", "char")


def validate_structs(spec: dict, types: dict) -> None:
    """[[structs]]: versioned structs the API fills; fields of FIELD_TYPES
    (char only as a fixed array), the first one "version"; each struct has a
    "NAME *" entry in [[types]]."""
    for st in spec.get("structs", []):
        for k in ("c", "since", "init", "summary", "doc", "fields"):
            if k not in st:
                raise SpecError(f"struct {st.get('c')}: missing {k!r}")
        if f"{st['c']} *" not in types:
            raise SpecError(f"struct {st['c']}: no [[types]] entry for '{st['c']} *'")
        fields = st["fields"]
        if not fields or fields[0]["name"] != "version" or fields[0]["type"] != "int":
            raise SpecError(f"struct {st['c']}: the first field is 'int version'")
        seen = set()
        for f in fields:
            for k in ("name", "type", "doc"):
                if k not in f:
                    raise SpecError(f"struct {st['c']} field {f.get('name')}: missing {k!r}")
            if f["name"] in seen:
                raise SpecError(f"struct {st['c']}: field {f['name']} twice")
            seen.add(f["name"])
            if f["type"] not in FIELD_TYPES:
                raise SpecError(f"struct {st['c']} field {f['name']}: type must be {FIELD_TYPES}")
            if (f["type"] == "char") != ("array" in f):
                raise SpecError(f"struct {st['c']} field {f['name']}: char fields, and only "
                                "they, are fixed arrays (array = N)")


def c_struct(st: dict, comments: bool = True) -> list[str]:
    """typedef struct NAME { ... } NAME; with one line per field."""
    out = [f"typedef struct {st['c']} {{"]
    for f in st["fields"]:
        decl = f"{f['type']} {f['name']}" + (f"[{f['array']}]" if "array" in f else "") + ";"
        note = " ".join(f["doc"].split()).replace("*/", "* /")
        out.append(f"  {decl} /* {note} */" if comments else f"  {decl}")
    out.append(f"}} {st['c']};")
    return out


# ---------------------------------------------------------------- helpers


def takes_mgr(fn: dict) -> bool:
    args = fn.get("args", [])
    return bool(args) and args[0]["type"] == MGR_TYPE


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def c_decl(ctype: str, name: str) -> str:
    """'char *' + 'x' -> 'char *x'; 'int' + 'x' -> 'int x'."""
    return f"{ctype}{name}" if ctype.endswith("*") else f"{ctype} {name}"


def c_string(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{out}"'


def int_literal(c: dict) -> str:
    if "expr" in c:
        return f"({c['expr']})"
    if "hex_digits" in c:
        return f"0x{c['value']:0{c['hex_digits']}x}"
    return str(c["value"])


def paragraphs(text: str) -> list[str]:
    """Split doc text into paragraphs, each folded onto one line."""
    return [" ".join(p.split()) for p in text.strip().split("\n\n") if p.strip()]


def wrap_comment(text: str, indent: str = "", width: int = 80) -> list[str]:
    """Doc text as ' * ' comment lines (no opening/closing)."""
    lines: list[str] = []
    for i, para in enumerate(paragraphs(text)):
        if i:
            lines.append(f"{indent} *")
        for ln in textwrap.wrap(para, width - len(indent) - 3, break_on_hyphens=False):
            lines.append(f"{indent} * {ln}")
    return lines


def pack_call(head: str, items: list[str], tail: str, width: int = 100) -> list[str]:
    """head(item, item, ...)tail, wrapped with continuation under the '('."""
    if not items:
        return [f"{head}(void){tail}"]
    pad = " " * (len(head) + 1)
    lines: list[str] = []
    cur = f"{head}("
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else f"){tail}")
        if len(cur) + len(piece.rstrip()) > width and cur.strip() not in (f"{head}(",):
            lines.append(cur.rstrip())
            cur = pad
        cur += piece
    lines.append(cur.rstrip())
    return lines


def by_key(items: list[dict]) -> dict[str, dict]:
    return {i["key"]: i for i in items}


def types_of(spec: dict) -> dict[str, dict]:
    return {t["c"]: t for t in spec["types"]}


def c_signature(fn: dict, export: str = "") -> list[str]:
    head = f"{export}{c_decl(fn['returns']['type'], fn['c'])}"
    items = [c_decl(a["type"], a["name"]) for a in fn.get("args", [])]
    return pack_call(head, items, ";")


def java_args(fn: dict, spec: dict) -> list[tuple[str, str]]:
    types = types_of(spec)
    return [(types[a["type"]]["java"], camel(a["name"]))
            for a in fn.get("args", []) if a["type"] != MGR_TYPE]


def java_signature(fn: dict, spec: dict) -> str:
    rtype = types_of(spec)[fn["returns"]["type"]]["java"]
    args = ", ".join(f"{t} {n}" for t, n in java_args(fn, spec))
    return f"{rtype} {fn['java']}({args})"


# ---------------------------------------------------------------- pagekite.h

EXPORT_MACRO = """\
#if defined(_WIN32)
#define PK_EXPORT __declspec(dllimport)
#elif defined(__GNUC__)
#define PK_EXPORT __attribute__((visibility("default")))
#else
#define PK_EXPORT
#endif"""


def gen_header(spec: dict) -> str:
    lib = spec["library"]
    when = by_key(spec["when"])
    guard = lib["header_guard"]
    out = [
        "/* pagekite.h - public interface of libpagekite (reborn).",
        " *",
        f" * GENERATED by {GENERATED_BY}:",
        " * edit the spec and regenerate, never this file.  The reference manual is",
        " * doc/API.md; the ABI policy is doc/ABI.md.",
        " *",
        *wrap_comment(lib["intro"]),
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        EXPORT_MACRO,
    ]
    for group in spec["groups"]:
        out += ["", f"/* ---- {group['title']} ---- */", *_comment_block(group["doc"]), ""]
        for c in spec["constants"]:
            if c["group"] != group["key"]:
                continue
            out += _comment_block(c["doc"], single_ok=True)
            value = c_string(c["value"]) if c["type"] == "string" else int_literal(c)
            note = f" /* {c['note']} */" if "note" in c else ""
            out.append(f"#define {c['name']} {value}{note}")
    out += ["", "/* Opaque manager handle. */", f"typedef struct pagekite_manager *{MGR_TYPE};"]
    for st in spec.get("structs", []):
        out += ["", *_comment_block(st["summary"] + "\n\n" + st["doc"]), *c_struct(st)]
        first = st["fields"][0]["name"]
        ver = _version_const(spec, st)
        out += [f"/* Initializer: {st['c']} ev = {st['init']}; */", "#ifdef __cplusplus",
                f"#define {st['init']} {{{ver}}}", "#else",
                f"#define {st['init']} {{.version = {ver}}}", "#endif"]
    for section in spec["sections"]:
        out += ["", f"/* ---- {section['title']} ---- */"]
        for fn in spec["functions"]:
            if fn["section"] != section["key"]:
                continue
            out.append("")
            out += _function_comment(fn, when)
            out += c_signature(fn, "PK_EXPORT ")
    out += ["", "#ifdef __cplusplus", "}", "#endif", f"#endif /* {guard} */", ""]
    return "\n".join(out)


def _version_const(spec: dict, st: dict) -> str:
    """The PK_*_VERSION constant of a struct (its init names the struct)."""
    want = st["init"].removeprefix("PAGEKITE_").removesuffix("_INIT")
    name = f"PK_{want}_VERSION"
    if not any(c["name"] == name for c in spec["constants"]):
        raise SpecError(f"struct {st['c']}: no constant {name}")
    return name


def _comment_block(text: str, single_ok: bool = True) -> list[str]:
    paras = paragraphs(text)
    if single_ok and len(paras) == 1 and len(paras[0]) + 6 <= 80:
        return [f"/* {paras[0]} */"]
    body = wrap_comment(text)
    return ["/* " + body[0][3:], *body[1:], " */"]


def _function_comment(fn: dict, when: dict) -> list[str]:
    ret = fn["returns"]
    lines = [f"/* {fn['summary']}", " *"]
    lines += wrap_comment(fn["doc"])
    args = fn.get("args", [])
    if args:
        lines.append(" *")
        width = max(len(a["name"]) for a in args)
        for a in args:
            first, *more = textwrap.wrap(a["doc"], 80 - 6 - width - 2) or [""]
            lines.append(f" *   {a['name']:<{width}}  {first}".rstrip())
            lines += [f" *   {'':<{width}}  {m}" for m in more]
    lines.append(" *")
    rdoc = f"Returns: {ret['doc']}"
    if ret["failure"]:
        rdoc += f"  On failure: {ret['failure']}."
    if "ownership" in ret:
        rdoc += f"  Owner: {ret['ownership']}."
    lines += wrap_comment(rdoc)
    lines += wrap_comment(f"Call {when[fn['when']]['short']}.  Since {fn['since']}.")
    lines.append(" */")
    return lines


# ---------------------------------------------------------------- libpagekite.map


def gen_map(spec: dict) -> str:
    node = spec["library"]["version_node"]
    names = sorted(fn["c"] for fn in spec["functions"])
    body = "".join(f"    {n};\n" for n in names)
    return (f"/* GENERATED by {GENERATED_BY}: exported symbols. */\n"
            f"{node} {{\n  global:\n{body}  local: *;\n}};\n")


# ---------------------------------------------------------------- _cdef.py


def gen_cdef(spec: dict) -> str:
    lines = []
    for c in spec["constants"]:
        if c["type"] == "int":
            lines.append(f"#define {c['name']} ...")
    lines.append(f"typedef struct pagekite_manager *{MGR_TYPE};")
    for st in spec.get("structs", []):
        lines += c_struct(st, comments=False)
    for fn in spec["functions"]:
        items = [c_decl(a["type"], a["name"]) for a in fn.get("args", [])] or ["void"]
        lines.append(f"{c_decl(fn['returns']['type'], fn['c'])}({', '.join(items)});")
    cdef = "\n".join(lines)
    strings = "".join(f"    {c['name']!r}: {c['value']!r},\n"
                      for c in spec["constants"] if c["type"] == "string")
    ints = "".join(f"    {c['name']!r}: {int_literal(c) if 'hex_digits' in c else c['value']},\n"
                   for c in spec["constants"] if c["type"] == "int")
    funcs = "".join(f"    {fn['python']!r}: {fn['c']!r},\n" for fn in spec["functions"])
    return (
        f'"""cffi declarations of libpagekite.\n\nGENERATED by {GENERATED_BY}:\n'
        "edit the spec and regenerate, never this file.\n\n"
        "CDEF          for ffibuilder.cdef() (API mode: the int #defines are '...').\n"
        "CONSTANTS     string constants (cffi cannot take string #defines).\n"
        "INT_CONSTANTS int constants with their values (for ABI mode or checks).\n"
        "FUNCTIONS     Python name -> C function name.\n"
        '"""\n\n'
        f"VERSION = {spec['library']['version']!r}\n\n"
        f'CDEF = """\n{cdef}\n"""\n\n'
        f"CONSTANTS = {{\n{strings}}}\n\n"
        f"INT_CONSTANTS = {{\n{ints}}}\n\n"
        f"FUNCTIONS = {{\n{funcs}}}\n"
    )


# ---------------------------------------------------------------- SWIG (Java)


def _glue_name(fn: dict) -> str:
    return "pkj_" + fn["c"].removeprefix("pagekite_")


def _java_doc(fn: dict, spec: dict, when: dict) -> str:
    lines = ["/**", f" * {fn['summary']}", " *"]
    lines += [" * " + ln[3:] if ln.startswith(" * ") else " *"
              for ln in wrap_comment(fn["doc"])]
    lines.append(" * <p>" + f"Call {when[fn['when']]['short']}.  Since {fn['since']}.  "
                 f"C: {fn['c']}().")
    jnames = dict(zip([a["name"] for a in fn.get("args", []) if a["type"] != MGR_TYPE],
                      [n for _, n in java_args(fn, spec)]))
    for a in fn.get("args", []):
        if a["type"] != MGR_TYPE:
            lines.append(f" * @param {jnames[a['name']]} {a['doc']}")
    ret = fn["returns"]
    if ret["type"] == MGR_TYPE:
        lines.append(" * @return true on success (the process-wide manager is set), false otherwise")
    elif ret["type"] != "void":
        rdoc = ret["doc"] + (f" On failure: {ret['failure']}." if ret["failure"] else "")
        lines.append(f" * @return {rdoc}")
    lines.append(" */")
    text = "\n  ".join(lines)
    return text.replace("\\", "\\\\").replace('"', '\\"')


def gen_swig(spec: dict) -> str:
    lib = spec["library"]
    when = by_key(spec["when"])
    glue: list[str] = []
    decls: list[str] = []
    for fn in spec["functions"]:
        g = _glue_name(fn)
        args = fn.get("args", [])
        own = [a for a in args if a["type"] != MGR_TYPE]
        params = [c_decl(a["type"], a["name"]) for a in own] or ["void"]
        call_args = ", ".join((["pkj_mgr"] if takes_mgr(fn) else []) + [a["name"] for a in own])
        call = f"{fn['c']}({call_args})"
        rtype = fn["returns"]["type"]
        role = fn.get("role")
        if role == "constructor":
            glue += pack_call(f"static bool {g}", params, " {", 80)
            glue += ["  if (pkj_mgr != NULL)",
                     "    return false; /* one manager per process: free() it first */",
                     f"  pkj_mgr = {call};", "  return pkj_mgr != NULL;", "}"]
        elif role == "destructor":
            glue += pack_call(f"static {c_decl(rtype, g)}", params, " {", 80)
            glue += [f"  {c_decl(rtype, 'rc')} = {call};",
                     "  if (rc == 0)", "    pkj_mgr = NULL;", "  return rc;", "}"]
        elif rtype == "void":
            glue += pack_call(f"static void {g}", params, " {", 80)
            glue += [f"  {call};", "}"]
        else:
            glue += pack_call(f"static {c_decl(rtype, g)}", params, " {", 80)
            glue += [f"  return {call};", "}"]
        glue.append("")
        swig_ret = "bool" if role == "constructor" else rtype
        jparams = [c_decl(a["type"], camel(a["name"])) for a in own] or ["void"]
        decls.append(f'%javamethodmodifiers {g} "{_java_doc(fn, spec, when)}\n  public";')
        decls.append(f"%rename({fn['java']}) {g};")
        decls += pack_call(c_decl(swig_ret, g), jparams, ";", 100)
        decls.append("")
    consts: list[str] = []
    for c in spec["constants"]:
        doc = " ".join(c["doc"].split()).replace("*/", "* /")
        consts.append(f"/* {doc} */")
        if c["type"] == "string":
            consts.append(f"%constant const char *{c['name']} = {c_string(c['value'])};")
        else:
            width = c.get("hex_digits")
            value = f"0x{c['value']:0{width}x}" if width else (
                f"0x{c['value']:06x}" if "expr" in c else str(c["value"]))
            consts.append(f"%constant int {c['name']} = {value};")
    # Types SWIG cannot map by itself (char **) name a typemap to apply.
    applies: list[str] = []
    for t in spec["types"]:
        if "swig_apply" in t:
            if not applies:
                applies.append("%include <various.i>")
            applies.append(f"%apply {t['swig_apply']} {{ {t['c']} }};")
    if applies:
        applies.append("")
    jni = lib["java_jni_library"]
    prop = f"{lib['java_package']}.jni"
    return "\n".join([
        f"/* pagekite.i - SWIG interface for the Java binding {lib['java_package']}.{lib['java_class']}.",
        " *",
        f" * GENERATED by {GENERATED_BY}:",
        " * edit the spec and regenerate, never this file.",
        " *",
        f" * swig -java -package {lib['java_package']} -outdir DIR -o pagekite_wrap.c pagekite.i",
        " *",
        " * As in the original JNI binding, the Java methods are static and take no",
        " * manager: the C glue below holds one process-wide manager, set by the init",
        " * calls and cleared by a successful free().  The glue is not synchronized:",
        " * call init and free from one thread.",
        " */",
        f"%module {lib['java_class']}",
        "",
        "%{",
        "#include <stdbool.h>",
        "#include <stddef.h>",
        "",
        '#include "pagekite.h"',
        "",
        "/* The process-wide manager behind the static PageKiteAPI methods. */",
        f"static {MGR_TYPE} pkj_mgr = NULL;",
        "",
        *glue,
        "%}",
        "",
        "/* Load the JNI library when the class is first used: NativeLoader",
        " * (bindings/java/src) takes the path in the system property",
        f" * {prop} if set, else the natives bundled in the jar, else",
        f" * lib{jni} (and libpagekite beside it) from java.library.path. */",
        "%pragma(java) jniclasscode=%{",
        "  static {",
        f'    NativeLoader.load("{jni}");',
        "  }",
        "%}",
        "",
        f'%pragma(java) moduleclassmodifiers="/** libpagekite for Java; see doc/API.md. */\\npublic final class"',
        "",
        "/* ---- Constants (compile-time constants in Java) ---- */",
        "%javaconst(1);",
        *consts,
        "",
        "/* ---- Structs (Java classes with getters and setters) ---- */",
        *[ln for st in spec.get("structs", []) for ln in c_struct(st, comments=False)],
        "",
        "/* ---- Functions ---- */",
        *applies,
        *decls,
    ])


# ---------------------------------------------------------------- doc/API.md


def _md(text: str) -> str:
    """Prose for Markdown: '*' (PK_LOG_*) and '|' (tables) taken literally."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|")


def gen_api_md(spec: dict) -> str:
    lib = spec["library"]
    when = by_key(spec["when"])
    types = types_of(spec)
    jclass = lib["java_class"]
    out = [
        f"# {lib['name']} API reference ({lib['version']})",
        "",
        f"<!-- GENERATED by {GENERATED_BY}: edit the spec and regenerate. -->",
        "",
        *[_md(p) + "\n" for p in paragraphs(lib["intro"])],
        "Every call is listed with its C declaration (`#include <pagekite.h>`,",
        "link with `-lpagekite`) and its name in each binding: Java",
        f"(`{lib['java_package']}.{jclass}`, static methods over one process-wide",
        "manager, so the `mgr` argument is implicit), Python, Node and Lua.  For",
        "Python, Node and Lua the idiomatic name comes first where that layer has",
        "one (a method of `pagekite.Connector` / `Relay`, of Node's `Connector` /",
        "`Relay` (`Manager` for both), `m:method` on a Lua `pagekite.connector{}` /",
        "`pagekite.relay{}` object), then the raw function, one per C call:",
        "`pagekite.api.*` (snake_case), Node's `binding.*` (camelCase) and",
        "`pagekite.raw.*` (snake_case).  The ABI policy is in [ABI.md](ABI.md).",
        "",
        "## Contents",
        "",
        "- [Calling rules](#calling-rules)",
        "- [Constants](#constants)",
    ]
    for s in spec["sections"]:
        out.append(f"- [{s['title']}](#{_anchor(s['title'])})")
    out += ["- [Names in each binding](#names-in-each-binding)", "", "## Calling rules", ""]
    out += ["The manager runs its event loop on one master thread, started by",
            "`pagekite_thread_start()`.  Each call belongs to one of these classes:", ""]
    for w in spec["when"]:
        fns = [f"`{f['c']}`" for f in spec["functions"] if f["when"] == w["key"]]
        out += [f"### {w['title']}", "", *[_md(p) + "\n" for p in paragraphs(w["doc"])],
                "Calls: " + ", ".join(fns) + ".", ""]
    out += ["On failure a call returns the failure value listed with it and records a",
            "reason: `pagekite_last_error()` returns it and `pagekite_last_error_code()`",
            "its kind (per thread; see [Error codes](#error-codes)), and",
            "`pagekite_perror()` prints it.  Passing a NULL manager is always safe and",
            "fails that way (`PK_EINVAL`).", "", "## Constants", ""]
    for g in spec["groups"]:
        out += [f"### {g['title']}", "", *[_md(p) + "\n" for p in paragraphs(g["doc"])],
                "| Name | Value | Since | Meaning |", "| --- | --- | --- | --- |"]
        for c in spec["constants"]:
            if c["group"] != g["key"]:
                continue
            if c["type"] == "string":
                value = f"`{c_string(c['value'])}`"
            elif "expr" in c:
                value = f"`{c['expr']}` = `0x{c['value']:06x}`"
            else:
                value = f"`{int_literal(c)}`"
            value = value.replace("|", "\\|")
            out.append(f"| `{c['name']}` | {value} | {c['since']} | "
                       f"{_md(' '.join(c['doc'].split()))} |")
        out.append("")
    for st in spec.get("structs", []):
        out += [f"### struct {st['c']}", "", f"**{_md(st['summary'])}**", "",
                *[_md(p) + "\n" for p in paragraphs(st["doc"])],
                "```c", *c_struct(st, comments=False),
                f"#define {st['init']} {{.version = {_version_const(spec, st)}}}", "```", "",
                "| Field | C type | Meaning |", "| --- | --- | --- |"]
        for f in st["fields"]:
            ctype = f"char[{f['array']}]" if "array" in f else f["type"]
            out.append(f"| `{f['name']}` | `{ctype}` | {_md(' '.join(f['doc'].split()))} |")
        out.append("")
    for s in spec["sections"]:
        out += [f"## {s['title']}", ""]
        for fn in spec["functions"]:
            if fn["section"] != s["key"]:
                continue
            out += _md_function(fn, spec, when, types)
    out += ["## Names in each binding", "",
            f"| C | Java ({jclass}) | Python | Node | Lua | Since |",
            "| --- | --- | --- | --- | --- | --- |"]
    for fn in spec["functions"]:
        out.append(f"| `{fn['c']}` | `{fn['java']}` | {_py_names(fn)} | {_node_names(fn)} "
                   f"| {_lua_names(fn)} | {fn['since']} |")
    out.append("")
    return "\n".join(out)


def _idiomatic_names(fn: dict, binding: str, raw: str) -> str:
    """The idiomatic member(s) of a Python or Node call and its raw function."""
    want = fn.get("idiomatic", {}).get(binding, "raw")
    names = [] if want == "raw" else ([want] if isinstance(want, str) else list(want))
    return ", ".join([f"`{n}`" for n in names] + [f"`{raw}`"])


def _py_names(fn: dict) -> str:
    return _idiomatic_names(fn, "python", f"pagekite.api.{fn['python']}")


def _node_names(fn: dict) -> str:
    return _idiomatic_names(fn, "node", f"binding.{fn['node']}")


def _lua_names(fn: dict) -> str:
    """The Lua raw function and, unless raw only, the idiomatic method."""
    raw = f"`pagekite.raw.{fn['lua']}`"
    lua = fn["idiomatic"]["lua"]
    return raw if lua == "raw only" else f"`{lua}`, {raw}"


def _anchor(title: str) -> str:
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return keep.replace(" ", "-")


def _md_function(fn: dict, spec: dict, when: dict, types: dict) -> list[str]:
    ret = fn["returns"]
    out = [f"### {fn['c']}", "", f"**{_md(fn['summary'])}**", "",
           f"- When: {when[fn['when']]['short']} ({when[fn['when']]['title'].lower()})",
           f"- Since: {fn['since']}",
           f"- Java: `{java_signature(fn, spec)}`; Python: {_py_names(fn)}; "
           f"Node: {_node_names(fn)}; Lua: {_lua_names(fn)}",
           "", "```c", *c_signature(fn), "```", ""]
    out += [_md(p) + "\n" for p in paragraphs(fn["doc"])]
    args = fn.get("args", [])
    if args:
        out += ["| Argument | C type | Meaning |", "| --- | --- | --- |"]
        for a in args:
            doc = a["doc"] + (" (implicit in Java)" if a["type"] == MGR_TYPE else "")
            out.append(f"| `{a['name']}` | `{a['type']}` | {_md(doc)} |")
        out.append("")
    rline = f"**Returns** `{ret['type']}`: {_md(ret['doc'])}"
    if ret["failure"]:
        rline += f"  On failure: `{ret['failure']}`."
    if "ownership" in ret:
        rline += f"  Ownership: {_md(ret['ownership'])}."
    out += [rline, ""]
    return out


# ---------------------------------------------------------------- pagekite.json

PLUGIN_SOURCE = re.compile(r"^plugins_([a-z]+)\.c$")


def core_sources(root: Path = ROOT) -> dict:
    """c/src/*.c as CMakeLists.txt, setuptools and node-gyp build them: the core
    (every file but the plugin hosts) and the plugin hosts by name, one of which
    a build adds (lua where Lua 5.4 is found, else none)."""
    src = root / "c" / "src"
    core, plugins = [], {}
    for f in sorted(src.glob("*.c")):
        m = PLUGIN_SOURCE.match(f.name)
        if m:
            plugins[m.group(1)] = f"c/src/{f.name}"
        else:
            core.append(f"c/src/{f.name}")
    if "none" not in plugins:
        raise SpecError("c/src/plugins_none.c is missing")
    return {"core": core, "plugins": plugins}


def resolve(spec: dict) -> dict:
    """The spec with everything a binding generator needs spelled out: the
    form spec/pagekite.json holds.  Readers never look at the TOML or guess
    from doc text."""
    structs = {f"{st['c']} *": st for st in spec.get("structs", [])}
    functions = []
    for fn in spec["functions"]:
        args = fn.get("args", [])
        out_args = []
        for i, a in enumerate(args):
            r = {"name": a["name"], "type": a["type"],
                 "nullable": a["type"] == MGR_TYPE or a.get("nullable", False),
                 "doc": " ".join(a["doc"].split())}
            if a["type"] in structs:
                if i + 1 >= len(args) or args[i + 1]["type"] != "int":
                    raise SpecError(f"function {fn['c']}: an out-array is followed by its int "
                                    "length")
                r["out_array"] = {"struct": structs[a["type"]]["c"], "count": args[i + 1]["name"]}
            out_args.append(r)
        functions.append({
            "c": fn["c"],
            "names": {k: fn[k] for k in ("c", "java", "python", "node", "lua")},
            "idiomatic": dict(fn["idiomatic"]),
            "section": fn["section"], "when": fn["when"], "since": fn["since"],
            "role": fn.get("role"), "takes_mgr": takes_mgr(fn),
            "summary": fn["summary"],
            "returns": {"type": fn["returns"]["type"], "failure": fn["returns"]["failure"]},
            "args": out_args,
        })
    groups = []
    for g in spec["groups"]:
        entry = {"key": g["key"], "title": g["title"],
                 "constants": [c["name"] for c in spec["constants"] if c["group"] == g["key"]]}
        if "enum_prefix" in g:
            entry["enum"] = {"prefix": g["enum_prefix"], "members": enum_members(spec, g)}
            if "python_enum" in g:
                entry["enum"]["python"] = g["python_enum"]
        groups.append(entry)
    return {
        "generated_by": GENERATED_BY,
        "library": {k: spec["library"][k] for k in ("name", "version", "soname_major")},
        "types": {t["c"]: {"java": t["java"], "python": t["python"], "doc": t["doc"]}
                  for t in spec["types"]},
        "constants": [{"name": c["name"], "group": c["group"], "type": c["type"],
                       "value": c["value"], "doc": " ".join(c["doc"].split())}
                      for c in spec["constants"]],
        "groups": groups,
        "structs": [{"c": st["c"], "init": st["init"], "summary": st["summary"],
                     "version_constant": _version_const(spec, st),
                     "fields": [{k: f[k] for k in ("name", "type", "array", "doc") if k in f}
                                for f in st["fields"]]}
                    for st in spec.get("structs", [])],
        "functions": functions,
        "sources": core_sources(),
    }


def gen_json(spec: dict) -> str:
    return json.dumps(resolve(spec), indent=1, ensure_ascii=False) + "\n"


def gen_names(spec: dict) -> str:
    """c/src/pk_names.h: X-macros over the enum groups, so that the core, the
    CLIs and the Lua module print the same names for the same codes."""
    out = ["/* pk_names.h - names of the status, kite state, counter and event codes.",
           " *",
           f" * GENERATED by {GENERATED_BY}: edit the spec and regenerate.",
           " * Not installed: for the core, the CLIs and the Lua module only.",
           " *",
           " *   #define ROW(code, NAME, name) ...",
           " *   PK_COUNTER_NAMES(ROW)",
           " */",
           "#ifndef PK_NAMES_H", "#define PK_NAMES_H", ""]
    macro = {"status": "PK_STATUS_NAMES", "kite": "PK_KITE_STATUS_NAMES",
             "counter": "PK_COUNTER_NAMES", "event": "PK_EVENT_NAMES"}
    for g in spec["groups"]:
        if g["key"] not in macro:
            continue
        rows = [f"X({g['enum_prefix']}{short}, \"{short}\", \"{short.lower()}\")"
                for short in enum_members(spec, g)]
        out.append(f"#define {macro[g['key']]}(X) \\")
        out += [f"  {r} \\" for r in rows[:-1]] + [f"  {rows[-1]}", ""]
    out += ["#endif /* PK_NAMES_H */", ""]
    return "\n".join(out)


def gen_py_enums(spec: dict) -> str:
    """python/pagekite/_enums.py: an IntEnum per group with python_enum."""
    out = ['"""IntEnums of libpagekite\'s constant groups (re-exported by pagekite).',
           "", f"GENERATED by {GENERATED_BY}:", "edit the spec and regenerate, never this file.",
           '"""', "", "import enum", ""]
    for g in spec["groups"]:
        if "python_enum" not in g:
            continue
        doc = " ".join(g["doc"].split()).removesuffix(".")
        out += ["", f"class {g['python_enum']}(enum.IntEnum):",
                f'    """{doc} ({g["enum_prefix"]}*)."""', ""]
        out += [f"    {short} = {value}" for short, value in enum_members(spec, g).items()]
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- driver

def gen_java_sources(spec: dict) -> str:
    """The Java files SWIG writes for the interface: the module's three and one
    class per struct (bindings/CMakeLists.txt includes this list)."""
    cls = spec["library"]["java_class"]
    names = [f"{cls}.java", f"{cls}JNI.java", f"{cls}Constants.java"]
    names += [f"{st['c']}.java" for st in spec.get("structs", [])]
    body = "".join(f"  ${{PK_JAVA_PACKAGE_DIR}}/{n}\n" for n in names)
    return f"# GENERATED by {GENERATED_BY}.\nset(PK_JAVA_SOURCES\n{body})\n"


OUTPUTS = {
    "bindings/swig/java_sources.cmake": gen_java_sources,
    "c/include/pagekite.h": gen_header,
    "c/libpagekite.map": gen_map,
    "doc/API.md": gen_api_md,
    "python/pagekite/_cdef.py": gen_cdef,
    "bindings/swig/pagekite.i": gen_swig,
    "spec/pagekite.json": gen_json,
    "python/pagekite/_spec.json": gen_json,
    "c/src/pk_names.h": gen_names,
    "python/pagekite/_enums.py": gen_py_enums,
}


def render(spec: dict) -> dict[str, str]:
    out = {}
    for rel, fn in OUTPUTS.items():
        text = fn(spec)
        out[rel] = text if text.endswith("\n") else text + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 naming every stale generated file")
    ap.add_argument("--spec", type=Path, default=SPEC)
    ap.add_argument("--root", type=Path, default=ROOT, help="repository root to write/check")
    opts = ap.parse_args(argv)
    try:
        spec = load(opts.spec)
    except (SpecError, tomllib.TOMLDecodeError) as e:
        print(f"generate.py: bad spec: {e}", file=sys.stderr)
        return 2
    files = render(spec)
    if opts.check:
        stale = []
        for rel, text in files.items():
            path = opts.root / rel
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(rel)
        for rel in stale:
            print(f"stale: {rel} (run python3 spec/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    for rel, text in files.items():
        path = opts.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
