// --sign-command's value, split into the argv the signing command runs with: POSIX-shell quoting
// ('…', "…", backslash), and nothing a shell would expand or run: pipes, redirections,
// $VARIABLES and `…` are refused with a hint. Whoever wants a shell writes it out:
// --sign-command 'sh -c "… | base64 -d"'.
import { OtapackError } from '../errors.js';

const SHELL_SYNTAX = /[|&;<>()$`*?[\]{}~#]/;

/**
 * Splits a command line into argv like a POSIX shell would, without expanding anything.
 * Throws a USAGE error on shell syntax that only a shell could honour.
 */
export function splitCommand(cmd: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  const shellHint = (what: string): OtapackError =>
    new OtapackError('USAGE', `--sign-command: ${what} needs a shell, and otapack runs the command without one; quote it, or ask for a shell explicitly: --sign-command 'sh -c "…"'`);
  while (i < cmd.length) {
    const c = cmd[i]!;
    if (c === "'") {
      const end = cmd.indexOf("'", i + 1);
      if (end < 0) throw new OtapackError('USAGE', '--sign-command: unterminated single quote');
      cur += cmd.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= cmd.length) throw new OtapackError('USAGE', '--sign-command: unterminated double quote');
        const d = cmd[i]!;
        if (d === '"') { i++; break; }
        if (d === '\\' && i + 1 < cmd.length && '"\\$`\n'.includes(cmd[i + 1]!)) { cur += cmd[i + 1] === '\n' ? '' : cmd[i + 1]; i += 2; continue; }
        if (d === '$' || d === '`') throw shellHint(`"${d}" inside double quotes (expansion)`);
        cur += d;
        i++;
      }
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= cmd.length) throw new OtapackError('USAGE', '--sign-command: trailing backslash');
      if (cmd[i + 1] !== '\n') { cur += cmd[i + 1]; inWord = true; }
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      i++;
    } else {
      if (SHELL_SYNTAX.test(c) && !(c === '#' && inWord) && !(c === '~' && inWord)) throw shellHint(`"${c}"`);
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) out.push(cur);
  if (out.length === 0) throw new OtapackError('USAGE', '--sign-command: empty command');
  return out;
}

