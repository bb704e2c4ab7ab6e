// A Signer that hands the bytes to sign to any program (a cloud KMS CLI, a remote signing
// service client, a wrapper around an HSM) on stdin and reads the raw signature from stdout.
//
// The command line is split into argv here, with POSIX-shell quoting ('…', "…", backslash),
// and run WITHOUT a shell: pipes, redirections, $VARIABLES and `…` are refused with a hint.
// Whoever wants a shell writes it out: --sign-command 'sh -c "… | base64 -d"'.
//
// Contract (README "External signer"):
//   stdin   the DER of the CMS signed attributes (--sign-input der, default: sign it with
//           SHA-256), or their 32-byte SHA-256 digest (--sign-input sha256: sign the digest)
//   stdout  the raw signature: RSA PKCS#1 v1.5 or PSS (salt 32, MGF1-SHA-256) the size of the
//           modulus; ECDSA as DER Ecdsa-Sig-Value or r||s
//   env     OTAPACK_SIGN_INPUT=der|sha256, OTAPACK_SIGN_ALGORITHM=rsa-pkcs1-sha256|
//           rsa-pss-sha256|ecdsa-sha256, OTAPACK_SIGN_CERT_SHA256=<certificate fingerprint>;
//           otapack's own secrets ($OTAPACK_SIGNING_KEY …) are not passed on
//   exit    0; anything else is a failure and its last stderr line is reported
// Every signature is checked against the certificate before it is used.
import { basename } from 'node:path';
import { OtapackError } from '../errors.js';
import { runBinary } from '../util/tools.js';
import {
  algorithmId, maxSignatureLength, normalizeSignature, schemeFor, sha256, signatureVerifies,
  type SigScheme, type SignInput, type Signer,
} from './signer.js';
import type { CertInfo } from './x509.js';

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

export interface CommandSignerOptions {
  command: string;
  cert: CertInfo;
  chain?: CertInfo[];
  pss?: boolean;
  input?: SignInput;
  /** Extra environment for the command (the caller's environment is inherited, minus otapack's secrets). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const looksLikeText = (b: Buffer): boolean => b.length > 0 && /^[A-Za-z0-9+/=\s_-]+$/.test(b.toString('latin1'));

export class CommandSigner implements Signer {
  readonly signatureLength: number;
  readonly description: string;
  readonly kind = 'command' as const;
  readonly chain: CertInfo[];
  readonly scheme: SigScheme;
  readonly input: SignInput;
  private readonly argv: string[];

  constructor(private readonly o: CommandSignerOptions) {
    this.argv = splitCommand(o.command);
    this.chain = o.chain ?? [];
    this.input = o.input ?? 'der';
    if (o.pss && o.cert.keyType === 'ec') throw new OtapackError('KEY', '--pss needs an RSA key; this certificate has an EC key');
    this.scheme = schemeFor(o.cert, !!o.pss);
    this.signatureLength = maxSignatureLength(o.cert);
    // the program's name only: arguments may carry tokens or account names
    this.description = `signing command "${basename(this.argv[0]!)}"`;
  }

  get cert(): CertInfo {
    return this.o.cert;
  }

  async sign(data: Buffer): Promise<Buffer> {
    const where = this.description;
    const r = await runBinary(this.argv[0]!, this.argv.slice(1), {
      input: this.input === 'sha256' ? sha256(data) : data,
      cwd: this.o.cwd,
      env: {
        ...this.o.env,
        OTAPACK_SIGN_INPUT: this.input,
        OTAPACK_SIGN_ALGORITHM: algorithmId(this.scheme),
        OTAPACK_SIGN_CERT_SHA256: this.cert.fingerprint,
      },
    });
    if (r.notFound) throw new OtapackError('TOOL', `${where}: program not found (${this.argv[0]!.includes('/') ? 'no such file' : 'not on PATH'})`);
    if (r.exitCode !== 0) {
      const why = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
      const line = r.stderr.split('\n').map((l) => l.trim()).filter(Boolean).slice(-1)[0]?.slice(0, 300);
      throw new OtapackError('TOOL', `${where} failed (${why})${line ? `: ${line}` : ', no message on stderr'}`);
    }
    if (r.stdout.length === 0) throw new OtapackError('KEY', `${where} printed no signature (it must write the raw signature bytes to stdout)`);
    const sig = normalizeSignature(this.cert, this.scheme, r.stdout);
    if (!signatureVerifies(this.cert, this.scheme, data, sig)) {
      const hint = looksLikeText(r.stdout)
        ? 'its output looks like text (base64?); write the raw bytes, e.g. end the pipeline with base64 -d'
        : this.input === 'der'
          ? `wrong key for this certificate, or it signed something else (it gets the DER to hash and sign; --sign-input sha256 hands it the digest instead)`
          : 'wrong key for this certificate, or it hashed the 32-byte digest again (with --sign-input sha256 it must sign the digest as is)';
      throw new OtapackError('KEY', `${where}: the ${r.stdout.length}-byte signature it returned does not verify with the certificate ${this.cert.subject} (${algorithmId(this.scheme)}): ${hint}`);
    }
    return sig;
  }
}
