// otapack command line. Parses options and dispatches; each command's module is loaded only when
// that command runs, so `otapack --help` and small verifies start fast.
import { Command, Option, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { installSignalHandlers, runAction, setDebug, setJsonMode, printJsonError } from './run.js';
import { setTask } from '../util/cleanup.js';
import { EXIT_CODES, EXIT_OK } from './exit-codes.js';
import { KEY_TYPES, CERT_PURPOSES, SIGN_INPUTS, MANIFEST_FORMATS, CPIO_FORMATS, DELTA_METHODS, CLIENT_IDS } from './choices.js';
import type { OptionValues } from './options.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const VERSION_REQUESTED = 'otapack.version';

const program = new Command()
  .name('otapack')
  .description('Turn embedded-Linux disk images into A/B disks and signed SWUpdate bundles, without root.')
  // not commander's .version(): ours also reports the codec engine and the external tools (lazily)
  .addOption(new Option('-V, --version', 'print the version, the gzip codec engine and the external tools found, with their versions'))
  .on('option:version', () => {
    throw new CommanderError(EXIT_OK, VERSION_REQUESTED, '(version)');
  })
  .option('--debug', 'show stack traces and tool details on errors')
  .option('-q, --quiet', 'print only warnings and errors')
  .showHelpAfterError('(run otapack --help for usage)')
  // the parser's message on one line ("unknown option '--ouput' (Did you mean --output?)");
  // set before the commands are added, which copy it
  .configureOutput({ outputError: (str, write) => write(str.replace(/\n(?=.)/g, ' ')) })
  .exitOverride()
  .hook('preAction', (cmd, action) => {
    setDebug(!!cmd.optsWithGlobals().debug);
    checkRequired(action);
  });

// commander checks mandatory options before unknown ones, so a typo (`--ouput x`) would be
// reported as a missing --output instead of "unknown option '--ouput' (Did you mean --output?)".
// Required options are plain options checked here, once the parser has refused unknown ones.
const required = new Set<Option>();
function requiredOption(flags: string, description: string): Option {
  const o = new Option(flags, description);
  required.add(o);
  return o;
}
function checkRequired(cmd: Command): void {
  for (const o of cmd.options) {
    if (required.has(o) && cmd.getOptionValue(o.attributeName()) === undefined) {
      cmd.error(`error: required option '${o.flags}' not specified`, { code: 'commander.missingMandatoryOptionValue', exitCode: EXIT_CODES.USAGE });
    }
  }
}

/** A command module: its typed options, built from the parse, and what it does with them. */
interface CommandModule<O> {
  options(args: string[], opts: OptionValues): O;
  run(o: O): Promise<number>;
}

/** The action of a command whose module is loaded only when it runs. */
const lazy = <O>(name: string, load: () => Promise<CommandModule<O>>) => async (...actionArgs: unknown[]): Promise<void> => {
  const cmd = actionArgs[actionArgs.length - 1];
  if (!(cmd instanceof Command)) throw new Error('commander did not pass the command to its action');
  const opts = cmd.optsWithGlobals();
  const args = cmd.processedArgs.filter((a): a is string => typeof a === 'string');
  setTask(`otapack ${name} (starting)`);
  await runAction(async () => {
    const m = await load();
    return m.run(m.options(args, opts));
  }, { json: !!opts.json });
};

const signingOptions = (c: Command): Command =>
  c
    .option('--key <file|uri>', 'signing private key, PEM or DER, or a pkcs11: URI (or $OTAPACK_SIGNING_KEY; passphrase in $OTAPACK_KEY_PASSPHRASE)')
    .option('--cert <file>', 'signing certificate, PEM (or $OTAPACK_SIGNING_CERT; with a pkcs11: key, read from the token when absent)')
    .option('--chain <file>', 'intermediate certificates to embed in the signature, PEM')
    .option('--pss', 'sign with RSA-PSS instead of RSA PKCS#1 v1.5')
    .option('--pkcs11-module <so>', 'PKCS#11 module for a pkcs11: --key (or $OTAPACK_PKCS11_MODULE; PIN in $OTAPACK_PKCS11_PIN or the URI\'s pin-source)')
    .option('--sign-command <cmd>', 'sign by running CMD: bytes to sign on its stdin, raw signature on its stdout (no shell; see README)')
    .addOption(new Option('--sign-input <what>', 'what --sign-command gets on stdin: the DER signed attributes, or their SHA-256 digest').choices(SIGN_INPUTS))
    .option('--expiry-warning <days>', 'warn when a signing certificate expires within this many days', '90');

program
  .command('keygen')
  .description('create a signing key, its certificate and an AES-256 key (development or release)')
  .addOption(requiredOption('--out <dir>', 'directory for signing.key, signing.crt, aes.key (and ca.key, ca.crt with --ca)'))
  .option('--cn <name>', 'certificate common name', 'otapack signer')
  .option('--org <name>', 'certificate organisation')
  .option('--days <n>', 'certificate lifetime in days (default 7300, 20 years)')
  .addOption(new Option('--type <type>', 'key type').choices(KEY_TYPES).default('rsa3072'))
  .option('--ca', 'also create a CA (ca.crt is what devices trust) and sign the signing certificate with it')
  .option('--encrypt-key', 'encrypt the private keys with the passphrase in $OTAPACK_KEY_PASSPHRASE')
  .option('--force', 'overwrite existing key files')
  .option('--json', 'print the result as JSON on stdout')
  .action(lazy('keygen', () => import('./commands/keygen.js')));

signingOptions(
  program
    .command('bundle')
    .description('build a SWUpdate .swu bundle, or a Mender .mender artifact (a spec with format: mender), from a YAML spec')
    .argument('<spec>', 'bundle spec (YAML)')
    .addOption(requiredOption('-o, --output <file>', 'output .swu (or .mender)')),
)
  .option('--aes-key <file>', 'AES key file "KEYHEX IVHEX" for images with encrypt: true (or $OTAPACK_AES_KEY)')
  .option('--unsigned', 'build without a signature (devices with signature checking refuse it)')
  .option('--reproducible', 'derive ivts from the AES key and the payload so encrypted bundles are byte-identical too')
  .addOption(new Option('--manifest-format <fmt>', 'sw-description syntax (overrides the spec)').choices(MANIFEST_FORMATS))
  .addOption(new Option('--cpio-format <fmt>', 'crc (070702, checksummed) or newc (070701)').choices(CPIO_FORMATS))
  .option('--json', 'print the result as JSON on stdout')
  .action(lazy('bundle', () => import('./commands/bundle.js')));

signingOptions(
  program
    .command('sign')
    .description('sign or re-sign a bundle without recompressing anything, or attach a signature made elsewhere')
    .argument('<bundle>', 'input .swu')
    .addOption(requiredOption('-o, --output <file>', 'output .swu')),
)
  .option('--signature <file>', 'attach this DER CMS signature (made elsewhere over the bytes `otapack manifest` prints)')
  .option('--trust <file>', 'with --signature: also require the signature to chain to these certificates, as devices check it')
  .addOption(new Option('--cert-purpose <purpose>', 'with --trust: the certificate purpose devices check').choices(CERT_PURPOSES).default('emailProtection'))
  .option('--json', 'print the result as JSON on stdout')
  .action(lazy('sign', () => import('./commands/sign.js')));

program
  .command('manifest')
  .description('write the exact sw-description bytes of a bundle: what a signature must cover')
  .argument('<bundle>', 'input .swu')
  .option('-o, --output <file>', 'write to this file instead of stdout')
  .action(lazy('manifest', () => import('./commands/manifest.js')));

program
  .command('verify')
  .description('check a bundle or Mender artifact: structure, checksums, hashes, signature, trust, decryption')
  .argument('<bundle>', '.swu or .mender to check')
  .option('--trust <file>', 'PEM certificate(s) the device trusts (what SWUpdate gets with -k); for a .mender, the public key (ArtifactVerifyKey) or a certificate holding it')
  .option('--device-type <type>', '.mender: the device_type of the device; the artifact must list it')
  .option('--aes-key <file>', 'AES key file to test-decrypt encrypted payloads (or $OTAPACK_AES_KEY)')
  .addOption(new Option('--cert-purpose <purpose>', 'certificate purpose the device checks').choices(CERT_PURPOSES).default('emailProtection'))
  .option('--allow-unsigned', 'do not fail an unsigned bundle')
  .option('--expiry-warning <days>', 'warn when a certificate expires within this many days', '90')
  .option('--time <iso-date>', 'judge certificate validity at this time instead of now (e.g. a device clock)')
  .option('--json', 'print the report as JSON on stdout')
  .action(lazy('verify', () => import('./commands/verify.js')));

signingOptions(
  program
    .command('convert')
    .description('turn a disk image into an A/B disk, its bmap and a signed update bundle (.swu, or .mender with --client mender)')
    .argument('<image>', 'input disk image (.img, .img.gz, .img.xz, .img.zst)')
    .addOption(requiredOption('-o, --output <dir>', 'output folder for <name>.img, .bmap, .swu, .json'))
    .option('-c, --config <file>', 'otapack.yaml'),
)
  .addOption(new Option('--client <id>', 'the update client to wire the device for (overrides client: in the config)').choices(CLIENT_IDS))
  .option('--trust <file>', 'certificate(s) devices will trust (default: the self-signed signing certificate or the root of --chain); with --client mender, the public key (or a certificate holding it) devices verify artifacts with')
  .option('--aes-key <file>', 'AES key file for update.encrypt (or $OTAPACK_AES_KEY)')
  .option('--unsigned', 'leave the bundle unsigned (to be signed later); devices still require signatures')
  .option('--reproducible', 'derive ivts and the signing time from the inputs so outputs are byte-identical')
  .option('--image-sha256', 'also put the SHA-256 of the whole disk image in the report (one more pass over the image)')
  .option('--delta-from <file>', "also a delta bundle <name>.delta.swu from this previous release (its .swu or slot image)")
  .addOption(new Option('--delta-method <method>', 'rdiff (in the bundle; needs rootfs.read-only) or zchunk (chunks in <name>.zck, fetched by the device)').choices(DELTA_METHODS))
  .option('--delta-url <url>', 'zchunk: where devices fetch <name>.zck (a trailing / gets <name>.zck appended)')
  .option('--json', 'print the conversion report as JSON on stdout')
  .action(lazy('convert', () => import('./commands/convert.js')));

program
  .command('inspect')
  .description('show the partition table, the detected layout and what convert would do; writes nothing')
  .argument('<image>', 'disk image')
  .option('-c, --config <file>', 'otapack.yaml')
  .addOption(new Option('--client <id>', 'the update client to plan for (overrides client: in the config)').choices(CLIENT_IDS))
  .option('--json', 'print as JSON on stdout')
  .action(lazy('inspect', () => import('./commands/inspect.js')));

program.commands.forEach((c) => c.exitOverride());

/** The command tree and which options are required: what scripts/cli-docs.mjs turns into the man page and the bash completion. */
export const commandLine: { program: Command; required: ReadonlySet<Option> } = { program, required };

/** --json anywhere before a `--`: known before the parser has run (or failed). */
const wantsJson = (argv: string[]): boolean => {
  const args = argv.slice(2);
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
};

export async function main(argv: string[]): Promise<void> {
  installSignalHandlers();
  setJsonMode(wantsJson(argv));
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === VERSION_REQUESTED) {
        process.exitCode = await (await import('./version.js')).printVersion(pkg.version);
        return;
      }
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
        process.exitCode = EXIT_OK;
        return;
      }
      // the parser has printed its message on stderr; with --json stdout still gets the error object
      if (wantsJson(argv)) printJsonError('USAGE', EXIT_CODES.USAGE, e.message.replace(/^error: /, '').split('\n').map((l) => l.trim()).filter(Boolean).join(' '));
      process.exitCode = EXIT_CODES.USAGE;
      return;
    }
    throw e;
  }
}
