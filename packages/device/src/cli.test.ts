import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandTopics } from '@bulwark/protocol';
import { main } from './cli.ts';
import {
  createTestCa,
  startFakeBroker,
  startFakeEstServer,
  type FakeEstServer,
  type TestCa,
} from './test-support/index.ts';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(
  argv: string[],
  stopSignal?: AbortSignal,
  onStdout?: (text: string) => void,
): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (text) => {
      stdout += text;
      onStdout?.(text);
    },
    stderr: (text) => (stderr += text),
    ...(stopSignal === undefined ? {} : { stopSignal }),
  });
  return { code, stdout, stderr };
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'bulwark-cli-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** `enroll` with valid arguments (nothing listens on port 1), some replaced by `override`. */
const enroll = (override: Record<string, string> = {}) => [
  'enroll',
  ...Object.entries({
    '--server': 'https://127.0.0.1:1',
    '--token': 't',
    '--id': 'pump-17',
    '--dir': join(tmpdir(), 'bulwark-cli-never-created'),
    ...override,
  }).flat(),
];

describe('bulwark-agent arguments', () => {
  it.each([
    [
      'a non-https server',
      enroll({ '--server': 'http://bulwark.example' }),
      /--server.*must start with https:\/\//,
    ],
    ['a device id with a topic separator', enroll({ '--id': 'pumps/17' }), /--id.*device id must be/],
    ['a bad fingerprint', enroll({ '--ca-fingerprint': 'zz' }), /--ca-fingerprint.*64 hex digits/],
    ['an unknown key type', enroll({ '--key-type': 'dsa-1024' }), /--key-type.*ec-p256, ec-p384, rsa-2048/],
    ['a plain-text broker URL', enroll({ '--mqtt': 'mqtt://broker:1883' }), /--mqtt.*mqtts:\/\//],
    [
      'a missing token',
      ['enroll', '--server', 'https://x', '--id', 'a', '--dir', 'd'],
      /required option '--token/,
    ],
    [
      'a duration without unit',
      ['run', '--dir', 'd', '--heartbeat-interval', '30'],
      /--heartbeat-interval.*e\.g\. 30s/,
    ],
    ['a zero duration', ['run', '--dir', 'd', '--heartbeat-interval', '0s'], /greater than zero/],
    ['an --exec without a path', ['run', '--dir', 'd', '--exec', 'ping'], /--exec.*expected NAME=PATH/],
    ['an --exec of a reserved name', ['run', '--dir', 'd', '--exec', 'result=/bin/true'], /--exec.*reserved/],
    [
      'a command mapped twice',
      ['run', '--dir', 'd', '--exec', 'job=/bin/true', '--exec', 'job=/bin/false'],
      /command job is mapped twice/,
    ],
    [
      'an --exec program that is not there',
      ['run', '--dir', 'd', '--exec', 'job=/nonexistent/job.sh'],
      /^error: --exec job: \/nonexistent\/job\.sh is not an executable file$/m,
    ],
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
  ])('rejects %s with a one-line reason and exit code 1', async (_what, argv, reason) => {
    const { code, stdout, stderr } = await cli(argv);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(reason);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('explains a missing identity in one line', async () => {
    const { code, stderr } = await cli(['run', '--dir', join(root, 'empty')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: no device identity in .*: run "bulwark-agent enroll" first\n$/);
  });

  it('explains an unreadable --ca file in one line', async () => {
    const { code, stderr } = await cli(enroll({ '--ca': join(root, 'missing.pem') }));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: cannot read --ca file: ENOENT.*\n$/);
  });

  it.each([[[]], [['enroll']], [['run']]])('prints help for %j --help and exits 0', async (argv) => {
    const { code, stdout } = await cli([...argv, '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: bulwark-agent');
  });

  it('documents --exec and --reboot-command in run --help', async () => {
    const { stdout } = await cli(['run', '--help']);
    expect(stdout).toContain('--exec <name=path>');
    expect(stdout).toMatch(/may replace any built-in \(ping, report-state,\s+reboot\)/);
    expect(stdout).toContain('--reboot-command <cmd>');
  });
});

describe('bulwark-agent against an EST server and a broker', () => {
  let ca: TestCa;
  beforeAll(async () => {
    ca = await createTestCa();
  });

  /** `enroll` against `url` with the token the fake EST servers accept, plus `extra`. */
  const enrollAt = (url: string, dir: string, ...extra: string[]) => [
    'enroll',
    '--server',
    url,
    '--token',
    'tok',
    '--id',
    'pump-17',
    '--dir',
    dir,
    ...extra,
  ];
  const requested = (est: FakeEstServer) => est.requests.map((request) => request.path);

  it('refuses to enroll with an unverified CA root, printing its fingerprint and how to check it', async () => {
    const est = await startFakeEstServer({ ca, tokens: { 'pump-17': 'tok' } });
    try {
      const { code, stdout, stderr } = await cli(enrollAt(est.url, join(root, 'unverified')));
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(stderr).toContain(
        `error: CA root not verified: the server presented a root with SHA-256 fingerprint ${ca.fingerprint};`,
      );
      expect(stderr).toContain('openssl x509 -noout -fingerprint -sha256" on the Bulwark server');
      expect(stderr).toMatch(/re-run with --ca-fingerprint <hex> .*or --ca FILE .*; not enrolling\n$/);
      // The token is never sent: the client stopped after the unauthenticated /cacerts.
      expect(requested(est)).toEqual(['/.well-known/est/cacerts']);
      expect(est.requests.every((request) => request.headers.authorization === undefined)).toBe(true);
    } finally {
      await est.close();
    }
  });

  it('enrolls with --ca-fingerprint when the root matches, with nothing on stderr', async () => {
    const est = await startFakeEstServer({ ca, tokens: { 'pump-17': 'tok' } });
    try {
      const { code, stdout, stderr } = await cli(
        enrollAt(est.url, join(root, 'pinned'), '--ca-fingerprint', ca.fingerprint.replaceAll(':', '')),
      );
      expect(stderr).toBe('');
      expect(stdout).toMatch(/^enrolled pump-17: /);
      expect(code).toBe(0);
      expect(requested(est)).toEqual(['/.well-known/est/cacerts', '/.well-known/est/simpleenroll']);
    } finally {
      await est.close();
    }
  });

  it('enrolls with --trust-on-first-use (fingerprint shown, warning), then runs until stopped', async () => {
    const broker = await startFakeBroker(ca);
    const est = await startFakeEstServer({ ca, tokens: { 'pump-17': 'tok' } });
    const dir = join(root, 'device');
    try {
      const enrolled = await cli(enrollAt(est.url, dir, '--trust-on-first-use'));
      expect(enrolled.stderr).toContain(`CA root SHA-256 fingerprint: ${ca.fingerprint}`);
      expect(enrolled.stderr).toContain('warning: trusted on first use (--trust-on-first-use)');
      expect(enrolled.stdout).toMatch(
        /^enrolled pump-17: certificate \w+ valid until \S+, identity saved in /,
      );
      expect(enrolled.code).toBe(0);

      const stop = new AbortController();
      const heartbeat = broker.next('publish');
      const run = cli(
        ['run', '--dir', dir, '--mqtt', broker.url, '--heartbeat-interval', '100ms'],
        stop.signal,
      );
      await heartbeat;
      stop.abort();
      const { code, stdout } = await run;
      expect(code).toBe(0);
      expect(stdout).toContain(`connected to ${broker.url} as pump-17`);
      expect(stdout).toMatch(/stopped\n$/);
    } finally {
      await broker.close();
      await est.close();
    }
  });

  it('answers commands with --exec programs and reboots with --reboot-command, one line per command', async () => {
    const broker = await startFakeBroker(ca);
    const est = await startFakeEstServer({ ca, tokens: { 'pump-17': 'tok' } });
    const dir = join(root, 'commanded');
    const job = join(root, 'job.sh');
    await writeFile(job, '#!/bin/sh\nprintf \'{"got":%s}\' "$(cat)"\n', { mode: 0o755 });
    const rebooted = join(root, 'rebooted');
    const reboot = join(root, 'reboot.sh');
    await writeFile(reboot, '#!/bin/sh\necho "$1" > "$2"\n', { mode: 0o755 });
    try {
      expect((await cli(enrollAt(est.url, dir, '--trust-on-first-use'))).code).toBe(0);
      const stop = new AbortController();
      const subscribed = broker.next('subscribe');
      const run = cli(
        [
          'run',
          '--dir',
          dir,
          '--mqtt',
          broker.url,
          '--exec',
          `job=${job}`,
          '--reboot-command',
          `${reboot} now ${rebooted}`,
        ],
        stop.signal,
      );
      await subscribed;
      const send = async (name: string, data?: unknown) => {
        const result = broker.next('publish', (p) => p.topic === commandTopics.result('pump-17', name));
        const request = { id: `id-${name}`, issuedBy: 'cli', issuedAt: Date.now(), expiresAt: null, data };
        broker.send('pump-17', commandTopics.request('pump-17', name), JSON.stringify(request));
        return JSON.parse((await result).payload) as unknown;
      };
      expect(await send('job', { valve: 3 })).toEqual({
        id: 'id-job',
        status: 'ok',
        result: { got: { valve: 3 } },
      });
      expect(await send('reboot')).toEqual({ id: 'id-reboot', status: 'ok', result: { rebooting: true } });
      await expect.poll(() => readFile(rebooted, 'utf8').catch(() => '')).toBe('now\n');
      stop.abort();
      const { code, stdout } = await run;
      expect(code).toBe(0);
      expect(stdout).toContain('command job id-job: ok\n');
      expect(stdout).toContain('command reboot id-reboot: ok\n');
    } finally {
      await broker.close();
      await est.close();
    }
  });

  it('refuses to enroll when the CA fingerprint does not match', async () => {
    const est = await startFakeEstServer({ ca, tokens: { 'pump-17': 'tok' } });
    const other = await createTestCa('Impostor');
    try {
      const { code, stderr } = await cli(
        enrollAt(est.url, join(root, 'refused'), '--ca-fingerprint', other.fingerprint),
      );
      expect(code).toBe(1);
      expect(stderr).toMatch(/^error: CA root fingerprint mismatch: expected .*; not enrolling\n$/);
      expect(requested(est)).toEqual(['/.well-known/est/cacerts']);
    } finally {
      await est.close();
    }
  });

  it('enrolls with --ca and no network fetch of the chain', async () => {
    const est = await startFakeEstServer({ ca, tokens: { 'pump-17': 'tok' } });
    const caFile = join(root, 'ca.pem');
    await writeFile(caFile, ca.certPem);
    try {
      const { code, stderr } = await cli(
        enrollAt(est.url, join(root, 'with-ca'), '--ca', caFile, '--key-type', 'rsa-2048'),
      );
      expect(stderr).toBe('');
      expect(code).toBe(0);
      expect(requested(est)).toEqual(['/.well-known/est/simpleenroll']);
    } finally {
      await est.close();
    }
  });
});

describe('bin/bulwark-agent.js', () => {
  const bin = fileURLToPath(new URL('../bin/bulwark-agent.js', import.meta.url));
  const node = (args: string[]) =>
    new Promise<Outcome>((resolve) => {
      execFile(process.execPath, [bin, ...args], (err, stdout, stderr) => {
        resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
      });
    });

  it('runs the TypeScript CLI: --version, and exit code 1 with one line on bad input', async () => {
    const version = await node(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) as unknown });
    const bad = await node(['enroll', '--server', 'ftp://x', '--token', 't', '--id', 'a', '--dir', 'd']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: option '--server <url>' argument 'ftp:\/\/x' is invalid\..*\n$/);
  });
});
