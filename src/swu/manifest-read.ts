// Reading a sw-description made by anyone: libconfig first, then JSON (the client's order), and
// the list of every artifact it references, wherever it sits (top level, board subtree,
// software collections).
import { parseLibconfig, LIMITS, type LcGroup, type LcValue } from './libconfig.js';

export interface ManifestRef {
  /** Where it sits: "software.stable.copy2.images[0]". */
  at: string;
  kind: string; // images | files | scripts
  filename?: string;
  sha256?: unknown;
  encrypted: boolean;
  ivt?: unknown;
  compressed?: string | boolean;
  type?: string;
  device?: string;
  path?: string;
  installedDirectly: boolean;
}

export interface ParsedManifest {
  syntax: 'libconfig' | 'json';
  root: LcGroup;
  software?: LcGroup;
  version?: string;
  description?: string;
  hardwareCompatibility?: string[];
  refs: ManifestRef[];
  /** Install sets found: "" for top level, "stable.copy1" … */
  sets: string[];
  bootenv: Record<string, Record<string, string>>;
}

export class ManifestError extends Error {}

const isGroup = (v: LcValue | undefined): v is LcGroup => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkDepth(v: unknown): void {
  // iterative walk: JSON.parse accepted it, but deeper than the libconfig limit is refused alike
  const stack: [unknown, number][] = [[v, 0]];
  let nodes = 0;
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (++nodes > LIMITS.nodes) throw new ManifestError(`more than ${LIMITS.nodes} values`);
    if (d > LIMITS.depth) throw new ManifestError(`nesting deeper than ${LIMITS.depth} levels`);
    if (typeof x === 'string' && x.length > LIMITS.stringBytes) throw new ManifestError(`string longer than ${LIMITS.stringBytes} characters`);
    if (x && typeof x === 'object') for (const c of Object.values(x)) stack.push([c, d + 1]);
  }
}

export function parseManifestText(text: string): { syntax: 'libconfig' | 'json'; root: LcGroup } {
  let lcErr: Error;
  try {
    return { syntax: 'libconfig', root: parseLibconfig(text) };
  } catch (e) {
    lcErr = e as Error;
  }
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      const msg = e instanceof RangeError ? 'nesting too deep' : (e as Error).message;
      throw new ManifestError(`neither libconfig nor JSON: ${msg}`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ManifestError('JSON sw-description must be an object');
    checkDepth(v);
    return { syntax: 'json', root: v as LcGroup };
  }
  throw new ManifestError(`not valid libconfig: ${lcErr.message}`);
}

const ARTIFACT_KINDS = ['images', 'files', 'scripts'];

export function readManifest(text: string): ParsedManifest {
  const { syntax, root } = parseManifestText(text);
  const software = isGroup(root.software) ? root.software : undefined;
  const out: ParsedManifest = { syntax, root, software, refs: [], sets: [], bootenv: {} };
  if (!software) return out;
  if (typeof software.version === 'string') out.version = software.version;
  if (typeof software.description === 'string') out.description = software.description;
  const findHw = (g: LcGroup): string[] | undefined => {
    const hw = g['hardware-compatibility'];
    return Array.isArray(hw) && hw.every((x) => typeof x === 'string') ? (hw as string[]) : undefined;
  };
  out.hardwareCompatibility = findHw(software);
  // walk groups breadth-first; a group holding images/files/scripts/bootenv is an install set
  const queue: [LcGroup, string][] = [[software, '']];
  let guard = 0;
  while (queue.length && guard++ < 10_000) {
    const [g, at] = queue.shift()!;
    let isSet = false;
    for (const kind of ARTIFACT_KINDS) {
      const list = g[kind];
      if (!Array.isArray(list)) continue;
      isSet = true;
      list.forEach((item, i) => {
        if (!isGroup(item)) return;
        const str = (k: string): string | undefined => (typeof item[k] === 'string' ? (item[k] as string) : undefined);
        out.refs.push({
          at: `software${at ? '.' + at : ''}.${kind}[${i}]`,
          kind,
          filename: str('filename'),
          sha256: item.sha256,
          encrypted: item.encrypted === true || item.encrypted === 'true',
          ivt: item.ivt,
          compressed: typeof item.compressed === 'boolean' ? item.compressed : str('compressed'),
          type: str('type'),
          device: str('device'),
          path: str('path'),
          installedDirectly: item['installed-directly'] === true,
        });
      });
    }
    if (Array.isArray(g.bootenv)) {
      isSet = true;
      const env: Record<string, string> = {};
      for (const e of g.bootenv) if (isGroup(e) && typeof e.name === 'string') env[e.name] = String(e.value ?? '');
      out.bootenv[at] = env;
    }
    if (isSet) out.sets.push(at);
    for (const [k, v] of Object.entries(g)) {
      if (isGroup(v) && !['properties'].includes(k)) {
        if (!out.hardwareCompatibility) out.hardwareCompatibility = findHw(v);
        queue.push([v, at ? `${at}.${k}` : k]);
      }
    }
  }
  return out;
}
