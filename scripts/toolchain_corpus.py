#!/usr/bin/env python3
"""Generate the labelled toolchain-error corpus (tests/data/toolchain/).

Coding agents' errors come from compilers, interpreters and test runners.
This script writes many small broken programs, with varied identifiers,
types, paths and line numbers, runs the *real* tools on them, and keeps each
tool's own diagnostic line as a message. The truth label of a message is the
kind of snippet that produced it, `tool/code/template`, where `code` is the
tool's own error code where it has one (rustc `E0308`, tsc `TS2322`) or the
exception / diagnostic name (Python `KeyError`, javac `cant.resolve`); a line
is kept only if it matches the pattern the kind expects, so cascading or
unexpected diagnostics never get a wrong label.

Deterministic for a given seed and tool versions (random.Random(seed)); the
tools used for the committed corpus are listed in its README. Missing tools
are skipped with a warning, so the script still runs on a machine without,
say, javac (the committed corpus is what the tests read; they never run a
tool).

Usage: scripts/toolchain_corpus.py [--seed 20261129] [--per-kind 40]
       [--out tests/data/toolchain] [--tsc PATH]
Tools: rustc, cargo, python3 (+ pytest from PyPI), gcc, g++, javac, node,
tsc (npm package `typescript`).
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

WORDS = """account order invoice user session cart payment token cache queue job worker
report metric event record buffer stream packet route config client server request response
ledger ticket batch shard index entry item widget profile address customer vendor product
price total count limit offset cursor page result status state message handler parser
builder loader writer reader store registry channel signal timer task schedule""".split()
VERBS = """get set load save parse build compute fetch send read write update delete create
apply merge split flush reset validate encode decode render resolve register""".split()
MODULES = """billing orders auth api core util models services handlers storage net io
cache jobs metrics reports sync admin web cli db""".split()
RUST_PRELUDE = "#![allow(unused_imports)]\nuse std::collections::HashMap;\n"
RUST_TYPES = ["u8", "u16", "u32", "u64", "i32", "i64", "usize", "f32", "f64", "bool", "char",
              "String", "&str", "Vec<u8>", "Vec<String>", "Option<u32>", "Option<String>",
              "HashMap<String, u32>", "Result<(), String>", "(u32, u32)", "[u8; 4]"]
RUST_VALUES = {"u8": "1u8", "u16": "2u16", "u32": "3u32", "u64": "4u64", "i32": "-5i32",
               "i64": "6i64", "usize": "7usize", "f32": "1.5f32", "f64": "2.5f64",
               "bool": "true", "char": "'c'", "String": "String::from(\"x\")", "&str": "\"lit\"",
               "Vec<u8>": "vec![1u8]", "Vec<String>": "Vec::<String>::new()",
               "Option<u32>": "Some(1u32)", "Option<String>": "None::<String>",
               "HashMap<String, u32>": "std::collections::HashMap::<String, u32>::new()",
               "Result<(), String>": "Ok::<(), String>(())", "(u32, u32)": "(1u32, 2u32)",
               "[u8; 4]": "[0u8; 4]"}
C_TYPES = ["int", "long", "double", "char *", "unsigned int", "float", "short"]
JAVA_TYPES = ["int", "long", "double", "boolean", "String", "Integer", "Object", "char"]
TS_TYPES = ["string", "number", "boolean", "string[]", "number[]", "Date", "RegExp",
            "Map<string, number>"]
PY_MODULES = """requests_extra yamlx fastjsonlib orjsonx pydanticx numpyx torchx colorx
ruamelx httpx2 boto4 sqlalchemyx tomlx ujsonx attrsx""".split()


class Gen:
    def __init__(self, rng):
        self.rng = rng
        self.n = 0

    def uid(self):
        self.n += 1
        return self.n

    def word(self):
        return self.rng.choice(WORDS)

    def ident(self):
        self.n += 1
        parts = [self.rng.choice(VERBS), self.word()]
        if self.rng.random() < 0.4:
            parts.append(self.word())
        return "_".join(parts)

    def var(self):
        w = self.word()
        return w if self.rng.random() < 0.5 else f"{w}_{self.word()}"

    def camel(self):
        return "".join(w.capitalize() for w in (self.word(), self.word()))

    def method(self):
        v, w = self.rng.choice(VERBS), self.word()
        return v + w.capitalize()

    def pad(self):
        """Blank lines before the error, so line numbers vary."""
        return "\n" * self.rng.randint(0, 30)

    def test_path(self):
        parts = ["tests"] + [self.rng.choice(MODULES) for _ in range(self.rng.randint(0, 2))]
        return "/".join(parts + [f"test_{self.word()}_{self.word()}.py"])

    def path(self, ext, root="src"):
        parts = [root] + [self.rng.choice(MODULES) for _ in range(self.rng.randint(0, 2))]
        return "/".join(parts + [f"{self.word()}_{self.word()}.{ext}"])

    def two_distinct(self, pool):
        a = self.rng.choice(pool)
        b = self.rng.choice([t for t in pool if t != a])
        return a, b


# ---------------------------------------------------------------- kinds
# Each kind: (label, tool, expect regex, make(g) -> (relpath, source)). A kind
# is one message template as the tool prints it (its format string, plus the
# span label rustc's short format appends): lines in another template, such
# as gcc's "...; did you mean 'x'?" variant, do not match and are dropped.
# rustc prints "cannot find {kind} `{name}` in this scope" from one template,
# so its value, function and type variants share one label; likewise
# CPython's "'%.100s' object has no attribute '%U'" for None and other
# objects, and GCC's "%qT has no member named %qE" from gcc and g++.

def rust_kinds():
    def mismatched(g):
        a, b = g.two_distinct([t for t in RUST_TYPES if t in RUST_VALUES])
        return g.path("rs"), f"{RUST_PRELUDE}fn main() {{{g.pad()}    let {g.var()}: {a} = {RUST_VALUES[b]};\n}}\n"

    def unresolved_value(g):
        return g.path("rs"), f"fn main() {{{g.pad()}    let _x = {g.var()}_{g.n} + 1;\n}}\n"

    def no_method(g):
        t = g.rng.choice(["Vec<u8>", "String", "Vec<String>", "HashMap<String, u32>"])
        return g.path("rs"), (f"{RUST_PRELUDE}fn main() {{\n    let v: {t} = {RUST_VALUES[t]};{g.pad()}"
                               f"    v.{g.ident()}();\n}}\n")

    def wrong_args(g):
        f, k = g.ident(), g.rng.randint(0, 3)
        params = ", ".join(f"a{i}: u32" for i in range(k))
        args = ", ".join("1" for _ in range(k + g.rng.randint(1, 3)))
        return g.path("rs"), f"fn {f}({params}) {{}}\nfn main() {{{g.pad()}    {f}({args});\n}}\n"

    def unresolved_import(g):
        return g.path("rs"), f"use {g.word()}_{g.word()}::{g.camel()};{g.pad()}\nfn main() {{}}\n"

    def no_field(g):
        s, f = g.camel(), g.word()
        return g.path("rs"), (f"struct {s} {{ {f}: u32 }}\nfn main() {{\n    let s = {s} {{ {f}: 1 }};"
                               f"{g.pad()}    let _ = s.{f}_{g.word()};\n}}\n")

    def borrow_moved(g):
        v = g.var()
        return g.path("rs"), (f"fn take(_s: String) {{}}\nfn main() {{\n    let {v} = String::new();\n"
                               f"    take({v});{g.pad()}    take({v});\n}}\n")

    def immutable_assign(g):
        v = g.var()
        return g.path("rs"), f"fn main() {{\n    let {v} = 1;{g.pad()}    {v} = 2;\n    let _ = {v};\n}}\n"

    def undeclared_type(g):
        return g.path("rs"), f"fn main() {{{g.pad()}    let _x: {g.camel()} = todo!();\n}}\n"

    def missing_fn(g):
        return g.path("rs"), f"fn main() {{{g.pad()}    {g.ident()}_{g.n}(1);\n}}\n"

    def trait_bound(g):
        t = g.camel()
        return g.path("rs"), (f"struct {t};\nfn main() {{{g.pad()}    println!(\"{{}}\", {t});\n}}\n")

    def missing_return(g):
        f, t = g.ident(), g.rng.choice(["u32", "String", "bool", "i64", "Vec<u8>"])
        return g.path("rs"), f"fn {f}() -> {t} {{{g.pad()}    let _x = 1;\n}}\nfn main() {{ {f}(); }}\n"

    def binop(g):
        a, b = g.two_distinct(["u32", "i64", "f64", "u8", "usize", "i32"])
        return g.path("rs"), (f"fn main() {{\n    let x: {a} = 1 as {a};\n    let y: {b} = 2 as {b};"
                               f"{g.pad()}    let _z = x + y;\n}}\n")

    def unused_must(g):
        # a hard error via deny: unused variable
        v = g.var()
        return g.path("rs"), f"#![deny(unused_variables)]\nfn main() {{{g.pad()}    let {v}_{g.n} = 1;\n}}\n"

    return [
        ("rustc/E0308/mismatched-types", "rustc", r"error\[E0308\]: mismatched types: expected", mismatched),
        ("rustc/E0425/cannot-find", "rustc", r"error\[E0425\]: cannot find value", unresolved_value),
        ("rustc/E0599/no-method", "rustc", r"error\[E0599\]: no method named .*: method not found in", no_method),
        ("rustc/E0061/wrong-arg-count", "rustc", r"error\[E0061\]: this function takes", wrong_args),
        ("rustc/E0432/unresolved-import", "rustc", r"error\[E0432\]: unresolved import", unresolved_import),
        ("rustc/E0609/no-field", "rustc", r"error\[E0609\]: no field", no_field),
        ("rustc/E0382/use-after-move", "rustc", r"error\[E0382\]: use of moved value", borrow_moved),
        ("rustc/E0384/assign-twice", "rustc", r"error\[E0384\]: cannot assign twice", immutable_assign),
        ("rustc/E0425/cannot-find", "rustc", r"error\[E04(12|25)\]: cannot find type", undeclared_type),
        ("rustc/E0425/cannot-find", "rustc", r"error\[E0425\]: cannot find function", missing_fn),
        ("rustc/E0277/not-display", "rustc", r"error\[E0277\]: `.*` doesn't implement `std::fmt::Display`", trait_bound),
        ("rustc/E0308/mismatched-types", "rustc", r"error\[E0308\]: mismatched types: expected .*, found `\(\)`", missing_return),
        ("rustc/E0277/cannot-add", "rustc", r"error\[E0277\]: cannot add", binop),
        ("rustc/unused-variable", "rustc", r"error: unused variable", unused_must),
    ]


def python_kinds():
    def name_error(g):
        return g.path("py", "app"), f"{g.pad()}print({g.var()}_{g.n})\n"

    def type_add(g):
        a, b = g.two_distinct(["1", "'s'", "[1]", "None", "2.5", "{}", "(1,)", "b'x'"])
        return g.path("py", "app"), f"x = {a}{g.pad()}\ny = x + {b}\n"

    def key_error(g):
        return g.path("py", "app"), f"d = {{}}{g.pad()}\nd['{g.var()}']\n"

    def attr_none(g):
        return g.path("py", "app"), f"x = None{g.pad()}\nx.{g.ident()}()\n"

    def attr_obj(g):
        c = g.camel()
        return g.path("py", "app"), f"class {c}:\n    pass\n{g.pad()}\n{c}().{g.ident()}\n"

    def module_missing(g):
        return g.path("py", "app"), f"{g.pad()}import {g.rng.choice(PY_MODULES)}_{g.word()}\n"

    def index_error(g):
        return g.path("py", "app"), f"xs = [1, 2]{g.pad()}\nxs[{g.rng.randint(2, 99)}]\n"

    def zero_div(g):
        return g.path("py", "app"), f"{g.var()} = 0{g.pad()}\n1 / 0\n"

    def value_int(g):
        return g.path("py", "app"), f"{g.pad()}int('{g.word()}{g.rng.randint(0, 99)}x')\n"

    def file_missing(g):
        p = f"/tmp/{g.word()}/{g.word()}_{g.rng.randint(1, 999)}.json"
        return g.path("py", "app"), f"{g.pad()}open('{p}')\n"

    def missing_arg(g):
        f = g.ident()
        k = g.rng.randint(1, 3)
        params = ", ".join(g.var() + str(i) for i in range(k + 1))
        return g.path("py", "app"), f"def {f}({params}):\n    pass\n{g.pad()}\n{f}(1)\n" if k >= 1 else ""

    def too_many(g):
        f = g.ident()
        k = g.rng.randint(0, 3)
        params = ", ".join(f"a{i}" for i in range(k))
        args = ", ".join("1" for _ in range(k + g.rng.randint(1, 3)))
        return g.path("py", "app"), f"def {f}({params}):\n    pass\n{g.pad()}\n{f}({args})\n"

    def unbound(g):
        v = g.var()
        return g.path("py", "app"), f"def f():\n    print({v})\n    {v} = 1\n{g.pad()}\nf()\n"

    def not_callable(g):
        t = g.rng.choice(["1", "'s'", "[1]", "None", "2.5", "{}"])
        return g.path("py", "app"), f"{g.var()} = {t}{g.pad()}\n({t})()\n"

    def json_decode(g):
        return g.path("py", "app"), f"import json{g.pad()}\njson.loads('{g.word()} {g.rng.randint(1, 9)}')\n"

    def not_subscriptable(g):
        t = g.rng.choice(["1", "None", "2.5", "True"])
        return g.path("py", "app"), f"x = {t}{g.pad()}\nx[{g.rng.randint(0, 9)}]\n"

    def recursion(g):
        f = g.ident()
        return g.path("py", "app"), f"def {f}(n):\n    return {f}(n + 1){g.pad()}\n{f}(0)\n"

    def assertion(g):
        a = g.rng.randint(0, 50)
        return g.path("py", "app"), f"{g.pad()}assert {a} == {a + g.rng.randint(1, 9)}, 'expected {g.word()} to match'\n"

    return [
        ("python/NameError/not-defined", "python", r"^NameError: name '.*' is not defined", name_error),
        ("python/TypeError/unsupported-operand", "python", r"^TypeError: unsupported operand type\(s\) for \+", type_add),
        ("python/TypeError/can-only-concatenate", "python", r"^TypeError: can only concatenate", type_add),
        ("python/KeyError", "python", r"^KeyError: '", key_error),
        ("python/AttributeError/no-attribute", "python", r"^AttributeError: 'NoneType' object has no attribute", attr_none),
        ("python/AttributeError/no-attribute", "python", r"^AttributeError: '\w+' object has no attribute", attr_obj),
        ("python/ModuleNotFoundError", "python", r"^ModuleNotFoundError: No module named", module_missing),
        ("python/IndexError/list", "python", r"^IndexError: list index out of range", index_error),
        ("python/ZeroDivisionError", "python", r"^ZeroDivisionError: division by zero", zero_div),
        ("python/ValueError/invalid-int", "python", r"^ValueError: invalid literal for int\(\)", value_int),
        ("python/FileNotFoundError", "python", r"^FileNotFoundError: \[Errno 2\] No such file or directory", file_missing),
        ("python/TypeError/missing-args", "python", r"^TypeError: .*\(\) missing \d+ required positional argument", missing_arg),
        ("python/TypeError/too-many-args", "python", r"^TypeError: .*\(\) takes \d+ positional arguments? but \d+ (were|was) given", too_many),
        ("python/UnboundLocalError", "python", r"^UnboundLocalError: cannot access local variable", unbound),
        ("python/TypeError/not-callable", "python", r"^TypeError: '\w+' object is not callable", not_callable),
        ("python/JSONDecodeError", "python", r"^json\.decoder\.JSONDecodeError: Expecting value", json_decode),
        ("python/TypeError/not-subscriptable", "python", r"^TypeError: '\w+' object is not subscriptable", not_subscriptable),
        ("python/RecursionError", "python", r"^RecursionError: maximum recursion depth exceeded", recursion),
        ("python/AssertionError", "python", r"^AssertionError: expected", assertion),
    ]


def pytest_kinds():
    def assert_eq(g):
        f, a = g.ident(), g.rng.randint(0, 99)
        return g.test_path(), (
            f"def {f}(x):\n    return x + 1\n{g.pad()}\ndef test_{g.ident()}():\n"
            f"    assert {f}({a}) == {a + g.rng.randint(2, 9)}\n")

    def raises_key(g):
        return g.test_path(), (
            f"{g.pad()}def test_{g.ident()}():\n    d = {{}}\n    d['{g.var()}']\n")

    def import_err(g):
        return g.test_path(), (
            f"import {g.rng.choice(PY_MODULES)}_{g.word()}\n{g.pad()}def test_{g.ident()}():\n    pass\n")

    def assert_in(g):
        return g.test_path(), (
            f"{g.pad()}def test_{g.ident()}():\n    assert '{g.word()}' in ['{g.word()}x', '{g.word()}y']\n")

    return [
        ("pytest/FAILED/assert-eq", "pytest", r"^FAILED \S+::test_\w+ - assert \d+ == \d+", assert_eq),
        ("pytest/FAILED/KeyError", "pytest", r"^FAILED \S+::test_\w+ - KeyError: '", raises_key),
        ("pytest/ERROR/collection", "pytest", r"^ERROR tests/\S+\.py( - .*)?$", import_err),
        ("pytest/FAILED/assert-in", "pytest", r"^FAILED \S+::test_\w+ - AssertionError: assert '\w+' in \[", assert_in),
    ]


def c_kinds():
    def undeclared(g):
        return g.path("c"), f"int main(void) {{{g.pad()}    return {g.var()}_{g.n};\n}}\n"

    def implicit(g):
        return g.path("c"), f"int main(void) {{{g.pad()}    {g.ident()}_{g.n}(1);\n    return 0;\n}}\n"

    def no_member(g):
        s, f = g.word(), g.word()
        return g.path("c"), (f"struct {s} {{ int {f}; }};\nint main(void) {{\n    struct {s} v;{g.pad()}"
                              f"    return v.{f}_{g.word()};\n}}\n")

    def missing_header(g):
        return g.path("c"), f"#include \"{g.word()}_{g.word()}.h\"\n{g.pad()}int main(void) {{ return 0; }}\n"

    def too_few(g):
        f = g.ident()
        k = g.rng.randint(2, 4)
        params = ", ".join(f"{g.rng.choice(C_TYPES)} a{i}" for i in range(k))
        return g.path("c"), f"void {f}({params}) {{}}\nint main(void) {{{g.pad()}    {f}(1);\n    return 0;\n}}\n"

    def unknown_type(g):
        return g.path("c"), f"{g.pad()}{g.word()}_t{g.rng.randint(0, 64)} {g.var()};\nint main(void) {{ return 0; }}\n"

    def expected_semicolon(g):
        return g.path("c"), f"int main(void) {{\n    int {g.var()} = {g.rng.randint(0, 999)}{g.pad()}\n}}\n"

    def conflicting(g):
        f = g.ident()
        a, b = g.two_distinct(["int", "long", "double", "void", "char *"])
        return g.path("c"), f"{a} {f}(void);\n{g.pad()}{b} {f}(void) {{ }}\nint main(void) {{ return 0; }}\n"

    def undefined_ref(g):
        f = g.ident()
        return g.path("c"), f"void {f}_{g.n}(void);\nint main(void) {{{g.pad()}    {f}_{g.n}();\n    return 0;\n}}\n"

    return [
        ("gcc/undeclared", "gcc", r"error: '\w+' undeclared \(first use in this function\)", undeclared),
        ("gcc/implicit-function-declaration", "gcc", r"error: implicit declaration of function", implicit),
        ("gcc/no-member", "gcc", r"error: 'struct \w+' has no member named '\w+'$", no_member),
        ("gcc/missing-header", "gcc", r"fatal error: \S+\.h: No such file or directory", missing_header),
        ("gcc/too-few-arguments", "gcc", r"error: too few arguments to function", too_few),
        ("gcc/unknown-type-name", "gcc", r"error: unknown type name", unknown_type),
        ("gcc/expected-semicolon", "gcc", r"error: expected ',' or ';' before '}' token", expected_semicolon),
        ("gcc/conflicting-types", "gcc", r"error: conflicting types for", conflicting),
        ("ld/undefined-reference", "gcc", r"undefined reference to `\w+'", undefined_ref),
    ]


def cpp_kinds():
    def not_declared(g):
        return g.path("cpp"), f"int main() {{{g.pad()}    return {g.var()}_{g.n};\n}}\n"

    def no_matching(g):
        f = g.ident()
        a, b = g.two_distinct(["int", "double", "const char*", "long"])
        arg = {"int": "1", "double": "1.5", "const char*": "\"s\"", "long": "1L"}[b]
        return g.path("cpp"), (f"#include <string>\nvoid {f}({a} x);\nvoid {f}({a} x, std::string y);\n"
                                f"int main() {{{g.pad()}    {f}({arg}, {arg}, {arg});\n}}\n")

    def no_class_member(g):
        c, m = g.camel(), g.method()
        return g.path("cpp"), (f"class {c} {{ public: int {g.word()}; }};\nint main() {{\n    {c} v;{g.pad()}"
                                f"    v.{m}();\n}}\n")

    def invalid_conversion(g):
        return g.path("cpp"), f"int main() {{\n    const char* s = \"x\";{g.pad()}    int {g.var()} = s;\n}}\n"

    return [
        ("g++/not-declared-in-scope", "g++", r"error: '\w+' was not declared in this scope", not_declared),
        ("g++/no-matching-function", "g++", r"error: no matching function for call to", no_matching),
        ("gcc/no-member", "g++", r"error: '\w+' has no member named|error: 'class \w+' has no member named", no_class_member),
        ("g++/invalid-conversion", "g++", r"error: invalid conversion from 'const char\*' to 'int'", invalid_conversion),
    ]


def java_kinds():
    # The class name must match the file name, so the path is built here.
    def jpath(g, cls):
        return "/".join(["src", "main", "java"] + [g.rng.choice(MODULES) for _ in range(g.rng.randint(0, 2))] + [cls + ".java"])

    def cant_find_symbol(g):
        c = g.camel() + str(g.uid())
        return jpath(g, c), f"public class {c} {{\n  void f() {{{g.pad()}    int x = {g.var()}Value + 1;\n  }}\n}}\n"

    def incompatible(g):
        c = g.camel() + str(g.uid())
        a, b = g.two_distinct(["int", "String", "boolean", "double"])
        val = {"int": "1", "String": "\"s\"", "boolean": "true", "double": "2.5"}[b]
        return jpath(g, c), f"public class {c} {{\n  void f() {{{g.pad()}    {a} {g.var()} = {val};\n  }}\n}}\n"

    def missing_return(g):
        c = g.camel() + str(g.uid())
        t = g.rng.choice(JAVA_TYPES)
        return jpath(g, c), f"public class {c} {{\n  {t} {g.method()}() {{{g.pad()}  }}\n}}\n"

    def semicolon(g):
        c = g.camel() + str(g.uid())
        return jpath(g, c), f"public class {c} {{\n  void f() {{{g.pad()}    int {g.var()} = 1\n  }}\n}}\n"

    def uninitialized(g):
        c, v = g.camel() + str(g.uid()), g.var()
        return jpath(g, c), f"public class {c} {{\n  int f() {{\n    int {v};{g.pad()}    return {v};\n  }}\n}}\n"

    def unreported(g):
        c = g.camel() + str(g.uid())
        e = g.rng.choice(["java.io.IOException", "java.lang.InterruptedException", "java.sql.SQLException",
                          "java.util.concurrent.TimeoutException", "java.lang.CloneNotSupportedException"])
        return jpath(g, c), f"public class {c} {{\n  void f() {{{g.pad()}    throw new {e}();\n  }}\n}}\n"

    def wrong_file(g):
        c = g.camel() + str(g.uid())
        return jpath(g, c + "Impl"), f"{g.pad()}public class {c} {{\n}}\n"

    def cannot_apply(g):
        c, m = g.camel() + str(g.uid()), g.method()
        return jpath(g, c), (f"public class {c} {{\n  void {m}(int a, String b) {{}}\n  void f() {{{g.pad()}"
                             f"    {m}(1);\n  }}\n}}\n")

    return [
        ("javac/cant.resolve", "javac", r"error: cannot find symbol", cant_find_symbol),
        ("javac/prob.found.req/incompatible-types", "javac", r"error: incompatible types: \w+ cannot be converted to \w+", incompatible),
        ("javac/missing.ret.stmt", "javac", r"error: missing return statement", missing_return),
        ("javac/expected/semicolon", "javac", r"error: ';' expected", semicolon),
        ("javac/var.might.not.have.been.initialized", "javac", r"error: variable \w+ might not have been initialized", uninitialized),
        ("javac/unreported.exception", "javac", r"error: unreported exception \w+; must be caught or declared to be thrown", unreported),
        ("javac/class.public.should.be.in.file", "javac", r"error: class \w+ is public, should be declared in a file named", wrong_file),
        ("javac/cant.apply.symbol", "javac", r"error: method \w+ in class \w+ cannot be applied to given types", cannot_apply),
    ]


def node_kinds():
    def undefined_prop(g):
        return g.path("js", "lib"), f"const {g.var()} = undefined;{g.pad()}\n({g.var()}_x => undefined)().{g.word()};\n"

    def read_undefined(g):
        v = g.var()
        return g.path("js", "lib"), f"let {v};{g.pad()}\nconsole.log({v}.{g.method()});\n"

    def not_defined(g):
        return g.path("js", "lib"), f"{g.pad()}\n{g.method()}{g.n}(1);\n"

    def not_function(g):
        v = g.var()
        return g.path("js", "lib"), f"const {v} = {{}};{g.pad()}\n{v}.{g.method()}();\n"

    def missing_module(g):
        return g.path("js", "lib"), f"{g.pad()}\nrequire('{g.word()}-{g.word()}');\n"

    def json_parse(g):
        return g.path("js", "lib"), f"{g.pad()}\nJSON.parse('{g.word()}');\n"

    def const_assign(g):
        v = g.var()
        return g.path("js", "lib"), f"const {v} = 1;{g.pad()}\n{v} = 2;\n"

    def stack(g):
        f = g.method()
        return g.path("js", "lib"), f"function {f}(n) {{ return {f}(n + 1); }}{g.pad()}\n{f}(0);\n"

    return [
        ("node/TypeError/read-properties-of-undefined", "node", r"^TypeError: Cannot read properties of undefined \(reading '\w+'\)", undefined_prop),
        ("node/TypeError/read-properties-of-undefined", "node", r"^TypeError: Cannot read properties of undefined \(reading '\w+'\)", read_undefined),
        ("node/ReferenceError/not-defined", "node", r"^ReferenceError: \w+ is not defined", not_defined),
        ("node/TypeError/not-a-function", "node", r"^TypeError: \w+\.\w+ is not a function", not_function),
        ("node/MODULE_NOT_FOUND", "node", r"^Error: Cannot find module '", missing_module),
        ("node/SyntaxError/json", "node", r"^SyntaxError: Unexpected token '?\w'?, \"\w+\" is not valid JSON", json_parse),
        ("node/TypeError/assignment-to-constant", "node", r"^TypeError: Assignment to constant variable\.", const_assign),
        ("node/RangeError/call-stack", "node", r"^RangeError: Maximum call stack size exceeded", stack),
    ]


def ts_kinds():
    def ts2322(g):
        a, b = g.two_distinct(["string", "number", "boolean"])
        val = {"string": "'s'", "number": "1", "boolean": "true"}[b]
        return g.path("ts"), f"{g.pad()}export const {g.var()}: {a} = {val};\n"

    def ts2339(g):
        i = g.camel()
        return g.path("ts"), (f"interface {i} {{ {g.word()}: number }}\ndeclare const v: {i};{g.pad()}\n"
                              f"export const x = v.{g.method()};\n")

    def ts2304(g):
        return g.path("ts"), f"{g.pad()}export const x = {g.method()}{g.n}(1);\n"

    def ts2345(g):
        f = g.method()
        a, b = g.two_distinct(["string", "number", "boolean"])
        val = {"string": "'s'", "number": "1", "boolean": "true"}[b]
        return g.path("ts"), f"function {f}(x: {a}) {{ return x; }}{g.pad()}\nexport const y = {f}({val});\n"

    def ts2307(g):
        return g.path("ts"), f"{g.pad()}import {{ {g.method()} }} from './{g.word()}-{g.word()}';\nexport {{}};\n"

    def ts2554(g):
        f, k = g.method(), g.rng.randint(1, 3)
        params = ", ".join(f"a{i}: number" for i in range(k))
        return g.path("ts"), f"function {f}({params}) {{}}{g.pad()}\n{f}();\nexport {{}};\n"

    def ts7006(g):
        return g.path("ts"), f"{g.pad()}export function {g.method()}({g.var()}) {{ return 1; }}\n"

    def ts2551(g):
        w = g.rng.choice(["lenght", "pusj", "toUppercase", "indexof", "substr1ng", "forEch"])
        return g.path("ts"), f"const s: string[] = [];{g.pad()}\nexport const n = s.{w};\n"

    return [
        ("tsc/TS2322/not-assignable", "tsc", r"error TS2322: Type '\w+' is not assignable to type '\w+'", ts2322),
        ("tsc/TS2339/property-does-not-exist", "tsc", r"error TS2339: Property '\w+' does not exist on type '\w+'", ts2339),
        ("tsc/TS2304/cannot-find-name", "tsc", r"error TS2304: Cannot find name '\w+'", ts2304),
        ("tsc/TS2345/argument-not-assignable", "tsc", r"error TS2345: Argument of type '\w+' is not assignable to parameter of type '\w+'", ts2345),
        ("tsc/TS2307/cannot-find-module", "tsc", r"error TS2307: Cannot find module '\S+' or its corresponding type declarations", ts2307),
        ("tsc/TS2554/expected-arguments", "tsc", r"error TS2554: Expected \d+ arguments?, but got \d+", ts2554),
        ("tsc/TS7006/implicit-any", "tsc", r"error TS7006: Parameter '\w+' implicitly has an 'any' type", ts7006),
        ("tsc/TS2551/did-you-mean", "tsc", r"error TS2551: Property '\w+' does not exist on type '\w+\[\]'\. Did you mean '\w+'\?", ts2551),
    ]


def cargo_kinds():
    def bad_manifest(g):
        return f"{g.word()}-{g.word()}{g.n}/Cargo.toml", (
            f"[package]\nname = \"{g.word()}\"\nversion = \"0.1.{g.n}\"\n{g.pad()}"
            f"edition = \"20{g.rng.randint(30, 99)}\"\n")

    def missing_dep(g):
        return f"{g.word()}-{g.word()}{g.n}/Cargo.toml", (
            f"[package]\nname = \"{g.word()}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n"
            f"[lib]\npath = \"lib.rs\"\n\n[dependencies]\n"
            f"{g.word()}-{g.word()}-zz{g.n} = \"{g.rng.randint(0, 9)}.{g.rng.randint(0, 20)}\"\n")

    return [
        ("cargo/failed-to-parse-manifest", "cargo", r"^error: failed to parse manifest at `", bad_manifest),
        ("cargo/no-matching-package", "cargo", r"no matching package named `[\w-]+` found", missing_dep),
    ]


# ---------------------------------------------------------------- runners

def run(cmd, cwd, timeout=60):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "NO_COLOR": "1", "LANG": "C", "LC_ALL": "C", "COLUMNS": "1000"})
    return p.stdout + p.stderr


def single(tool, cwd, rel, args):
    if tool == "rustc":
        out = run(["rustc", "--error-format=short", "--edition=2021", "--crate-type=bin",
                   "-o", os.devnull, rel], cwd)
    elif tool == "python":
        out = run([sys.executable, rel], cwd)
    elif tool in ("gcc", "g++"):
        strict = ["-Werror=implicit-function-declaration"] if tool == "gcc" else []
        out = run([tool, "-fdiagnostics-plain-output", *strict, "-o", os.devnull, rel], cwd)
    elif tool == "node":
        out = run(["node", rel], cwd)
    elif tool == "cargo":
        out = run(["cargo", "metadata", "--offline", "--format-version", "1",
                   "--manifest-path", rel], cwd)
    else:
        raise ValueError(tool)
    return out.splitlines()


# javac reports flow errors (missing return, uninitialised variables,
# unreported exceptions) of the first class only unless told to go on.
JAVAC_FLOW = {"javac/missing.ret.stmt", "javac/var.might.not.have.been.initialized",
              "javac/unreported.exception"}


def batch(tool, cwd, rels, label, args):
    """Tools run once over many files; returns {relpath: [lines]}."""
    if tool == "javac":
        flow = ["-XDshould-stop.ifError=GENERATE"] if label in JAVAC_FLOW else []
        out = run(["javac", "-Xmaxerrs", "100000", *flow, "-d", os.path.join(cwd, "_classes")] + rels,
                  cwd, 600)
    elif tool == "tsc":
        out = run([args.tsc, "--noEmit", "--pretty", "false", "--strict", "--target", "es2020",
                   "--moduleResolution", "node", "--module", "commonjs"] + rels, cwd, 600)
    elif tool == "pytest":
        out = run([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                   "--continue-on-collection-errors",
                   "--import-mode=importlib"] + rels, cwd, 600)
    else:
        raise ValueError(tool)
    if os.environ.get("CORPUS_DEBUG"):
        print(out[:3000], file=sys.stderr)
    by_file = {r: [] for r in rels}
    for line in out.splitlines():
        for r in rels:
            if r in line:
                by_file[r].append(line)
                break
    return by_file


BATCH_TOOLS = {"javac", "tsc", "pytest"}
NEEDS = {"rustc": "rustc", "python": None, "gcc": "gcc", "g++": "g++", "node": "node",
         "cargo": "cargo", "javac": "javac", "tsc": None, "pytest": None}


def available(tool, args):
    if tool == "tsc":
        return bool(args.tsc) and os.path.exists(args.tsc)
    if tool == "pytest":
        return subprocess.run([sys.executable, "-c", "import pytest"], capture_output=True).returncode == 0
    return NEEDS[tool] is None or shutil.which(NEEDS[tool]) is not None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--per-kind", type=int, default=45)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "toolchain"))
    ap.add_argument("--tsc", default=shutil.which("tsc"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    g = Gen(rng)
    kinds = (rust_kinds() + python_kinds() + pytest_kinds() + c_kinds() + cpp_kinds()
             + java_kinds() + node_kinds() + ts_kinds() + cargo_kinds())
    samples = []  # (label, tool, expect, rel, src)
    for label, tool, expect, make in kinds:
        if not available(tool, args):
            print(f"warning: {tool} not available, skipping {label}", file=sys.stderr)
            continue
        for _ in range(args.per_kind):
            rel, src = make(g)
            if src:
                samples.append((label, tool, expect, rel, src))
    rng.shuffle(samples)
    root = tempfile.mkdtemp(prefix="achilles-corpus-")
    results = []
    try:
        used = set()
        for i, (label, tool, expect, rel, src) in enumerate(samples):
            # Unique paths: a clash gets a numbered directory.
            while rel in used:
                rel = os.path.join(os.path.dirname(rel) or ".", f"v{i}", os.path.basename(rel))
            used.add(rel)
            samples[i] = (label, tool, expect, rel, src)
            full = os.path.join(root, rel)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(src)
        by_tool = {}
        for s in samples:
            by_tool.setdefault(s[1], []).append(s)
        for tool, group in sorted(by_tool.items()):
            print(f"{tool}: {len(group)} programs", file=sys.stderr)
            if tool in BATCH_TOOLS:
                # One run per kind: javac, for one, stops at syntax errors
                # before it reports any type error in other files.
                per = []
                for label in sorted({s[0] for s in group}):
                    same = [s for s in group if s[0] == label]
                    outs = batch(tool, root, [s[3] for s in same], label, args)
                    per.extend((s, outs[s[3]]) for s in same)
            else:
                per = [(s, single(tool, root, s[3], args)) for s in group]
            for (label, _, expect, rel, _), lines in per:
                hits = [l.strip() for l in lines if re.search(expect, l)]
                if hits:
                    results.append((label, hits[0]))
                else:
                    print(f"  no '{label}' diagnostic for {rel}: {lines[:3]}", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    # Order by the shuffled sample order (already random, fixed by the seed).
    with open(os.path.join(args.out, "toolchain.messages.txt"), "w") as m, \
            open(os.path.join(args.out, "toolchain.truth.txt"), "w") as t:
        for label, line in results:
            m.write(line.replace(root + "/", "") + "\n")
            t.write(label + "\n")
    kinds_seen = len({l for l, _ in results})
    print(f"wrote {len(results)} messages of {kinds_seen} kinds to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
