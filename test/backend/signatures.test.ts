// The kernel signatures are written once (src/backend/kernels.ts); the four glue layers that restate them by position
// must agree with that table: the Backend interface, native.ts's forwarding to the addon, native/binding.cc's
// argument unpacking and native/kernels.h's C++ declarations. Parsed from the sources (TypeScript's own parser for
// the .ts files), so a kernel added or reordered in one place and not the others fails here.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { KERNELS, type KernelSignature } from '../../src/backend/kernels.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (p: string): string => readFileSync(`${ROOT}${p}`, 'utf8');
const parse = (p: string): ts.SourceFile => ts.createSourceFile(p, read(p), ts.ScriptTarget.Latest, true);
const byName = new Map(KERNELS.map((k) => [k.name, k]));
const kernel = (name: string): KernelSignature => {
  const k = byName.get(name);
  assert.ok(k !== undefined, `'${name}' is not in src/backend/kernels.ts`);
  return k;
};
const paramNames = (ps: ts.NodeArray<ts.ParameterDeclaration>): string[] => ps.map((p) => p.name.getText());

/** The methods an interface declares: name -> parameter names. */
function interfaceMethods(file: ts.SourceFile, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  file.forEachChild((n) => {
    if (!ts.isInterfaceDeclaration(n) || n.name.text !== name) return;
    for (const m of n.members) if (ts.isMethodSignature(m)) out.set(m.name.getText(), paramNames(m.parameters));
  });
  return out;
}

