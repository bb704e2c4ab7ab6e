// The CLI is a client of the library: every name src/cli imports from outside src/cli is one that
// src/index.ts (the package's entry) exports from that same module. The imports name the module
// itself rather than index.js so each command still loads only what it uses (a command loading
// the whole library starts about 0.1 s later). Read from the sources with TypeScript's parser.
import { expect, test } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { ROOT } from './helpers/run.js';

const SRC = join(ROOT, 'src');
const CLI = join(SRC, 'cli');
const INDEX = join(SRC, 'index.ts');

const parse = (file: string): ts.SourceFile => ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
const resolveTs = (from: string, spec: string): string => resolve(dirname(from), spec).replace(/\.js$/, '.ts');
const tsFiles = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
  .flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

/** module (absolute .ts path) -> the names index.ts re-exports from it, by their name in that module. */
function indexExports(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of parse(INDEX).statements) {
    if (!ts.isExportDeclaration(s) || !s.moduleSpecifier || !ts.isStringLiteral(s.moduleSpecifier)) continue;
    const mod = resolveTs(INDEX, s.moduleSpecifier.text);
    const names = out.get(mod) ?? new Set<string>();
    if (!s.exportClause) names.add('*');
    else if (ts.isNamedExports(s.exportClause)) for (const e of s.exportClause.elements) names.add((e.propertyName ?? e.name).text);
    out.set(mod, names);
  }
  return out;
}

/** Every import of a library module in src/cli that index.ts does not export, as "file: name from module". */
function strayImports(): string[] {
  const exported = indexExports();
  const stray: string[] = [];
  for (const file of tsFiles(CLI)) {
    const where = relative(ROOT, file);
    const sf = parse(file);
    const check = (spec: string, names: string[] | undefined, what: string): void => {
      if (!spec.startsWith('.')) return; // packages and node: modules
      const mod = resolveTs(file, spec);
      if (mod.startsWith(CLI + '/') || mod === INDEX) return;
      const from = relative(SRC, mod);
      const ok = exported.get(mod);
      if (!names) { stray.push(`${where}: ${what} of ${from}`); return; }
      for (const n of names) if (!ok?.has(n) && !ok?.has('*')) stray.push(`${where}: ${n} from ${from}`);
    };
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
        const c = node.importClause;
        const spec = node.moduleSpecifier.text;
        if (!c) check(spec, undefined, 'a side-effect import');
        else if (c.name) check(spec, undefined, 'the default export');
        else if (c.namedBindings && ts.isNamespaceImport(c.namedBindings)) check(spec, undefined, 'the whole namespace');
        else if (c.namedBindings && ts.isNamedImports(c.namedBindings)) check(spec, c.namedBindings.elements.map((e) => (e.propertyName ?? e.name).text), '');
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        const c = node.exportClause;
        check(node.moduleSpecifier.text, c && ts.isNamedExports(c) ? c.elements.map((e) => (e.propertyName ?? e.name).text) : undefined, 'a re-export of everything');
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const arg = node.arguments[0];
        if (!arg || !ts.isStringLiteral(arg)) stray.push(`${where}: an import() of a computed module name`);
        else check(arg.text, undefined, 'a dynamic import');
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return stray;
}

test('src/cli imports from the library only names src/index.ts exports (from the same module)', () => {
  expect(tsFiles(CLI).length).toBeGreaterThan(10);
  expect(indexExports().size).toBeGreaterThan(10);
  expect(strayImports()).toEqual([]);
});
