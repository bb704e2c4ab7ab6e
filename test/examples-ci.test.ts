// The CI examples run here, job by job (test/helpers/ci-runner.ts): build unsigned without any
// secret, sign in the protected job, verify; the real client judges the signed bundle.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp, ROOT } from './helpers/run.js';
import { swupdateOk } from './helpers/swupdate.js';
import { keygen, type KeyDir } from './helpers/bundle-fixtures.js';
import { otapackShim, runGithubWorkflow, runGitlabPipeline } from './helpers/ci-runner.js';

let dir: string;
let keys: KeyDir;
let shim: string;
let keyPem: string;
let certPem: string;
const client = (bundle: string, cert: string) => swupdateOk(bundle, { check: true, cert, hw: 'sample-board:1.0', select: 'stable,copy2' });

beforeAll(async () => {
  dir = tmp('otapack-examples-');
  keys = await keygen(join(dir, 'keys'), ['--cn', 'release']);
  shim = otapackShim(dir);
  keyPem = readFileSync(keys.key, 'utf8');
  certPem = readFileSync(keys.cert, 'utf8');
});

describe('CI examples: build unsigned in one job, sign in a protected job', () => {
  test('GitHub Actions (examples/ci/github-release.yml): the signed bundle verifies and the client accepts it', async () => {
    const work = join(dir, 'gh');
    const runs = await runGithubWorkflow(join(ROOT, 'examples/ci/github-release.yml'), {
      workdir: work, shim, secrets: { OTAPACK_SIGNING_KEY: keyPem }, vars: { OTAPACK_SIGNING_CERT: certPem },
    });
    expect(runs.map((r) => r.job)).toEqual(['build', 'sign']);
    expect(runs[0]!.env.OTAPACK_SIGNING_KEY).toBeUndefined(); // the build job never sees the key
    expect(runs.map((r) => r.log).join('\n')).not.toContain('PRIVATE KEY');
    const signed = join(work, 'artifacts/signed-release/sdcard-signed.swu');
    expect(JSON.parse(readFileSync(join(work, 'artifacts/signed-release/sign.json'), 'utf8'))).toMatchObject({ schema: 'otapack.sign/1', signer: 'CN=release', method: 'key' });
    expect((await otapack(['verify', signed, '--trust', keys.cert])).code).toBe(0);
    const c = await client(signed, keys.cert);
    expect(c.ok, c.output).toBe(true);
    expect((await client(join(work, 'artifacts/unsigned-release/sdcard.swu'), keys.cert)).ok).toBe(false);
  });

  test('GitHub Actions without the secret: the sign job fails with one clear line', async () => {
    // the sign job again, on the first test's build artifacts, with the secret missing
    await expect(runGithubWorkflow(join(ROOT, 'examples/ci/github-release.yml'), {
      workdir: join(dir, 'gh-nokey'), artifacts: join(dir, 'gh/artifacts'), only: ['sign'], shim, vars: { OTAPACK_SIGNING_CERT: certPem },
    }))
      .rejects.toThrow(/job sign step 3 \(Sign\) failed \(exit 5\):\s*otapack: error: \$OTAPACK_SIGNING_KEY is set but empty: the secret is not available to this job/);
  });

  test('GitLab CI (examples/ci/gitlab-ci.yml): protected variable only in the production job; result verifies, client accepts', async () => {
    const work = join(dir, 'gl');
    const runs = await runGitlabPipeline(join(ROOT, 'examples/ci/gitlab-ci.yml'), {
      workdir: work, shim, protectedEnvironment: 'production', predefined: { CI_COMMIT_TAG: 'v1.0.0' },
      variables: { OTAPACK_SIGNING_CERT: certPem }, protectedVariables: { OTAPACK_SIGNING_KEY: keyPem },
    });
    expect(runs.map((r) => r.job)).toEqual(['build', 'sign']);
    expect(runs[0]!.env.OTAPACK_SIGNING_KEY).toBeUndefined();
    expect(runs[1]!.env.OTAPACK_SIGNING_KEY).toBe(keyPem);
    const signed = join(work, 'gl-sign/release/sdcard-signed.swu');
    expect((await otapack(['verify', signed, '--trust', keys.cert])).code).toBe(0);
    const c = await client(signed, keys.cert);
    expect(c.ok, c.output).toBe(true);
    // no tag: the sign job does not run at all
    const untagged = await runGitlabPipeline(join(ROOT, 'examples/ci/gitlab-ci.yml'), {
      workdir: join(dir, 'gl-untagged'), shim, planOnly: true, protectedEnvironment: 'production', variables: { OTAPACK_SIGNING_CERT: certPem }, protectedVariables: { OTAPACK_SIGNING_KEY: keyPem },
    });
    expect(untagged.map((r) => r.job)).toEqual(['build']);
  });
});