/** The arrow-function properties of `const name = { ... }`: name -> [parameters, callee, call arguments]. */
function forwarders(file: ts.SourceFile, name: string): Map<string, { params: string[]; callee: string; callArgs: string[] }> {
  const out = new Map<string, { params: string[]; callee: string; callArgs: string[] }>();
  const visit = (n: ts.Node): void => {
    if (ts.isVariableDeclaration(n) && n.name.getText() === name && n.initializer && ts.isObjectLiteralExpression(n.initializer)) {
      for (const p of n.initializer.properties) {
        if (!ts.isPropertyAssignment(p) || !ts.isArrowFunction(p.initializer)) continue;
        let body: ts.Node = p.initializer.body;
        // `(..) => { addon.f(..); }` as well as `(..) => addon.f(..)`
        if (ts.isBlock(body) && body.statements.length === 1 && ts.isExpressionStatement(body.statements[0]!)) body = body.statements[0].expression;
        const call = ts.isCallExpression(body) ? body : null;
        let target: ts.Expression | null = call?.expression ?? null;
        if (target !== null && ts.isNonNullExpression(target)) target = target.expression; // addon.optionalKernel!(..)
        const callee = target !== null && ts.isPropertyAccessExpression(target) ? target.name.text : '';
        out.set(p.name.getText(), { params: paramNames(p.initializer.parameters), callee, callArgs: call?.arguments.map((a) => a.getText()) ?? [] });
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(file);
  return out;
}

/** BlockedKernels members that are layout and storage helpers, not kernels of the table. */
const LAYOUT_HELPERS = new Set(['enabled', 'block', 'relayout', 'bf16Storage', 'widenBf16']);

it('the Backend interface declares every kernel of the table, with its arguments in order', () => {
  const backend = interfaceMethods(parse('src/backend/backend.ts'), 'Backend');
  const declared = [...backend.keys()].filter((k) => k !== 'supports');
  assert.deepEqual(declared.sort(), KERNELS.map((k) => k.name).sort(), 'Backend kernels vs the table');
  for (const [name, params] of backend) if (name !== 'supports') assert.deepEqual(params, kernel(name).args, `Backend.${name}`);
  // the blocked-layout variants: the same arguments, then the layout flags (batch norm: the same signature)
  const blocked = interfaceMethods(parse('src/backend/backend.ts'), 'BlockedKernels');
  for (const [name, params] of blocked) {
    if (LAYOUT_HELPERS.has(name)) continue;
    const k = kernel(name);
    assert.deepEqual(params, k.name.startsWith('conv') ? [...k.args, ...(k.flags ?? [])] : k.args, `BlockedKernels.${name}`);
  }
});

it('native.ts forwards every kernel to the addon export of the same name, arguments in the same order', () => {
  const file = parse('src/backend/native.ts');
  const fwd = forwarders(file, 'nativeBackend');
  for (const k of KERNELS) {
    const f = fwd.get(k.name);
    assert.ok(f !== undefined, `nativeBackend.${k.name} is missing`);
    assert.deepEqual(f.params, k.args, `nativeBackend.${k.name} parameters`);
    assert.equal(f.callee, k.name, `nativeBackend.${k.name} calls the addon's ${k.name}`);
    assert.deepEqual(f.callArgs.slice(0, k.args.length), [...k.args], `nativeBackend.${k.name} passes its arguments in order`);
    assert.ok(f.callArgs.length <= k.args.length + (k.flags?.length ?? 0), `nativeBackend.${k.name} passes extra arguments`);
  }
  for (const [name, f] of forwarders(file, 'blockedKernels')) {
    if (LAYOUT_HELPERS.has(name)) continue;
    const k = kernel(name);
    assert.equal(f.callee, name);
    assert.deepEqual(f.callArgs.slice(0, k.args.length), [...k.args], `blockedKernels.${name} passes its arguments in order`);
    assert.equal(f.callArgs.length, k.args.length + (k.flags?.length ?? 0), `blockedKernels.${name} passes the layout flags`);
  }
  // the addon's own declarations of the flagged kernels
  for (const [name, params] of interfaceMethods(file, 'NativeAddon')) {
    const k = byName.get(name);
    if (k !== undefined) assert.deepEqual(params, [...k.args, ...(k.flags ?? [])], `NativeAddon.${name}`);
  }
});

/** binding.cc: export name -> the (position, name) of every argument its function unpacks. */
function bindingReads(): Map<string, { i: number; name: string | null }[]> {
  const cc = read('native/binding.cc');
  const out = new Map<string, { i: number; name: string | null }[]>();
  for (const m of cc.matchAll(/add\(env, exports, "(\w+)", (js_\w+)\)/g)) {
    const start = cc.search(new RegExp(`(?:void|Napi::Value) ${m[2]!}\\(const Args& a\\) \\{`));
    assert.ok(start >= 0, `binding.cc: no function ${m[2]!} for '${m[1]!}'`);
    let depth = 0;
    let end = cc.indexOf('{', start);
    for (; end < cc.length; end++) {
      if (cc[end] === '{') depth++;
      else if (cc[end] === '}' && --depth === 0) break;
    }
    const body = cc.slice(start, end);
    out.set(m[1]!, [...body.matchAll(/\ba\.\w+\((\d+)(?:, "([^"]+)")?/g)].map((r) => ({ i: Number(r[1]), name: r[2] ?? null })));
  }
  return out;
}

it('binding.cc exports every kernel and unpacks each argument at its position in the table', () => {
  const reads = bindingReads();
  for (const k of KERNELS) {
    const r = reads.get(k.name);
    assert.ok(r !== undefined, `binding.cc does not export '${k.name}'`);
    const width = k.args.length + (k.flags?.length ?? 0);
    for (const { i, name } of r) {
      assert.ok(i < width, `binding.cc '${k.name}' reads argument ${i}; the table has ${width}`);
      if (name !== null && i < k.args.length && !/ op$/.test(name)) {
        assert.equal(name, k.args[i], `binding.cc '${k.name}' unpacks argument ${i} as '${name}'; the table says '${k.args[i]}'`);
      }
    }
    const named = new Set(r.filter((x) => x.name !== null).map((x) => x.i));
    for (const [i, a] of k.lists === true ? [] : k.args.entries()) {
      // every buffer and size is unpacked by name; scalars (value, p0, eps, flags) and ops by position only
      if (/^(out|x|gx|gy|a|b|idx|src|mean|invstd|rstd)$/.test(a)) assert.ok(named.has(i), `binding.cc '${k.name}' does not unpack '${a}' at ${i}`);
    }
  }
});

it('kernels.h declares every C++ entry point with the arguments in the table order', () => {
  const h = read('native/kernels.h').replace(/\/\/.*$/gm, '');
  const decls = new Map<string, string[]>();
  for (const m of h.matchAll(/\n(?:void|bool) (\w+)\(([^;{]*?)\);/g)) {
    decls.set(m[1]!, m[2]!.split(',').map((p) => p.trim().replace(/\s*=.*$/s, '').split(/[\s*&]+/).pop()!).filter((p) => p !== ''));
  }
  for (const k of KERNELS) {
    if (k.cpp === null) continue;
    const d = decls.get(k.cpp);
    assert.ok(d !== undefined, `kernels.h does not declare ${k.cpp} (${k.name})`);
    assert.deepEqual(d, [...(k.cppArgs ?? k.args)], `kernels.h ${k.cpp}`);
  }
});
