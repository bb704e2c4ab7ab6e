// A Signer that hands the bytes to sign to any program (a cloud KMS CLI, a remote signing
// service client, a wrapper around an HSM) on stdin and reads the raw signature from stdout.
//
// The program runs from an argv, WITHOUT a shell (the CLI splits --sign-command's value into
// one: src/cli/command-line.ts).
//
// Contract (README "External signer"):
//   stdin   the DER of the CMS signed attributes (input der, the default: sign it with
//           SHA-256), or their 32-byte SHA-256 digest (input sha256: sign the digest)
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
import { optionName, type OptionNames } from './option-names.js';

export interface CommandSignerOptions {
  /** The program and its arguments. */
  command: string[];
  cert: CertInfo;
  chain?: CertInfo[];
  pss?: boolean;
  input?: SignInput;
  /** Extra environment for the command (the caller's environment is inherited, minus otapack's secrets). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** How messages name the caller's options (resolveSigner's). */
  names?: OptionNames;
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
    if (o.command.length === 0) throw new OtapackError('USAGE', `${optionName(o.names, 'signCommand')}: empty command`);
    this.argv = o.command;
    this.chain = o.chain ?? [];
    this.input = o.input ?? 'der';
    if (o.pss && o.cert.keyType === 'ec') throw new OtapackError('KEY', `${optionName(o.names, 'pss')} needs an RSA key; this certificate has an EC key`);
    this.scheme = schemeFor(o.cert, !!o.pss, o.names);
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
          ? `wrong key for this certificate, or it signed something else (it gets the DER to hash and sign; ${optionName(this.o.names, 'signInput')} sha256 hands it the digest instead)`
          : `wrong key for this certificate, or it hashed the 32-byte digest again (with ${optionName(this.o.names, 'signInput')} sha256 it must sign the digest as is)`;
      throw new OtapackError('KEY', `${where}: the ${r.stdout.length}-byte signature it returned does not verify with the certificate ${this.cert.subject} (${algorithmId(this.scheme)}): ${hint}`);
    }
    return sig;
  }
}
