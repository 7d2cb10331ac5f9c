// The rules the header comments of web/src state, checked on the source:
// no function longer than MAX_LINES, and each module importing (and
// touching) only what its rules allow.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const MAX_LINES = 80;
// Compiled to web/build/test/; the sources are in web/src/.
const srcDir = fileURLToPath(new URL("../../src/", import.meta.url));

interface Source {
  /** Path under web/src, with "/" separators. */
  name: string;
  /** The code without its comments (which may name what the code must not use). */
  text: string;
  file: ts.SourceFile;
}

const printer = ts.createPrinter({ removeComments: true });

const sources: Source[] = (readdirSync(srcDir, { recursive: true }) as string[])
  .filter((f) => f.endsWith(".ts"))
  .map((f) => {
    const name = relative(srcDir, join(srcDir, f)).split("\\").join("/");
    const file = ts.createSourceFile(name, readFileSync(join(srcDir, f), "utf8"), ts.ScriptTarget.ES2022, true);
    return { name, text: printer.printFile(file), file };
  });

interface Fn {
  where: string;
  lines: number;
}

/** functions lists every function, method, constructor and arrow function of a file with its length in lines. */
function functions(src: Source): Fn[] {
  const out: Fn[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = src.file.getLineAndCharacterOfPosition(node.getStart(src.file)).line;
      const end = src.file.getLineAndCharacterOfPosition(node.getEnd()).line;
      const name = node.name && ts.isIdentifier(node.name) ? node.name.text : "(anonymous)";
      out.push({ where: `${src.name}:${start + 1} ${name}`, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(src.file);
  return out;
}

/** imports lists the module specifiers a file imports. */
function imports(src: Source): string[] {
  return src.file.statements.filter(ts.isImportDeclaration).map((d) => (d.moduleSpecifier as ts.StringLiteral).text);
}

test(`no function in web/src is longer than ${MAX_LINES} lines`, () => {
  assert.ok(sources.length >= 10, `found the sources in ${srcDir}`);
  const all = sources.flatMap(functions).sort((a, b) => b.lines - a.lines);
  const longest = all[0]!;
  console.log(`# ${all.length} functions; the longest: ${longest.where}, ${longest.lines} lines`);
  const tooLong = all.filter((f) => f.lines > MAX_LINES).map((f) => `${f.where}: ${f.lines} lines`);
  assert.deepEqual(tooLong, []);
});

test("state.ts, storage.ts and view/labels.ts do no I/O and import no UI or call modules", () => {
  const pure = ["state.ts", "storage.ts", "view/labels.ts", "format.ts", "messages.ts", "ports.ts"];
  for (const src of sources.filter((s) => pure.includes(s.name))) {
    for (const spec of imports(src)) {
      assert.ok(!/actions|view\/(?!labels|format)|^\.\/(page|dom)/.test(spec) && !spec.includes("@connectrpc"), `${src.name} imports ${spec}`);
    }
    assert.doesNotMatch(src.text, /\b(document|window|sessionStorage|localStorage|fetch)\b/, src.name);
  }
  const state = sources.find((s) => s.name === "state.ts")!;
  assert.deepEqual(imports(state).filter((s) => s.startsWith(".")), ["./messages.js"], "state.ts imports only messages.ts of web/src");
});

test("actions.ts never touches the DOM and never imports view/", () => {
  const actions = sources.find((s) => s.name === "actions.ts")!;
  assert.deepEqual(imports(actions).filter((s) => s.includes("view")), []);
  assert.doesNotMatch(actions.text, /\b(document|window|HTMLElement|sessionStorage|localStorage)\b/);
});

test("view/ never calls the network or storage and never changes the state", () => {
  for (const src of sources.filter((s) => s.name.startsWith("view/"))) {
    for (const spec of imports(src)) {
      assert.ok(!/actions|storage|@connectrpc/.test(spec), `${src.name} imports ${spec}`);
      if (spec === "@tokenrelay/sdk") assert.match(src.text, /import \{ formatMoney \} from "@tokenrelay\/sdk"/, `${src.name}: only formatMoney of the SDK`);
    }
    assert.doesNotMatch(src.text, /\b(sessionStorage|localStorage|fetch)\b/, src.name);
    // No assignment to the state: `s.x =`, `state.x =`, nor a transition call.
    assert.doesNotMatch(src.text, /\b(s|state)\.[a-zA-Z]+\s*=[^=]/, `${src.name} assigns to the state`);
    assert.doesNotMatch(src.text, /\b(s|state)\.(busy|errors|cart)\.(add|set|delete|clear)\(/, `${src.name} changes the state`);
  }
});

/** focusable maps each id given in view/ (h("tag", { id: "…" })) or index.html to whether its element can take the focus. */
function focusable(): Map<string, boolean> {
  const takes = (tag: string, tabindex: boolean) => tabindex || /^(a|button|input|select|textarea)$/.test(tag);
  const out = new Map<string, boolean>();
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === "h") {
      const [tag, props] = node.arguments;
      if (tag && ts.isStringLiteral(tag) && props && ts.isObjectLiteralExpression(props)) {
        const names = new Map(props.properties.filter(ts.isPropertyAssignment).map((p) => [p.name.getText().replace(/"/g, ""), p.initializer]));
        const id = names.get("id");
        if (id && ts.isStringLiteral(id)) out.set(id.text, takes(tag.text, names.has("tabindex")));
      }
    }
    ts.forEachChild(node, visit);
  };
  sources.filter((s) => s.name.startsWith("view/")).forEach((s) => visit(s.file));
  for (const [el, tag, id] of readFileSync(join(srcDir, "../index.html"), "utf8").matchAll(/<(\w+)\b[^>]*\bid="([^"]+)"[^>]*>/g)) {
    out.set(id!, takes(tag!, /\btabindex=/.test(el)));
  }
  return out;
}

test("every element actions.ts moves the focus to can take it (a heading needs tabindex -1)", () => {
  const actions = sources.find((s) => s.name === "actions.ts")!;
  const targets = new Set([...actions.text.matchAll(/\bui\.focus\("([^"]+)"\)/g)].map((m) => m[1]!));
  assert.ok(targets.has("checkout-h") && targets.has("main"), `found the focus targets: ${[...targets]}`);
  const ids = focusable();
  assert.deepEqual([...targets].filter((id) => ids.get(id) !== true), []);
});
