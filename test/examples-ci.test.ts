// The CI examples run here, job by job (test/helpers/ci-runner.ts): each job installs otapack
// from this checkout's npm tarball as its YAML says (OTAPACK_TARBALL), builds unsigned without any
// secret, signs in the protected job, verifies; the real client judges the signed bundle.
import { describe, test, expect, beforeAll } from 'vitest';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp, ROOT } from './helpers/run.js';
import { swupdateOk } from './helpers/swupdate.js';
import { keygen, type KeyDir } from './helpers/bundle-fixtures.js';
import { runGithubWorkflow, runGitlabPipeline, type JobRun } from './helpers/ci-runner.js';
import { packTarball } from './helpers/install.js';

let dir: string;
let keys: KeyDir;
let tarball: string;
let keyPem: string;
let certPem: string;
/** Every job ran the otapack its own steps installed from the tarball (not one from elsewhere on PATH). */
const installedByJob = (r: JobRun): void => {
  expect(r.log, r.job).toMatch(/^otapack 0\.\d+\.\d+ \(.*-npm-global\/lib\/node_modules\/otapack\)$/m);
  expect(realpathSync(join(r.npmPrefix, 'bin/otapack')), r.job).toBe(realpathSync(join(r.npmPrefix, 'lib/node_modules/otapack/bin/otapack')));
};
const client = (bundle: string, cert: string) => swupdateOk(bundle, { check: true, cert, hw: 'sample-board:1.0', select: 'stable,copy2' });

beforeAll(async () => {
  dir = tmp('otapack-examples-');
  keys = await keygen(join(dir, 'keys'), ['--cn', 'release']);
  tarball = await packTarball(join(dir, 'release'));
  keyPem = readFileSync(keys.key, 'utf8');
  certPem = readFileSync(keys.cert, 'utf8');
});

describe('CI examples: build unsigned in one job, sign in a protected job', () => {
  test('GitHub Actions (examples/ci/github-release.yml): the signed bundle verifies and the client accepts it', async () => {
    const work = join(dir, 'gh');
    const runs = await runGithubWorkflow(join(ROOT, 'examples/ci/github-release.yml'), {
      workdir: work, secrets: { OTAPACK_SIGNING_KEY: keyPem }, vars: { OTAPACK_SIGNING_CERT: certPem, OTAPACK_TARBALL: tarball },
    });
    expect(runs.map((r) => r.job)).toEqual(['build', 'sign']);
    runs.forEach(installedByJob);
    expect(runs[0]!.env.OTAPACK_SIGNING_KEY).toBeUndefined(); // the build job never sees the key
    expect(runs.map((r) => r.log).join('\n')).not.toContain('PRIVATE KEY');
    const signed = join(work, 'artifacts/signed-release/sdcard-signed.swu');
    expect(JSON.parse(readFileSync(join(work, 'artifacts/signed-release/sign.json'), 'utf8'))).toMatchObject({ schema: 'otapack.sign/1', signer: 'CN=release', method: 'key' });
    expect((await otapack(['verify', signed, '--trust', keys.cert])).code).toBe(0);
    const c = await client(signed, keys.cert);
    expect(c.ok, c.output).toBe(true);
    expect((await client(join(work, 'artifacts/unsigned-release/sdcard.swu'), keys.cert)).ok).toBe(false);
  });

  test('GitHub Actions without the secret, or without the tarball variable: the job fails with one clear line', async () => {
    // the sign job again, on the first test's build artifacts, with the secret missing
    await expect(runGithubWorkflow(join(ROOT, 'examples/ci/github-release.yml'), {
      workdir: join(dir, 'gh-nokey'), artifacts: join(dir, 'gh/artifacts'), only: ['sign'], vars: { OTAPACK_SIGNING_CERT: certPem, OTAPACK_TARBALL: tarball },
    }))
      .rejects.toThrow(/job sign step 3 \(Sign\) failed \(exit 5\):\s*otapack: error: \$OTAPACK_SIGNING_KEY is set but empty: the secret is not available to this job/);
    // and without the variable naming the tarball, the install step says what to set
    await expect(runGithubWorkflow(join(ROOT, 'examples/ci/github-release.yml'), {
      workdir: join(dir, 'gh-notarball'), artifacts: join(dir, 'gh/artifacts'), only: ['sign'], vars: { OTAPACK_SIGNING_CERT: certPem },
    }))
      .rejects.toThrow(/job sign step 2 \(Install otapack\) failed \(exit 1\):[^]*OTAPACK_TARBALL: set the repository variable OTAPACK_TARBALL to the URL of otapack-X\.Y\.Z\.tgz/);
    expect(existsSync(join(dir, 'gh-notarball/gh-sign-npm-global/bin/otapack'))).toBe(false);
  });

  test('GitLab CI (examples/ci/gitlab-ci.yml): protected variable only in the production job; result verifies, client accepts', async () => {
    const work = join(dir, 'gl');
    const runs = await runGitlabPipeline(join(ROOT, 'examples/ci/gitlab-ci.yml'), {
      workdir: work, protectedEnvironment: 'production', predefined: { CI_COMMIT_TAG: 'v1.0.0' },
      variables: { OTAPACK_SIGNING_CERT: certPem, OTAPACK_TARBALL: tarball }, protectedVariables: { OTAPACK_SIGNING_KEY: keyPem },
    });
    expect(runs.map((r) => r.job)).toEqual(['build', 'sign']);
    runs.forEach(installedByJob);
    expect(runs[0]!.env.OTAPACK_SIGNING_KEY).toBeUndefined();
    expect(runs[1]!.env.OTAPACK_SIGNING_KEY).toBe(keyPem);
    const signed = join(work, 'gl-sign/release/sdcard-signed.swu');
    expect((await otapack(['verify', signed, '--trust', keys.cert])).code).toBe(0);
    const c = await client(signed, keys.cert);
    expect(c.ok, c.output).toBe(true);
    // no tag: the sign job does not run at all
    const untagged = await runGitlabPipeline(join(ROOT, 'examples/ci/gitlab-ci.yml'), {
      workdir: join(dir, 'gl-untagged'), planOnly: true, protectedEnvironment: 'production', variables: { OTAPACK_SIGNING_CERT: certPem }, protectedVariables: { OTAPACK_SIGNING_KEY: keyPem },
    });
    expect(untagged.map((r) => r.job)).toEqual(['build']);
  });
});

